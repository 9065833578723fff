"""Latency as the real loop measures it: per-stage times, the host's tail on
its schedule, and capture latency (the block's wait and the resampler's)."""
from __future__ import annotations

from rt_mer import realtime
from rt_mer.bench.latency import bench_capture_latency, bench_host_tail, bench_latency
from rt_mer.inference import open_engine


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
