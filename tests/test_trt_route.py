"""The TensorRT 8.6 route (docs/gpu.md), as far as it goes without a GPU.

- tools/trt_parts.py, on small real data: packed, received part by part,
  joined; a missing or corrupt part is named, a corrupt one refused.
- The choices that need no TensorRT: version compatibility between a
  plan's builder and a runtime, plan keys and names, the portability a
  runtime forces, the builder flags and config for each TensorRT (against
  a recording stand-in: the real builder needs a GPU).
- The real TensorRT 8.6 under this machine's Python 3.11, from the fetched
  parts (tools/trt_fetch.sh; skipped without them): it has the API this
  route uses, its builder's Python reports it, and a build goes as far as
  CUDA (none here) and stops in one line, through RT_MER_TRT_BUILDER as
  the engine runs it.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rt_mer.inference import EngineError, default_model
from rt_mer.inference import cuda as cuda_api
from rt_mer.inference import trt_builder
from rt_mer.inference.plans import (AMPERE_PLUS, Portability, find_runnable_plan, plan_files, plan_key, runs_plans_of,
                                  version_numbers, write_plan)
from rt_mer.inference.tensorrt import BUILDER_ENV, ExternalBuilder, build_plan, choose_portability, open_cuda

ROOT = Path(__file__).resolve().parents[1]
PARTS_TOOL = [sys.executable, str(ROOT / "tools" / "trt_parts.py")]
FETCHED = ROOT / ".trt-parts"
UNPACKED = Path(os.environ.get("RT_MER_TRT_UNPACKED", "/tmp/rt-mer-trt-test"))


# ------------------------------------------------------------ the parts

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


# ------------------------------------------- versions, keys, portability

def test_which_runtime_runs_which_builders_plans():
    assert version_numbers("tensorrt_lean 10.16.1.11") == (10, 16, 1, 11)
    assert version_numbers("tensorrt (version unknown)") == ()
    assert runs_plans_of("tensorrt_lean 10.16.1.11", "tensorrt 8.6.0")
    assert runs_plans_of("tensorrt_dispatch 10.16.1.11", "tensorrt 10.16.1.11")
    assert runs_plans_of("tensorrt 8.6.1", "tensorrt 8.6.0")
    assert not runs_plans_of("tensorrt 8.6.0", "tensorrt 8.6.1")              # older runtime
    assert not runs_plans_of("tensorrt_lean 11.4.0.106", "tensorrt 8.6.0")    # TensorRT 11 runs no 8 plans
    assert runs_plans_of("tensorrt_lean 11.4.0.106", "tensorrt 10.16.1.11")
    assert not runs_plans_of("tensorrt_lean 10.16.1.11", "tensorrt (version unknown)")


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copyfile(default_model(), path)
    return path


def test_plan_names_say_their_portability(model, tmp_path):
    def name(**portability):
        key = plan_key(model, "tensorrt 8.6.0", "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024,
                       Portability(**portability))
        return plan_files(key, tmp_path)[0].name
    assert name().startswith("rt-mer-fp32-b1024-") and "-vc" not in name()
    assert name(version_compatible=True).startswith("rt-mer-fp32-b1024-vc-")
    assert name(version_compatible=True, exclude_lean_runtime=True).startswith("rt-mer-fp32-b1024-vc-nolean-")
    assert name(version_compatible=True, ampere_plus=True).startswith("rt-mer-fp32-b1024-vc-ampereplus-")
    assert all(c.isalnum() or c in "._-" for c in name(version_compatible=True, ampere_plus=True))  # $OUT-safe


def test_an_ampere_plus_key_names_no_gpu(model):
    on_h100 = plan_key(model, "tensorrt 8.6.0", "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024,
                       Portability(True, True, True))
    on_a10 = plan_key(model, "tensorrt 8.6.0", "NVIDIA A10", (8, 6), "fp32", 1024, Portability(True, True, True))
    assert on_h100 == on_a10 and (on_h100.gpu, on_h100.compute_capability) == AMPERE_PLUS
    assert "any GPU of compute capability 8.0 or newer" in on_h100.describe()
    assert "version-compatible, lean runtime excluded" in on_h100.describe()
    with pytest.raises(EngineError, match="needs one to build it on"):
        plan_key(model, "tensorrt 8.6.0", "Tesla T4", (7, 5), "fp32", 1024, Portability(True, True, True))


def test_a_runtime_finds_the_newest_plan_it_runs(model, tmp_path):
    vc = Portability(version_compatible=True, exclude_lean_runtime=True)
    wanted = plan_key(model, "", "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024, vc)
    assert find_runnable_plan(wanted, tmp_path, "tensorrt_lean 10.16.1.11") is None
    for builder in ("tensorrt 8.6.0", "tensorrt 10.16.1.11", "tensorrt 10.17.0.1"):      # the last: too new
        write_plan(plan_key(model, builder, "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024, vc), b"plan", tmp_path)
    write_plan(plan_key(model, "tensorrt 10.16.0.72", "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024), b"p", tmp_path)
    write_plan(plan_key(model, "tensorrt 10.16.0.72", "NVIDIA H100 80GB HBM3", (9, 0), "fp16", 1024, vc), b"p",
               tmp_path)
    found = find_runnable_plan(wanted, tmp_path, "tensorrt_lean 10.16.1.11")
    assert found is not None and found.builder == "tensorrt 10.16.1.11"
    assert find_runnable_plan(wanted, tmp_path, "tensorrt_lean 10.0.1").builder == "tensorrt 8.6.0"
    assert find_runnable_plan(wanted, tmp_path, "tensorrt_lean 8.6.0").builder == "tensorrt 8.6.0"


def test_runtimes_without_a_builder_force_version_compatible_plans():
    asked = Portability()
    assert choose_portability("tensorrt", asked) == asked
    assert choose_portability("tensorrt_lean", asked) == Portability(True, True, False)
    assert choose_portability("tensorrt_dispatch", Portability(ampere_plus=True)) == Portability(True, False, True)
    with pytest.raises(EngineError, match="dispatch runtime runs plans that carry their lean runtime"):
        choose_portability("tensorrt_dispatch", Portability(True, True))
    with pytest.raises(EngineError, match="--exclude-lean-runtime needs --version-compatible"):
        choose_portability("tensorrt", Portability(exclude_lean_runtime=True))


# ------------------------------------------------ the builder API chooser

class Flag(int):
    pass


def fake_tensorrt(name: str, version: str, **extra):
    """A stand-in module with the enums the builder code reads; `extra`
    adds or removes (None) attributes per version."""
    flags = dict(FP16=Flag(0), TF32=Flag(7), VERSION_COMPATIBLE=Flag(16), EXCLUDE_LEAN_RUNTIME=Flag(17))
    module = SimpleNamespace(
        __name__=name, __version__=version,
        BuilderFlag=SimpleNamespace(**{k: v for k, v in flags.items() if extra.get(k, 1) is not None}),
        NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=Flag(0), STRONGLY_TYPED=Flag(1)),
        MemoryPoolType=SimpleNamespace(WORKSPACE="workspace"),
        HardwareCompatibilityLevel=SimpleNamespace(AMPERE_PLUS="ampere+"),
        TacticSource=SimpleNamespace(CUBLAS=Flag(0), CUBLAS_LT=Flag(1), CUDNN=Flag(2), EDGE_MASK_CONVOLUTIONS=Flag(3)))
    for key in ("FP16", "TF32", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"):
        extra.pop(key, None)
    for key, value in extra.items():
        setattr(module, key, value)
    return module


class RecordingConfig:
    def __init__(self):
        self.flags, self.cleared, self.tactics = set(), set(), 0b11111
        self.hardware_compatibility_level = None

    def set_memory_pool_limit(self, pool, size):
        self.pool = (pool, size)

    def set_flag(self, flag):
        self.flags.add(int(flag))

    def clear_flag(self, flag):
        self.cleared.add(int(flag))

    def get_tactic_sources(self):
        return self.tactics

    def set_tactic_sources(self, mask):
        self.tactics = mask


def test_network_flags_per_tensorrt():
    assert trt_builder.network_flags(fake_tensorrt("tensorrt", "8.6.0")) == 1 << 0          # explicit batch
    assert trt_builder.network_flags(fake_tensorrt("tensorrt", "10.16.1.11")) == 0            # always explicit
    assert trt_builder.network_flags(fake_tensorrt("tensorrt", "11.4.0.106", FP16=None)) == 1 << 1   # typed
    assert trt_builder.network_flags(fake_tensorrt("tensorrt_rtx", "1.7.1.116")) == 1 << 1


def test_builder_config_for_a_version_compatible_ampere_plus_plan():
    trt, config = fake_tensorrt("tensorrt", "8.6.0"), RecordingConfig()
    trt_builder.configure(trt, config, {"precision": "fp16", "version_compatible": True, "exclude_lean_runtime": True,
                                        "ampere_plus": True, "workspace_bytes": 123})
    assert config.flags == {0, 16, 17} and config.pool == ("workspace", 123)
    assert config.hardware_compatibility_level == "ampere+"
    assert config.tactics == 0b11000                  # cuBLAS, cuBLASLt, cuDNN off; the others untouched
    config = RecordingConfig()
    trt_builder.configure(trt, config, {"precision": "fp32"})
    assert config.flags == set() and config.cleared == {7} and config.hardware_compatibility_level is None


def test_fp16_builder_flag_per_tensorrt():
    assert trt_builder.has_fp16(fake_tensorrt("tensorrt", "8.6.0"))
    assert trt_builder.has_fp16(fake_tensorrt("tensorrt", "10.16.1.11"))
    assert not trt_builder.has_fp16(fake_tensorrt("tensorrt", "11.4.0.106"))
    assert not trt_builder.has_fp16(fake_tensorrt("tensorrt_rtx", "1.7.1.116"))


def test_a_builder_without_cuda_fails_in_one_line():
    class NoCuda(SimpleNamespace):
        def Builder(self, logger):
            raise TypeError("pybind11::init(): factory function returned nullptr")
    logger = SimpleNamespace(last_error="CUDA initialization failure with error: 35")
    with pytest.raises(trt_builder.BuildError) as error:
        trt_builder.build(NoCuda(__name__="tensorrt", __version__="8.6.0"), logger, {})
    assert str(error.value) == ("tensorrt 8.6.0 cannot create a builder (CUDA initialization failure with "
                                "error: 35)")


# --------------------------------------- the real TensorRT 8.6, no GPU

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


def cuda_device() -> bool:
    try:
        cuda_api.Cuda()
    except Exception:           # no cuda-bindings, no driver, no device
        return False
    return True


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


# ------------------------------------------------------------ CUDA

def test_no_cuda_driver_is_one_line():
    pytest.importorskip("cuda.bindings")
    if cuda_device():
        pytest.skip("a CUDA device is here")
    with pytest.raises(EngineError) as error:
        open_cuda()
    assert str(error.value).startswith("no CUDA driver (") and "\n" not in str(error.value)


class FakeDriver:
    """cuda-bindings' driver module as far as Cuda() opening a device goes:
    (status, result...) tuples, as the real one returns them."""

    class CUresult:
        CUDA_SUCCESS, CUDA_ERROR_NO_DEVICE = 0, 100

    class CUdevice_attribute:
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 75, 76

    def __init__(self, devices: int):
        self.devices = devices

    def cuInit(self, flags):
        return (0,)

    def cuDeviceGetCount(self):
        return (0, self.devices)

    def cuDeviceGet(self, ordinal):
        return (0, 7) if ordinal < self.devices else (101,)

    def cuDeviceGetName(self, length, device):
        return 0, b"NVIDIA H100 80GB HBM3".ljust(length, b"\0")

    def cuDeviceGetAttribute(self, attribute, device):
        return 0, {75: 9, 76: 0}[attribute]

    def cuDevicePrimaryCtxRetain(self, device):
        return 0, "context"

    def cuCtxPushCurrent(self, context):
        return (self.CUresult.CUDA_ERROR_NO_DEVICE,)       # as if the device had gone

    def cuGetErrorName(self, status):
        return 0, b"CUDA_ERROR_NO_DEVICE"


def test_cuda_reads_the_device_and_names_a_failed_call(monkeypatch):
    monkeypatch.setattr(cuda_api, "import_driver", lambda: FakeDriver(1))
    device = cuda_api.Cuda()
    assert (device.name, device.capability) == ("NVIDIA H100 80GB HBM3", (9, 0))
    with pytest.raises(cuda_api.CudaError, match="^cuCtxPushCurrent: CUDA_ERROR_NO_DEVICE$"):
        device.push()
    monkeypatch.setattr(cuda_api, "import_driver", lambda: FakeDriver(0))
    with pytest.raises(EngineError, match="^no CUDA device$"):
        open_cuda()


# ------------------------------------ a runtime without a builder, end to end up to the plan

class FakeCuda:
    name, capability = "NVIDIA H100 80GB HBM3", (9, 0)

    def push(self):
        pass

    def pop(self):
        pass

    def release(self):
        pass


def lean_runtime(loaded: list):
    """tensorrt_lean as far as the engine goes before a plan loads: its
    Runtime refuses every plan, noting what it was given."""
    severity = SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2)

    class ILogger:
        Severity = severity

        def __init__(self):
            pass

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, plan):
            loaded.append(plan)
            self.logger.log(severity.ERROR, "IRuntime::deserializeCudaEngine: plan of another kind")
            return None
    return SimpleNamespace(__name__="tensorrt_lean_bindings", __version__="10.16.1.11", ILogger=ILogger,
                           Runtime=Runtime)


@pytest.fixture
def lean_here(monkeypatch, tmp_path):
    from rt_mer.inference import tensorrt
    loaded = []
    monkeypatch.setattr(tensorrt, "import_backend", lambda: (lean_runtime(loaded), "tensorrt_lean"))
    monkeypatch.setattr(tensorrt, "open_cuda", FakeCuda)
    monkeypatch.setenv("RT_MER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(BUILDER_ENV, raising=False)
    return tensorrt, loaded


def test_a_lean_runtime_without_plan_or_builder_says_what_to_do(lean_here):
    tensorrt, loaded = lean_here
    with pytest.raises(EngineError) as error:
        tensorrt.TensorRTEngine(default_model(), "fp32", 64)
    assert str(error.value).startswith("tensorrt_lean 10.16.1.11 runs plans but cannot build one, and the cache (")
    assert f"set {BUILDER_ENV} to a Python with a TensorRT builder" in str(error.value) and not loaded


def test_a_lean_runtime_takes_a_cached_plan_of_an_older_builder(lean_here, tmp_path):
    tensorrt, loaded = lean_here
    from rt_mer.inference.plans import plans_dir
    vc = Portability(version_compatible=True, exclude_lean_runtime=True, ampere_plus=True)
    write_plan(plan_key(default_model(), "tensorrt 8.6.0", "NVIDIA A10", (8, 6), "fp32", 64, vc), b"an 8.6 plan",
               plans_dir())
    notes = []
    with pytest.raises(EngineError) as error:
        tensorrt.TensorRTEngine(default_model(), "fp32", 64, report=notes.append)
    assert loaded == [b"an 8.6 plan"]                  # the Ampere-or-newer plan, found from an H100
    assert notes and "does not load (IRuntime::deserializeCudaEngine: plan of another kind)" in notes[0]
    assert str(error.value) == "tensorrt_lean 10.16.1.11 cannot build a plan, and the cached one does not load"
