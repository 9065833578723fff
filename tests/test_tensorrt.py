"""The TensorRT engine: its choice, its plan cache, and on an NVIDIA GPU
its parity with ONNX Runtime.

The first half runs anywhere: engine selection and one-line errors when
TensorRT is absent, and the cache (keys, sidecars, corrupt or mismatched
plans, build-or-load), whose TensorRT builder and runtime are stood in for
by two small functions. The second half needs a TensorRT (tensorrt,
tensorrt_rtx, or a lean or dispatch runtime with RT_MER_TRT_BUILDER set),
cuda-bindings and a CUDA device, and skips, saying which is missing,
elsewhere. tests/test_trt_route.py has the 8.6-builder route.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from music import chord_music, windows_in, write
from rt_mer.cache import cache_dir
from rt_mer.inference import EngineError, default_model, open_engine
from rt_mer.inference.plans import Portability, PlanKey, load_or_build, plan_files, plan_key, read_cached_plan, write_plan
from rt_mer.inference import cuda as cuda_api
from rt_mer.inference.tensorrt import builder_has_fp16, check_gpu_supported, installed_module, resolve_precision

CLI = [sys.executable, "-m", "rt_mer.cli"]
FP32_TOLERANCE = 1e-3       # valence/arousal, TensorRT fp32 vs ONNX Runtime on the CPU
FP16_TOLERANCE = 0.05       # valence/arousal at the 99th percentile, TensorRT fp16 vs ONNX Runtime
FP16_QUADRANT_AGREEMENT = 0.95
LIVE_TOLERANCE = 3e-3       # live loop on TensorRT fp32 vs offline on ONNX Runtime: block sizes and engines differ


def gpu_missing() -> str:
    """Why the GPU tests cannot run here, or "" when they can."""
    found = installed_module()
    if found is None:
        return "no TensorRT installed"
    if not cuda_api.installed():
        return "cuda-bindings not installed"
    try:
        device = cuda_api.Cuda()
        trt = importlib.import_module(found[0])
        check_gpu_supported(trt, device.name, device.capability, found[1])
    except EngineError as error:        # a GPU this TensorRT does not run on
        return str(error)
    except Exception as error:          # no driver or device (CudaError), a broken TensorRT
        return f"no usable CUDA device or TensorRT ({str(error).strip()[:100]})"
    return ""


GPU_MISSING = gpu_missing()
needs_gpu = pytest.mark.skipif(bool(GPU_MISSING),
                               reason=f"needs an NVIDIA GPU, TensorRT and cuda-bindings: {GPU_MISSING}")
needs_no_tensorrt = pytest.mark.skipif(installed_module() is not None,
                                       reason="tensorrt is installed here: its absence cannot be seen")


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return write(tmp_path_factory.mktemp("song") / "song.wav", chord_music(10, 16000), 16000)


# ------------------------------------------------------------- selection

@needs_no_tensorrt
def test_auto_chooses_onnxruntime_and_says_why():
    engine = open_engine()
    assert engine.name.startswith("onnxruntime")
    assert engine.reason.startswith("auto: tensorrt not installed")
    assert open_engine("onnxruntime").reason == "as asked"


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


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RT_MER_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "rt-mer"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "rt-mer"
    monkeypatch.setenv("RT_MER_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


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


# ----------------------------------------------------------------- cache

@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copyfile(default_model(), path)
    return path


def a_key(model, **changes) -> PlanKey:
    fields = dict(builder="tensorrt 10.16.1.11", gpu="NVIDIA H100 80GB HBM3", capability=(9, 0), precision="fp16",
                  max_batch=1024)
    fields.update(changes)
    return plan_key(model, **fields)


def test_key_changes_with_each_thing_a_plan_depends_on(model, tmp_path):
    key = a_key(model)
    assert key == a_key(model) and plan_files(key, tmp_path) == plan_files(a_key(model), tmp_path)
    edited = tmp_path / "edited.onnx"
    edited.write_bytes(model.read_bytes() + b"\0")
    variants = [plan_key(edited, "tensorrt 10.16.1.11", "NVIDIA H100 80GB HBM3", (9, 0), "fp16", 1024),
                a_key(model, builder="tensorrt 10.15.1.29"), a_key(model, builder="tensorrt_rtx 10.16.1.11"),
                a_key(model, gpu="NVIDIA A100-SXM4-80GB"), a_key(model, capability=(8, 0)),
                a_key(model, precision="fp32"), a_key(model, max_batch=256),
                a_key(model, portability=Portability(version_compatible=True)),
                a_key(model, portability=Portability(version_compatible=True, exclude_lean_runtime=True)),
                a_key(model, portability=Portability(ampere_plus=True))]
    names = {plan_files(k, tmp_path)[0].name for k in [key, *variants]}
    assert len(names) == 1 + len(variants)
    assert key.profile == (1, 32, 1024) and a_key(model, max_batch=8).profile == (1, 8, 8)


def test_cached_plan_is_checked_before_use(model, tmp_path):
    key = a_key(model)
    plan, reason = read_cached_plan(key, tmp_path)
    assert plan is None and reason.startswith("no cached plan for NVIDIA H100 80GB HBM3 (compute capability 9.0)")

    plan_file = write_plan(key, b"a serialised plan", tmp_path, 12.5)
    sidecar = plan_files(key, tmp_path)[1]
    assert read_cached_plan(key, tmp_path) == (b"a serialised plan", "")
    meta = json.loads(sidecar.read_text())
    assert meta["key"]["gpu"] == "NVIDIA H100 80GB HBM3" and meta["key"]["precision"] == "fp16"
    assert meta["plan_bytes"] == len(b"a serialised plan") and meta["build_seconds"] == 12.5

    plan_file.write_bytes(b"a serialised plaN")                                   # damaged on disk
    assert read_cached_plan(key, tmp_path) == (None, f"cached plan {plan_file} is corrupt "
                                                     "(its checksum does not match its metadata)")

    write_plan(key, b"a serialised plan", tmp_path)
    meta["key"]["builder"] = "tensorrt 10.3.0"                                   # metadata of another build
    sidecar.write_text(json.dumps(meta))
    plan, reason = read_cached_plan(key, tmp_path)
    assert plan is None and "built for another setup: builder 'tensorrt 10.3.0' (this one: " \
                               "'tensorrt 10.16.1.11')" in reason

    sidecar.write_text("{not json")
    assert "is unreadable" in read_cached_plan(key, tmp_path)[1]
    sidecar.unlink()
    assert "has no metadata beside it" in read_cached_plan(key, tmp_path)[1]


def test_plans_for_another_gpu_are_named_when_none_fits(model, tmp_path):
    write_plan(a_key(model, gpu="NVIDIA A100-SXM4-80GB", builder="tensorrt 10.3.0"), b"plan", tmp_path)
    plan, reason = read_cached_plan(a_key(model), tmp_path)
    assert plan is None
    assert reason.endswith("(the cache has plans of this model for NVIDIA A100-SXM4-80GB with tensorrt 10.3.0 only)")


class FakeTensorRT:
    """Stands in for TensorRT's builder and runtime, which need a GPU: a
    build makes numbered plans, and a plan loads unless it is one TensorRT
    would refuse (another version's, say)."""

    def __init__(self):
        self.builds = 0

    def build(self) -> bytes:
        self.builds += 1
        return f"plan {self.builds}".encode()

    @staticmethod
    def deserialize(plan: bytes):
        if not plan.startswith(b"plan"):
            raise EngineError("Serialization assertion failed: version tag does not match")
        return SimpleNamespace(plan=plan)


def test_build_once_then_load_from_the_cache(model, tmp_path):
    key, trt, notes = a_key(model), FakeTensorRT(), []
    engine, path, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, report=notes.append)
    assert built and engine.plan == b"plan 1" and path == plan_files(key, tmp_path)[0] and path.exists()
    assert len(notes) == 1 and notes[0].startswith("no cached plan for ") and "building one" in notes[0]
    engine, path, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, report=notes.append)
    assert not built and engine.plan == b"plan 1" and trt.builds == 1 and len(notes) == 1
    engine, _, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, force=True, report=notes.append)
    assert built and engine.plan == b"plan 2" and "(--force)" in notes[-1]


