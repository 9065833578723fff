"""The commands with TensorRT: a one-line error without it, `--engine auto`
saying its choice, and on a GPU the cached plan used by the commands."""
from __future__ import annotations

import subprocess

import pytest

from rt_mer.inference import EngineError, open_engine

from support.gpu import needs_gpu, needs_no_tensorrt, open_tensorrt
from support.music import chord_music, windows_in, write
from support.processes import CLI


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return write(tmp_path_factory.mktemp("song") / "song.wav", chord_music(10, 16000), 16000)


@needs_no_tensorrt
def test_tensorrt_asked_for_without_it_is_a_one_line_error(song):
    with pytest.raises(EngineError, match="tensorrt not installed"):
        open_engine("tensorrt")
    for command in (["analyze", "--quiet", "--engine", "tensorrt", str(song)],
                    ["build-engine"],
                    ["run", "--no-dash", "--engine", "tensorrt", "--file", str(song)]):
        result = subprocess.run([*CLI, *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.strip().splitlines() == ["rt-mer: error: tensorrt not installed: pip install "
                                                      "'rt-mer[gpu]'"], (command, result.stderr)


@needs_no_tensorrt
def test_analyze_auto_works_and_prints_its_choice(song, tmp_path):
    out = tmp_path / "va.csv"
    result = subprocess.run([*CLI, "analyze", "--quiet", "--engine", "auto", str(song), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith("rt-mer: engine onnxruntime")
    assert "(auto: tensorrt not installed" in result.stderr.splitlines()[0]
    assert len(out.read_text().splitlines()) == 1 + windows_in(10, 0.5)      # header, one row per window


@pytest.mark.slow
@needs_gpu
def test_auto_and_the_commands_use_the_cached_plan(gpu_cache, song, tmp_path):
    open_tensorrt("fp32").close()                                      # in the cache from here on
    engine = open_engine("auto", precision="fp32", max_batch=64)
    assert engine.name.startswith("tensorrt") and engine.reason.startswith("auto: CUDA device ")
    assert "; plan built by tensorrt" in engine.reason and ", run by tensorrt" in engine.reason
    engine.close()
    result = subprocess.run([*CLI, "build-engine", "--precision", "fp32", "--max-batch", "64"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "found in the cache" in result.stdout, result.stderr
    out = tmp_path / "va.csv"
    result = subprocess.run([*CLI, "analyze", "--quiet", "--engine", "tensorrt", "--precision", "fp32",
                             "--max-batch", "64", str(song), "--out", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith("rt-mer: engine tensorrt") and "(as asked; plan built by " \
        in result.stderr
    assert len(out.read_text().splitlines()) == 1 + windows_in(10, 0.5)
