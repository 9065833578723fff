"""The TensorRT 8.6 route's tools (docs/gpu.md) as far as they go without a
GPU: tools/trt_parts.py packs, receives, joins and re-splits parts (a
missing or corrupt part named); TensorRT 8.6 imports and parses the model
where its parts are fetched."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rt_mer.inference import EngineError, default_model
from rt_mer.inference.plans import Portability
from rt_mer.inference.tensorrt import BUILDER_ENV, ExternalBuilder, build_plan

from support import ROOT
from support.gpu import cuda_device

PARTS_TOOL = [sys.executable, str(ROOT / "tools" / "trt_parts.py")]
FETCHED = ROOT / ".trt-parts"
UNPACKED = Path(os.environ.get("RT_MER_TRT_UNPACKED", "/tmp/rt-mer-trt-test"))


def parts_tool(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run([*PARTS_TOOL, *map(str, arguments)], capture_output=True, text=True, timeout=300)


@pytest.fixture
def packed(tmp_path):
    """A folder of 3 MB of incompressible bytes and some text, packed into
    parts of at most 1 MiB."""
    stage = tmp_path / "stage"
    (stage / "bundle" / "lib").mkdir(parents=True)
    (stage / "bundle" / "lib" / "blob.so").write_bytes(os.urandom(3_000_000))
    (stage / "bundle" / "VERSIONS").write_text("a bundle\n")
    out = tmp_path / "out"
    result = parts_tool("pack", stage, "bundle", out, "--part-mib", 1)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    return stage, out, manifest


def test_parts_are_at_most_the_limit_and_checked_on_arrival(packed, tmp_path):
    stage, out, manifest = packed
    names = [part["name"] for part in manifest["parts"]]
    assert len(names) == 3 and all(part["bytes"] <= 1 << 20 for part in manifest["parts"])
    assert sum(part["bytes"] for part in manifest["parts"]) == manifest["whole"]["bytes"]
    parts = tmp_path / "there"
    carried = tmp_path / "carried"          # one part per call, as the device tool carries them
    for number, name in enumerate(names, 1):
        carried.mkdir()
        shutil.copyfile(out / "manifest.json", carried / "manifest.json")
        shutil.copyfile(out / name, carried / name)
        result = parts_tool("receive", carried, parts)
        assert result.returncode == 0 and f"received {name}: checksum ok" in result.stdout
        assert f"{number} of 3 parts here" in result.stdout
        shutil.rmtree(carried)
    assert "all here" in result.stdout
    result = parts_tool("join", out, parts, tmp_path / "dest")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dest" / "bundle" / "lib" / "blob.so").read_bytes() == \
        (stage / "bundle" / "lib" / "blob.so").read_bytes()
    assert "already unpacked" in parts_tool("join", out, parts, tmp_path / "dest").stdout


def test_a_corrupt_part_is_refused_and_named(packed, tmp_path):
    _, out, manifest = packed
    second = manifest["parts"][1]["name"]
    damaged = bytearray((out / second).read_bytes())
    damaged[1000] ^= 0xFF
    (out / second).write_bytes(bytes(damaged))
    parts = tmp_path / "there"
    result = parts_tool("receive", out, parts)
    assert result.returncode == 1
    assert f"CORRUPT {second} (size or checksum differs): send it again" in result.stdout
    assert f"still to send: {second}" in result.stdout and not (parts / second).exists()


def test_join_names_exactly_the_missing_and_corrupt_parts(packed, tmp_path):
    _, out, manifest = packed
    first, second, third = (part["name"] for part in manifest["parts"])
    parts = tmp_path / "there"
    parts.mkdir()
    shutil.copyfile(out / first, parts / first)
    (parts / third).write_bytes((out / third).read_bytes()[:-1])          # cut short in transfer
    result = parts_tool("join", out, parts, tmp_path / "dest")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"MISSING {second}: send it again", f"CORRUPT {third}: send it again"]
    assert not (tmp_path / "dest" / "bundle").exists()


def test_resplit_makes_smaller_parts_of_the_same_bytes(packed, tmp_path):
    stage, out, manifest = packed
    result = parts_tool("resplit", out, "--part-mib", 0.5)
    assert result.returncode == 0, result.stderr
    again = json.loads((out / "manifest.json").read_text())
    assert len(again["parts"]) == 6 and again["whole"] == manifest["whole"]
    assert sorted(p.name for p in out.glob("bundle.tar.zst.*")) == [p["name"] for p in again["parts"]]
    assert parts_tool("join", out, out, tmp_path / "dest").returncode == 0
    assert (tmp_path / "dest" / "bundle" / "VERSIONS").read_text() == "a bundle\n"


def test_parts_larger_than_a_call_carries_are_refused(tmp_path):
    result = parts_tool("pack", tmp_path, "x", tmp_path / "out", "--part-mib", 61)
    assert result.returncode == 2 and "--part-mib must be in (0, 60]" in result.stderr


@pytest.fixture(scope="module")
def bundle():
    """The fetched route's folder: RT_MER_TRT_BUNDLE where it is unpacked
    already (tools/gpu_check.sh sets it), else .trt-parts/ joined once into
    RT_MER_TRT_UNPACKED (default /tmp/rt-mer-trt-test)."""
    if os.environ.get("RT_MER_TRT_BUNDLE"):
        return Path(os.environ["RT_MER_TRT_BUNDLE"])
    if not (FETCHED / "manifest.json").is_file():
        pytest.skip(f"no TensorRT parts in {FETCHED}: run tools/trt_fetch.sh first (about 15 minutes, 2.5 GB)")
    result = parts_tool("join", FETCHED, FETCHED, UNPACKED)
    assert result.returncode == 0, result.stderr
    return UNPACKED / "rt-mer-trt"


def test_tensorrt_8_6_has_this_routes_api(bundle, tmp_path):
    """The enums and methods the builder and the engine use, read off the
    real module (creating a Builder or Runtime needs CUDA)."""
    probe = """
