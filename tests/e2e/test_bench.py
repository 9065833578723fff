"""`rt-mer bench` prints its figures."""
from __future__ import annotations

import subprocess

import pytest

from support.processes import CLI


@pytest.mark.slow
def test_bench_command_prints_its_figures():
    result = subprocess.run([*CLI, "bench", "latency", "streams", "--streams", "1,2",
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
