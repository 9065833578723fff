"""The TensorRT engine: its choice and precision, the builder's settings per
TensorRT version, the lean runtime, and on an NVIDIA GPU parity with ONNX
Runtime (skipped with the reason elsewhere)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from rt_mer.inference import EngineError, default_model, open_engine, trt_builder
from rt_mer.inference.plans import Portability, plan_key, write_plan
from rt_mer.inference.tensorrt import (BUILDER_ENV, builder_has_fp16, check_gpu_supported, choose_portability,
                                       resolve_precision)

from support.gpu import needs_gpu, needs_no_tensorrt, open_tensorrt
from support.music import chord_music, write

FP32_TOLERANCE = 1e-3       # valence/arousal, TensorRT fp32 vs ONNX Runtime on the CPU
FP16_TOLERANCE = 0.05       # valence/arousal at the 99th percentile, TensorRT fp16 vs ONNX Runtime
FP16_QUADRANT_AGREEMENT = 0.95
LIVE_TOLERANCE = 3e-3       # live loop on TensorRT fp32 vs offline on ONNX Runtime: block sizes and engines differ


@needs_no_tensorrt
def test_auto_chooses_onnxruntime_and_says_why():
    engine = open_engine()
    assert engine.name.startswith("onnxruntime")
    assert engine.reason.startswith("auto: tensorrt not installed")
    assert open_engine("onnxruntime").reason == "as asked"


def test_precision_choice():
    assert builder_has_fp16("tensorrt", SimpleNamespace(FP16=0))
    assert not builder_has_fp16("tensorrt", SimpleNamespace())               # TensorRT 11: strongly typed only
    assert not builder_has_fp16("tensorrt_rtx", SimpleNamespace(FP16=0))     # TensorRT for RTX: unsupported
    assert resolve_precision("auto", True, (9, 0), "tensorrt 10") == "fp16"
    assert resolve_precision("auto", True, (6, 1), "tensorrt 10") == "fp32"
    assert resolve_precision("auto", False, (12, 0), "tensorrt_rtx 1.2") == "fp32"
    assert resolve_precision("fp32", True, (9, 0), "tensorrt 10") == "fp32"
    with pytest.raises(EngineError, match="tensorrt_rtx 1.2 builds strongly typed networks only"):
        resolve_precision("fp16", False, (12, 0), "tensorrt_rtx 1.2")
    with pytest.raises(EngineError, match=r"compute capability 6.1\) has no fast FP16"):
        resolve_precision("fp16", True, (6, 1), "tensorrt 10")


def test_tensorrt_for_rtx_says_which_gpus_it_runs_on():
    rtx = SimpleNamespace(ComputeCapability=SimpleNamespace(CURRENT=0, SM75=1, SM86=2, SM89=3, SM120=4))
    check_gpu_supported(rtx, "NVIDIA GeForce RTX 4090", (8, 9), "tensorrt_rtx 1.7")
    check_gpu_supported(SimpleNamespace(), "NVIDIA H200", (9, 0), "tensorrt 10")     # the full TensorRT: any
    with pytest.raises(EngineError) as error:
        check_gpu_supported(rtx, "NVIDIA H200", (9, 0), "tensorrt_rtx 1.7")
    assert str(error.value) == ("tensorrt_rtx 1.7 does not run on NVIDIA H200 (compute capability 9.0; it supports "
                                "7.5, 8.6, 8.9, 12.0): install the full tensorrt for this GPU, or use --engine "
                                "onnxruntime")


@pytest.fixture(scope="module")
def windows():
    from rt_mer.bench.feed import demo_windows
    return demo_windows(150)               # real music, more than one chunk of the engines below


@pytest.fixture(scope="module")
def reference(windows):
    return open_engine("onnxruntime").infer(windows)


@pytest.mark.slow
@needs_gpu
def test_build_cache_hit_and_corrupt_cache_rebuild(gpu_cache):
    notes = []
    engine = open_tensorrt("fp32", notes)
    assert engine.built and engine.plan_path.parent == gpu_cache / "plans" and engine.plan_path.exists()
    assert engine.plan_path.with_suffix(".json").exists() and notes[0].startswith("no cached plan")
    engine.close()
    engine = open_tensorrt("fp32", notes)
    assert not engine.built and len(notes) == 1                       # loaded, not built
    engine.close()
    engine.plan_path.write_bytes(engine.plan_path.read_bytes()[:1000])  # a plan cut short
    engine = open_tensorrt("fp32", notes)
    assert engine.built and "is corrupt" in notes[-1]
    engine.close()


@pytest.mark.slow
@needs_gpu
def test_fp32_equals_onnxruntime_in_chunks(gpu_cache, windows, reference):
    engine = open_tensorrt("fp32")
    try:
        assert len(windows) > engine.max_batch                        # three chunks of at most 64
        got = engine.infer(windows)
        assert set(engine.last_timings) == {"pin", "copy_in", "inference", "copy_out", "total"}
        assert engine.last_timings["inference"] > 0 and min(engine.last_timings.values()) >= 0
        one = engine.infer(windows[:1])
    finally:
        engine.close()
    np.testing.assert_allclose(got.valence, reference.valence, atol=FP32_TOLERANCE)
    np.testing.assert_allclose(got.arousal, reference.arousal, atol=FP32_TOLERANCE)
    scale = max(1.0, float(np.abs(reference.explanation).max()))
    np.testing.assert_allclose(got.explanation, reference.explanation, atol=FP32_TOLERANCE * scale)
    np.testing.assert_allclose(got.drivers, reference.drivers, atol=FP32_TOLERANCE * scale)
    np.testing.assert_allclose(one.valence, reference.valence[:1], atol=FP32_TOLERANCE)


@pytest.mark.slow
@needs_gpu
def test_fp16_is_close_to_onnxruntime(gpu_cache, windows, reference):
    try:
        engine = open_tensorrt("fp16")
    except EngineError as error:          # TensorRT for RTX or 11, or an old GPU: no FP16 builder path
        pytest.skip(f"no fp16 here: {error}")
    try:
        got = engine.infer(windows)
    finally:
        engine.close()
    for ours, theirs in ((got.valence, reference.valence), (got.arousal, reference.arousal)):
        assert np.percentile(np.abs(ours - theirs), 99) <= FP16_TOLERANCE
    quadrant = lambda v, a: np.where(a >= 0, np.where(v >= 0, 1, 2), np.where(v < 0, 3, 4))  # noqa: E731
    agreement = np.mean(quadrant(got.valence, got.arousal) == quadrant(reference.valence, reference.arousal))
    assert agreement >= FP16_QUADRANT_AGREEMENT


@pytest.mark.slow
@needs_gpu
def test_several_streams_through_the_live_loop(gpu_cache, tmp_path):
    """Four files as four live streams, batched through TensorRT by the
    real loop on a thread of its own, equal the offline ONNX Runtime
    analysis of each file."""
    from rt_mer.audio import FileSource
    from rt_mer.stream.loop import AnalysisLoop, LoopOptions
    from rt_mer.stream.offline import analyze_file
    files = [write(tmp_path / f"s{i}.wav", chord_music(10, 22050, 1, seed=20 + i)[:, 0], 22050) for i in range(4)]
    engine = open_tensorrt("fp32")
    messages = []
    loop = AnalysisLoop([FileSource(path) for path in files], engine,
                        [lambda message: messages.append(message.to_dict())], LoopOptions())
    thread = threading.Thread(target=loop.run)
    thread.start()
    thread.join(timeout=120)
    engine.close()
    assert not thread.is_alive()
    cpu = open_engine("onnxruntime")
    emotions = [m for m in messages if m["type"] == "emotion"]
    assert max(m["batch"] for m in emotions) > 1                       # streams shared inference calls
    for path in files:
        live = [m for m in emotions if m["stream"] == path.stem]
        offline = analyze_file(path, cpu)
        assert [m["t"] for m in live] == pytest.approx(list(offline.t_end))
        np.testing.assert_allclose([m["valence_raw"] for m in live], offline.valence, atol=LIVE_TOLERANCE)
        np.testing.assert_allclose([m["arousal_raw"] for m in live], offline.arousal, atol=LIVE_TOLERANCE)
        assert all(m["engine"] == engine.name for m in live)


def test_runtimes_without_a_builder_force_version_compatible_plans():
    asked = Portability()
    assert choose_portability("tensorrt", asked) == asked
    assert choose_portability("tensorrt_lean", asked) == Portability(True, True, False)
    assert choose_portability("tensorrt_dispatch", Portability(ampere_plus=True)) == Portability(True, False, True)
    with pytest.raises(EngineError, match="dispatch runtime runs plans that carry their lean runtime"):
        choose_portability("tensorrt_dispatch", Portability(True, True))
    with pytest.raises(EngineError, match="--exclude-lean-runtime needs --version-compatible"):
        choose_portability("tensorrt", Portability(exclude_lean_runtime=True))


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
