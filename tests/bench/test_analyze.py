"""The offline speed benchmark times the whole demo through the real analysis."""
from __future__ import annotations

import pytest

from rt_mer.audio import demo_path
from rt_mer.bench.analyze import bench_analyze
from rt_mer.inference import open_engine
from rt_mer.stream.offline import analyze_file


@pytest.mark.slow
def test_analyze_speed_is_timed_on_the_whole_demo():
    engine = open_engine("onnxruntime", threads=1)
    result = bench_analyze(engine, baseline_seconds=2.0, passes=1)
    assert result["windows"] == len(analyze_file(demo_path(), engine).valence) and result["passes"] == 1
    assert result["ours_x_realtime"] > 1 and ("speedup" in result) != bool(result["baseline_skipped"])