def test_corrupt_or_unloadable_plans_are_reported_and_rebuilt(model, tmp_path):
    key, trt, notes = a_key(model), FakeTensorRT(), []
    plan_file = write_plan(key, b"plan 0", tmp_path)
    plan_file.write_bytes(b"plan 0, half wri")
    engine, _, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, report=notes.append)
    assert built and engine.plan == b"plan 1" and "is corrupt" in notes[-1] and "building one" in notes[-1]
    assert read_cached_plan(key, tmp_path)[0] == b"plan 1"                       # the rebuild replaced it

    write_plan(key, b"a plan of another TensorRT", tmp_path)                      # sound file, refused on load
    engine, _, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, report=notes.append)
    assert built and engine.plan == b"plan 2"
    assert f"cached plan {plan_file} does not load (Serialization assertion failed: version tag does not match)" \
        in notes[-1]
    assert len(notes) == 2 and all("\n" not in n for n in notes)


def test_a_new_plan_that_does_not_load_is_not_cached(model, tmp_path):
    key, notes = a_key(model), []
    with pytest.raises(EngineError, match="version tag does not match"):
        load_or_build(key, tmp_path, lambda: b"a plan this runtime refuses", FakeTensorRT.deserialize,
                      report=notes.append)
    assert not plan_files(key, tmp_path)[0].exists()


def test_an_unwritable_cache_still_gives_an_engine(model, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    trt, notes = FakeTensorRT(), []
    engine, _, built = load_or_build(a_key(model), blocked / "plans", trt.build, trt.deserialize,
                                     report=notes.append)
    assert built and engine.plan == b"plan 1" and "cannot cache the plan" in notes[-1]


# ------------------------------------------------------------ on the GPU

@pytest.fixture(scope="module")
def gpu_cache(tmp_path_factory):
    """A private plan cache for this module, for the engines opened here
    and the commands they start."""
    folder = tmp_path_factory.mktemp("rt-mer-cache")
    before = os.environ.get("RT_MER_CACHE")
    os.environ["RT_MER_CACHE"] = str(folder)
    yield folder
    if before is None:
        del os.environ["RT_MER_CACHE"]
    else:
        os.environ["RT_MER_CACHE"] = before


@pytest.fixture(scope="module")
def windows():
    from rt_mer.bench.feed import demo_windows
    return demo_windows(150)               # real music, more than one chunk of the engines below


@pytest.fixture(scope="module")
def reference(windows):
    return open_engine("onnxruntime").infer(windows)


def open_tensorrt(precision: str, notes: list | None = None, **options):
    from rt_mer.inference.tensorrt import TensorRTEngine
    return TensorRTEngine(default_model(), precision, report=(notes if notes is not None else []).append,
                          **{"max_batch": 64, **options})


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