import json, tensorrt as trt
print(json.dumps({
    "flags": [n for n in ("FP16", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME") if hasattr(trt.BuilderFlag, n)],
    "ampere_plus": hasattr(trt.HardwareCompatibilityLevel, "AMPERE_PLUS"),
    "tactics": [n for n in ("CUBLAS", "CUBLAS_LT", "CUDNN") if hasattr(trt.TacticSource, n)],
    "explicit_batch": int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH),
    "by_name": all(hasattr(trt.IExecutionContext, n) for n in ("set_input_shape", "set_tensor_address",
                                                                "execute_async_v3", "get_tensor_shape")),
    "engine": all(hasattr(trt.ICudaEngine, n) for n in ("num_io_tensors", "get_tensor_name", "get_tensor_mode",
                                                         "get_tensor_dtype")),
    "host_code": hasattr(trt.Runtime, "engine_host_code_allowed"),
    "config": all(hasattr(trt.IBuilderConfig, n) for n in ("set_tactic_sources", "hardware_compatibility_level",
                                                           "set_memory_pool_limit")),
}))
"""
    result = subprocess.run([bundle / "bin" / "trt86-python", "-c", probe], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "flags": ["FP16", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"], "ampere_plus": True,
        "tactics": ["CUBLAS", "CUBLAS_LT", "CUDNN"], "explicit_batch": 0, "by_name": True, "engine": True,
        "host_code": True, "config": True}


@pytest.mark.skipif(cuda_device(), reason="a CUDA device is here: the build goes on (tools/gpu_trt_check.py)")
def test_a_build_through_rt_mer_trt_builder_reaches_cuda(bundle, monkeypatch):
    """What the engine does with a runtime-only TensorRT: the 8.6 builder
    under Python 3.11 in a subprocess. Here it stops where CUDA is needed,
    with TensorRT's own reason in one line."""
    monkeypatch.setenv(BUILDER_ENV, str(bundle / "bin" / "trt86-python"))
    builder = ExternalBuilder(os.environ[BUILDER_ENV])
    assert (builder.version, builder.fp16) == ("tensorrt 8.6.0", True)
    with pytest.raises(EngineError) as error:
        build_plan(builder, default_model(), "fp32", (1, 32, 1024), Portability(True, True, True))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{BUILDER_ENV}={bundle / 'bin' / 'trt86-python'}: "
                                                      "tensorrt 8.6.0 cannot create a builder (")
    assert "CUDA initialization failure" in message
