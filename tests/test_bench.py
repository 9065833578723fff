"""`rt-mer bench`: it times the shipped model through the real loop, and
says why a baseline is skipped instead of timing random weights."""
import subprocess
import sys

import numpy as np
import pytest

from rt_mer import realtime
from rt_mer.audio import demo_path
from rt_mer.bench.analyze import bench_analyze
from rt_mer.bench.baselines import trained_network
from rt_mer.bench.feed import demo_windows
from rt_mer.bench.latency import bench_capture_latency, bench_host_tail, bench_latency
from rt_mer.inference import open_engine, shipped_weights
from rt_mer.stream.offline import analyze_file


@pytest.mark.slow
def test_pytorch_baseline_is_the_shipped_model_or_is_skipped_with_the_reason(tmp_path):
    pytest.importorskip("torch")
    absent = tmp_path / "rt-mer.pt"
    network, reason = trained_network(absent)
    assert network is None and str(absent) in reason and "not here" in reason
    absent.write_bytes(b"not weights")
    network, reason = trained_network(absent)
    assert network is None and "do not load" in reason
    if not shipped_weights().is_file():
        pytest.skip("no engines/rt-mer.pt in this checkout")
    import torch
    from rt_mer.training.network import ExportWrapper
    network, reason = trained_network()
    if network is None:                    # weights of another version of the network: skipped, and said so
        assert "do not load" in reason and "\n" not in reason
        pytest.skip(reason)
    windows = demo_windows(4)
    with torch.no_grad():
        valence, arousal, _, drivers = ExportWrapper(network).eval()(torch.from_numpy(windows))
    shipped = open_engine("onnxruntime").infer(windows)          # the ONNX model is the shipped one
    np.testing.assert_allclose(valence.numpy(), shipped.valence, atol=1e-3)
    np.testing.assert_allclose(arousal.numpy(), shipped.arousal, atol=1e-3)
    np.testing.assert_allclose(drivers.numpy(), shipped.drivers, atol=1e-3)


@pytest.mark.slow
def test_analyze_speed_is_timed_on_the_whole_demo():
    engine = open_engine("onnxruntime", threads=1)
    result = bench_analyze(engine, baseline_seconds=2.0, passes=1)
    assert result["windows"] == len(analyze_file(demo_path(), engine).valence) and result["passes"] == 1
    assert result["ours_x_realtime"] > 1 and ("speedup" in result) != bool(result["baseline_skipped"])


def test_latency_is_what_the_real_loop_measured():
    engine = open_engine("onnxruntime", threads=1)
    stages, scheduling = bench_latency(engine, hops=20)
    assert (scheduling == f"real-time (SCHED_FIFO {realtime.ANALYSIS_PRIORITY})"
            or scheduling.startswith("normal: real-time scheduling refused"))
    assert set(stages) == {"buffering", "frontend", "inference", "post", "publish", "total"}
    for stage in ("frontend", "inference", "post"):
        assert 0 < stages[stage]["p50"] <= stages["total"]["p50"]   # the total holds every stage
        assert stages[stage]["p50"] <= stages[stage]["p99"]
    assert stages["buffering"]["p99"] == 0          # a hop at a time at the model rate: nothing to wait for


def test_host_tail_times_work_of_the_asked_length_on_the_schedule():
    """The baseline is calibrated to the work asked: its median is of that
    order (not a tenth or ten times it), whatever the machine's speed."""
    host = bench_host_tail(2.0, hops=30)
    assert 0.5 < host["p50"] < 8 and host["p50"] <= host["p99"]


def test_capture_latency_counts_the_wait_for_the_block_and_the_resampler():
    """48 kHz in 20 ms blocks, as a sound card: the window's last sample
    ends a block, but the resampler holds back its look-ahead, so the
    window is due a block or more later; the total holds that wait."""
    stages, _ = bench_capture_latency(open_engine("onnxruntime", threads=1), hops=6)
    assert 20 <= stages["buffering"]["p50"] <= 60
    assert stages["total"]["p50"] >= stages["buffering"]["p50"] + stages["frontend"]["p50"]


@pytest.mark.slow
def test_bench_command_prints_its_figures():
    result = subprocess.run([sys.executable, "-m", "rt_mer.cli", "bench", "latency", "streams", "--streams", "1,2",
                             "--engine", "onnxruntime"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("engine: onnxruntime")
    scheduled = [line for line in lines if line.startswith("latency per hop, 1 stream") and "total p50" in line]
    assert "real-time (SCHED_FIFO 1)" in scheduled[0] or "normal: real-time scheduling refused" in scheduled[0]
    if "real-time" in scheduled[0]:         # then also measured as it would run without: the two side by side
        assert "at normal priority (--no-realtime)" in scheduled[1]
    assert any(line.startswith("latency per hop as a 48 kHz sound card") and "buffering p50" in line for line in lines)
    assert any(line.startswith("the host's own tail") and "p99" in line for line in lines)
    assert any(line.startswith("streams at hop 0.5 s") and "sustained in real time" in line for line in lines)
