"""TensorRT back-end (NVIDIA GPU), behind the same interface as ONNX Runtime.

Building and running are separate steps, as in TensorRT's own samples: the
shipped ONNX model is built once into a plan, cached under `plans_dir()`,
and loaded on later runs. One object owns the execution context, the
page-locked host buffers, the device buffers (sized for the largest batch
of the optimisation profile) and one CUDA stream, so an inference
allocates nothing on the device or in pinned memory.

Which TensorRT runs (the first of MODULES installed):
- one with a builder: the full `tensorrt` (10, or 8.6), or `tensorrt_rtx`
  (TensorRT for RTX); it builds its own plans, in this process;
- a runtime without one: TensorRT 10's small lean or dispatch runtime
  (PyPI wheels of a few MB), which runs version-compatible plans of an
  older or equal TensorRT. Such a plan is found in the cache, or built by
  the builder that RT_MER_TRT_BUILDER names: a Python whose `tensorrt`
  builds (TensorRT 8.6 under Python 3.11, say), running trt_builder.py.

One API path for all of them: tensors by name (set_input_shape,
set_tensor_address, execute_async_v3), which TensorRT 8.6 and 10 share.
CUDA itself through cuda-bindings (cuda.py). The plan cache is plans.py;
the builder trt_builder.py; nothing here is imported before an engine opens.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from . import cuda as cuda_api
from . import trt_builder
from ..contract import INPUT_NAME, OUTPUT_NAMES, WINDOW_SHAPE
from .base import EngineError, Prediction, check_contract
from .plans import Portability, Report, find_runnable_plan, load_or_build, note, one_line, plan_key, plans_dir

# (import name, TensorRT flavour), tried in this order: the lean and dispatch
# runtimes' PyPI wheels install their bindings as tensorrt_*_bindings
MODULES = (("tensorrt", "tensorrt"), ("tensorrt_rtx", "tensorrt_rtx"),
           ("tensorrt_lean", "tensorrt_lean"), ("tensorrt_lean_bindings", "tensorrt_lean"),
           ("tensorrt_dispatch", "tensorrt_dispatch"), ("tensorrt_dispatch_bindings", "tensorrt_dispatch"))
RUNTIME_ONLY = ("tensorrt_lean", "tensorrt_dispatch")
BUILDER_ENV = "RT_MER_TRT_BUILDER"
PRECISIONS = ("auto", "fp16", "fp32")
DEFAULT_MAX_BATCH = 1024
WORKSPACE_BYTES = 1 << 30
BUILD_TIMEOUT_S = 1800
FP16_CAPABILITY = (7, 0)       # fast FP16 arithmetic from Volta on
TIMING_STAGES = ("pin", "copy_in", "inference", "copy_out", "total")


# -------------------------------------------------------- the API chooser

def installed_module() -> tuple[str, str] | None:
    """(import name, flavour) of the first of MODULES installed; found
    without importing it, which is slow and loads CUDA."""
    return next((entry for entry in MODULES if importlib.util.find_spec(entry[0])), None)


def runtime_name(flavour: str, trt) -> str:
    """"tensorrt_lean 10.16.1.11": the flavour, not the import name."""
    return f"{flavour} {getattr(trt, '__version__', '(version unknown)')}"


def choose_portability(flavour: str, asked: Portability) -> Portability:
    """A runtime without a builder runs version-compatible plans only: the
    lean runtime ones without their lean runtime inside (it is one), the
    dispatch runtime ones with it."""
    if asked.exclude_lean_runtime and not asked.version_compatible and flavour not in RUNTIME_ONLY:
        raise EngineError("--exclude-lean-runtime needs --version-compatible")
    if flavour == "tensorrt_lean":
        return Portability(True, True, asked.ampere_plus)
    if flavour == "tensorrt_dispatch":
        if asked.exclude_lean_runtime:
            raise EngineError("the dispatch runtime runs plans that carry their lean runtime: drop "
                              "--exclude-lean-runtime, or install the lean runtime (tensorrt-lean-cu13)")
        return Portability(True, False, asked.ampere_plus)
    return asked


def builder_has_fp16(module_name: str, builder_flags: object) -> bool:
    """TensorRT 8 and 10 take FP16 as a builder flag; TensorRT for RTX and
    11 build strongly typed networks only (fp32 here), without it."""
    return module_name == "tensorrt" and hasattr(builder_flags, "FP16")


def resolve_precision(requested: str, builder_fp16: bool, capability: tuple[int, int], runtime: str) -> str:
    """auto: fp16 where both the builder and the GPU do it fast, else fp32."""
    if requested not in PRECISIONS:
        raise EngineError(f"unknown precision {requested!r}; choose from {', '.join(PRECISIONS)}")
    fast_fp16 = tuple(capability) >= FP16_CAPABILITY
    if requested == "fp32" or (requested == "auto" and not (builder_fp16 and fast_fp16)):
        return "fp32"
    if not builder_fp16:
        raise EngineError(f"--precision fp16: {runtime} builds strongly typed networks only (no FP16 builder "
                          f"flag) and the model is fp32; use --precision fp32")
    if not fast_fp16:
        raise EngineError(f"--precision fp16: this GPU (compute capability {capability[0]}.{capability[1]}) has "
                          f"no fast FP16 (7.0 or newer); use --precision fp32")
    return "fp16"


def check_gpu_supported(trt, gpu: str, capability: tuple[int, int], runtime: str) -> None:
    """TensorRT for RTX runs only on the architectures its ComputeCapability
    enum names (RTX ones: not Hopper's 9.0, for one); say so before a build
    whose plan would not load. The full TensorRT has no such enum."""
    supported = getattr(trt, "ComputeCapability", None)
    if supported is None or hasattr(supported, "SM{}{}".format(*capability)):
        return
    numbers = sorted((name[2:] for name in dir(supported) if name[:2] == "SM" and name[2:].isdigit()), key=int)
    listed = ", ".join(f"{number[:-1]}.{number[-1]}" for number in numbers)
    raise EngineError(f"{runtime} does not run on {gpu} (compute capability {capability[0]}.{capability[1]}; it "
                      f"supports {listed}): install the full tensorrt for this GPU, or use --engine onnxruntime")


# ------------------------------------------------------------- builders

class InProcessBuilder:
    """The TensorRT of this process builds (trt_builder.build)."""

    def __init__(self, trt) -> None:
        self._trt = trt
        self.version, self.fp16 = trt_builder.version_of(trt), trt_builder.has_fp16(trt)

    def build(self, spec: dict) -> tuple[bytes, dict]:
        try:
            return trt_builder.build(self._trt, trt_builder.make_logger(self._trt), spec)
        except trt_builder.BuildError as error:
            raise EngineError(str(error)) from None


class ExternalBuilder:
    """trt_builder.py run by another Python (RT_MER_TRT_BUILDER), for a
    runtime that cannot build: TensorRT 8.6's builder, whose bindings stop
    at Python 3.11. Started through -c in an empty folder, so that no file
    beside the script (this module is tensorrt.py) shadows TensorRT."""

    SCRIPT = Path(trt_builder.__file__)
    BOOTSTRAP = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"

    def __init__(self, python: str) -> None:
        self.python = python
        with tempfile.TemporaryDirectory(prefix="rt-mer-build-") as folder:
            described = json.loads(self._run(["--describe"], folder, 300))
        self.version, self.fp16 = described["builder"], described["fp16"]

    def _run(self, arguments: list[str], folder: str, timeout: float) -> str:
        try:
            result = subprocess.run([self.python, "-c", self.BOOTSTRAP, str(self.SCRIPT), *arguments], cwd=folder,
                                    capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise EngineError(f"{BUILDER_ENV}={self.python}: {one_line(error)}") from None
        if result.returncode or not result.stdout.strip():
            why = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
            raise EngineError(f"{BUILDER_ENV}={self.python}: {one_line(why)}")
        return result.stdout.strip().splitlines()[-1]

    def build(self, spec: dict) -> tuple[bytes, dict]:
        with tempfile.TemporaryDirectory(prefix="rt-mer-build-") as folder:
            (Path(folder) / "spec.json").write_text(json.dumps(spec))
            tensors = json.loads(self._run([f"{folder}/spec.json", f"{folder}/plan"], folder, BUILD_TIMEOUT_S))
            return (Path(folder) / "plan").read_bytes(), tensors


def choose_builder(trt, flavour: str):
    """This process's TensorRT if it builds, else the one RT_MER_TRT_BUILDER
    names, else None (a cached plan must serve)."""
    if flavour not in RUNTIME_ONLY:
        return InProcessBuilder(trt)
    python = os.environ.get(BUILDER_ENV)
    return ExternalBuilder(python) if python else None


def build_spec(model: Path, precision: str, profile: tuple[int, int, int], portability: Portability) -> dict:
    return {"model": str(model), "input_name": INPUT_NAME, "shapes": [[batch, *WINDOW_SHAPE] for batch in profile],
            "precision": precision, "workspace_bytes": WORKSPACE_BYTES,
            "version_compatible": portability.version_compatible,
            "exclude_lean_runtime": portability.exclude_lean_runtime, "ampere_plus": portability.ampere_plus}


def build_plan(builder, model: Path, precision: str, profile, portability: Portability) -> bytes:
    """A plan of `model`, its parsed network checked against the engine contract."""
    plan, tensors = builder.build(build_spec(model, precision, profile, portability))
    check_contract(model, [SimpleNamespace(**t) for t in tensors["inputs"]],
                   [SimpleNamespace(**t) for t in tensors["outputs"]])
    return plan


# ---------------------------------------------------------------- engine

def import_backend():
    """(the TensorRT module, its flavour), or EngineError saying what is missing."""
    found = installed_module()
    if found is None:
        raise EngineError("tensorrt not installed: pip install 'rt-mer[gpu]'")
    if not cuda_api.installed():
        raise EngineError("cuda-bindings not installed: pip install 'rt-mer[gpu]'")
    try:
        return importlib.import_module(found[0]), found[1]
    except Exception as error:             # a wheel without its CUDA libraries: ImportError, OSError, ...
        raise EngineError(f"{found[0]} does not load ({one_line(error)})") from None


def open_cuda() -> cuda_api.Cuda:
    try:
        return cuda_api.Cuda()
    except cuda_api.CudaError as error:
        raise EngineError(str(error)) from None


class TensorRTEngine:
    """A cached TensorRT plan of the model, run on CUDA device 0.

    `infer` may be called from any thread (the live loop's is not the one
    that opened the engine): each call pushes the device's primary context
    and pops it after. Batches above `max_batch` run in chunks.
    `last_timings` holds the last call's stages in ms: pin (into page-locked
    memory, host), copy_in, inference, copy_out (CUDA events), total (wall).
    `route` says in one line which TensorRT built the plan and which runs it.
    """

    def __init__(self, model: Path, precision: str = "auto", max_batch: int = DEFAULT_MAX_BATCH,
                 force_build: bool = False, report: Report = note, portability: Portability = Portability()) -> None:
        if max_batch < 1:
            raise EngineError(f"--max-batch must be at least 1, got {max_batch}")
        trt, flavour = import_backend()
        self._cuda = open_cuda()
        try:
            self._open(trt, flavour, model, precision, max_batch, force_build, report, portability)
        except BaseException:
            self._cuda.release()        # the primary context retained by open_cuda
            raise

    def _open(self, trt, flavour: str, model: Path, precision: str, max_batch: int, force_build: bool,
              report: Report, portability: Portability) -> None:
        cuda = self._cuda
        self._trt, self.max_batch, self.gpu = trt, max_batch, cuda.name
        runtime = runtime_name(flavour, trt)
        check_gpu_supported(trt, self.gpu, cuda.capability, runtime)
        portability = choose_portability(flavour, portability)
        builder = choose_builder(trt, flavour)
        self.precision = resolve_precision(precision, builder.fp16 if builder else True, cuda.capability,
                                           builder.version if builder else runtime)
        key = plan_key(model, builder.version if builder else "", self.gpu, cuda.capability, self.precision,
                       max_batch, portability)
        if builder is None:     # a cached plan for this GPU, else one for every Ampere-or-newer GPU
            flipped = Portability(portability.version_compatible, portability.exclude_lean_runtime,
                                  not portability.ampere_plus)
            candidates = [key] + ([plan_key(model, "", self.gpu, cuda.capability, self.precision, max_batch, flipped)]
                                  if cuda.capability >= (8, 0) else [])
            key = next(filter(None, (find_runnable_plan(k, plans_dir(), runtime) for k in candidates)), key)
            if not key.builder:
                raise EngineError(f"{runtime} runs plans but cannot build one, and the cache ({plans_dir()}) has "
                                  f"none it runs for {key.describe()}: set {BUILDER_ENV} to a Python with a "
                                  f"TensorRT builder (see docs/gpu.md)")
        self.key = key
        self.name = f"{runtime} {self.gpu} {self.precision}"
        self.route = f"plan built by {key.builder} ({key.portability.describe()}), run by {runtime}"
        self.last_timings: dict[str, float] = {}
        self._lock = threading.Lock()
        self._device_buffers: dict = {}
        self._pinned: dict = {}

        def build() -> bytes:
            if builder is None:
                raise EngineError(f"{runtime} cannot build a plan, and the cached one does not load")
            return build_plan(builder, model, self.precision, key.profile, key.portability)

        cuda.push()
        try:
            self._logger = trt_builder.make_logger(trt)
            self._runtime = trt.Runtime(self._logger)
            if key.version_compatible and not key.exclude_lean_runtime:
                self._runtime.engine_host_code_allowed = True     # the plan's own lean runtime: host code
            self._engine, self.plan_path, self.built = load_or_build(
                key, plans_dir(), build, self._deserialize, force_build and builder is not None, report)
            self._check_io()
            self._allocate()
        except EngineError:
            self._free()
            raise
        except cuda_api.CudaError as error:
            self._free()
            if "OUT_OF_MEMORY" in str(error):
                raise EngineError(f"GPU out of memory on {self.gpu} ({self._free_memory()}) for batches up to "
                                  f"{max_batch}; try a smaller --max-batch") from None
            raise EngineError(f"CUDA error ({error})") from None
        except Exception as error:          # TensorRT failing in a way of its own: still one line
            self._free()
            raise EngineError(f"TensorRT engine failed ({type(error).__name__}: {one_line(error)})") from None
        finally:
            cuda.pop()

    def _free_memory(self) -> str:
        try:
            free, total = self._cuda.free_memory()
        except cuda_api.CudaError:
            return "free memory unknown"
        return f"{free >> 20} of {total >> 20} MiB free"

    def _deserialize(self, plan: bytes):
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:      # another TensorRT version or GPU, or damaged bytes
            raise EngineError(self._logger.last_error)
        return engine

    def _check_io(self) -> None:
        engine, trt = self._engine, self._trt
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [INPUT_NAME] or not set(OUTPUT_NAMES) <= set(names):
            raise EngineError(f"plan {self.plan_path} has tensors {names}, not the engine contract's")
        wrong = [n for n in (INPUT_NAME, *OUTPUT_NAMES) if engine.get_tensor_dtype(n) != trt.DataType.FLOAT]
        if wrong:
            raise EngineError(f"plan {self.plan_path}: tensors {wrong} are not float32")

    def _allocate(self) -> None:
        """Page-locked host and device buffers for the largest batch, bound
        to the execution context once: nothing is allocated per inference."""
        cuda = self._cuda
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"GPU out of memory: TensorRT could not create an execution context "
                              f"({self._logger.last_error}); try a smaller --max-batch")
        self._context.set_input_shape(INPUT_NAME, (self.max_batch, *WINDOW_SHAPE))
        for name in (INPUT_NAME, *OUTPUT_NAMES):
            self._pinned[name] = cuda.pinned(tuple(self._context.get_tensor_shape(name)))
            self._device_buffers[name] = cuda.device_buffer(self._pinned[name].nbytes)
            self._context.set_tensor_address(name, self._device_buffers[name])
        self._stream = cuda.stream()
        self._events = [cuda.event() for _ in range(4)]

    def infer(self, windows: np.ndarray) -> Prediction:
        windows = np.ascontiguousarray(windows, np.float32)
        if windows.shape[1:] != WINDOW_SHAPE:
            raise EngineError(f"windows of shape {windows.shape[1:]}, expected {WINDOW_SHAPE}")
        timings = dict.fromkeys(TIMING_STAGES, 0.0)
        with self._lock:
            self._cuda.push()
            try:
                parts = [self._run(windows[start:start + self.max_batch], timings)
                         for start in range(0, len(windows), self.max_batch)]
            except cuda_api.CudaError as error:
                raise EngineError(f"CUDA error during inference ({error})") from None
            finally:
                self._cuda.pop()
        self.last_timings = timings
        if not parts:
            return Prediction(*(np.empty((0, *self._pinned[n].shape[1:]), np.float32) for n in OUTPUT_NAMES))
        return Prediction(*(np.concatenate([p[i] for p in parts]) for i in range(len(OUTPUT_NAMES))))

    def _run(self, chunk: np.ndarray, timings: dict) -> list[np.ndarray]:
        cuda, stream, count = self._cuda, self._stream, len(chunk)
        start, copied, inferred, done = self._events
        started = time.perf_counter()
        host_in = self._pinned[INPUT_NAME][:count]
        np.copyto(host_in, chunk)          # page-locked, so the copy to the device is asynchronous
        pinned = time.perf_counter()
        if not self._context.set_input_shape(INPUT_NAME, (count, *WINDOW_SHAPE)):
            raise EngineError(f"TensorRT refused batch {count} ({self._logger.last_error})")
        cuda.record(start, stream)
        cuda.copy_in(self._device_buffers[INPUT_NAME], host_in, stream)
        cuda.record(copied, stream)
        if not self._context.execute_async_v3(int(stream)):
            raise EngineError(f"TensorRT inference failed ({self._logger.last_error})")
        cuda.record(inferred, stream)
        for name in OUTPUT_NAMES:
            cuda.copy_out(self._pinned[name][:count], self._device_buffers[name], stream)
        cuda.record(done, stream)
        cuda.synchronize(done)
        outputs = [self._pinned[name][:count].copy() for name in OUTPUT_NAMES]    # the buffers are reused
        for stage, ms in (("pin", (pinned - started) * 1000), ("copy_in", cuda.elapsed_ms(start, copied)),
                          ("inference", cuda.elapsed_ms(copied, inferred)),
                          ("copy_out", cuda.elapsed_ms(inferred, done)),
                          ("total", (time.perf_counter() - started) * 1000)):
            timings[stage] += ms
        return outputs

    def _free(self) -> None:
        """Device and pinned memory back, TensorRT objects released (the
        context first); the caller has pushed the primary context."""
        for address in self._device_buffers.values():
            self._cuda.free_device(address)
        for array in self._pinned.values():
            self._cuda.free_pinned(array)
        self._device_buffers, self._pinned = {}, {}
        if "_stream" in self.__dict__:
            self._cuda.destroy(self.__dict__.pop("_stream"), self.__dict__.pop("_events", ()))
        for name in ("_context", "_engine", "_runtime"):
            self.__dict__.pop(name, None)

    def close(self) -> None:
        with self._lock:
            self._cuda.push()
            try:
                self._free()
            finally:
                self._cuda.pop()
            self._cuda.release()
