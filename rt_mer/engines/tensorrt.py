"""TensorRT back-end (NVIDIA GPU), behind the same interface as ONNX Runtime.

Building and running are separate steps, as in TensorRT's own samples: the
shipped ONNX model is built once into a plan for this GPU, cached under
`plans_dir()`, and loaded on later runs. One object owns the execution
context, the page-locked host buffers, the device buffers (sized for the
largest batch of the optimisation profile) and one CUDA stream, so an
inference allocates nothing on the device or in pinned memory.

Either module of the TensorRT family that has the builder API serves:
`tensorrt`, or `tensorrt_rtx` (TensorRT for RTX). TensorRT for RTX, like
TensorRT 11, builds strongly typed networks only: it has no FP16 builder
flag, so the fp32 model runs in fp32 there.

The plan cache (keys, metadata sidecars, checks, build-or-load) is in
plans.py, plain Python that needs no GPU; tensorrt and pycuda are imported
only when the engine is opened.
"""
from __future__ import annotations

import importlib
import importlib.util
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .base import INPUT_NAME, OUTPUT_NAMES, WINDOW_SHAPE, EngineError, Prediction
from .plans import Report, load_or_build, note, one_line, plan_key, plans_dir

MODULES = ("tensorrt", "tensorrt_rtx")      # tried in this order
PRECISIONS = ("auto", "fp16", "fp32")
DEFAULT_MAX_BATCH = 1024
WORKSPACE_BYTES = 1 << 30
FP16_CAPABILITY = (7, 0)       # fast FP16 arithmetic from Volta on
TIMING_STAGES = ("pin", "copy_in", "inference", "copy_out", "total")


# -------------------------------------------------------- precision choice

def builder_has_fp16(module_name: str, builder_flags: object) -> bool:
    """TensorRT 10 takes FP16 as a builder flag. TensorRT for RTX and
    TensorRT 11 build strongly typed networks only, whose precision is the
    ONNX file's own (fp32 here), and have no such flag (or ignore it)."""
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


# ------------------------------------------------------- TensorRT, pycuda

def installed_module() -> str | None:
    """The first of MODULES installed; found without importing it, which is
    slow and loads CUDA."""
    return next((name for name in MODULES if importlib.util.find_spec(name)), None)


def import_backend():
    """(the TensorRT module, pycuda.driver), or EngineError saying what is missing."""
    name = installed_module()
    if name is None:
        raise EngineError("tensorrt not installed: pip install 'rt-mer[gpu]'")
    if importlib.util.find_spec("pycuda") is None:
        raise EngineError("pycuda not installed: pip install 'rt-mer[gpu]'")
    try:
        trt = importlib.import_module(name)
    except Exception as error:             # a wheel without its CUDA libraries: ImportError, OSError, ...
        raise EngineError(f"{name} does not load ({one_line(error)})") from None
    try:
        import pycuda.driver as cuda
    except Exception as error:             # ImportError naming libcuda.so: no NVIDIA driver
        raise EngineError(f"no CUDA driver ({one_line(error)})") from None
    return trt, cuda


def open_device(cuda):
    """CUDA device 0 (of CUDA_VISIBLE_DEVICES), or EngineError."""
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as error:
        raise EngineError(f"no CUDA device ({one_line(error)})") from None
    if count == 0:
        raise EngineError("no CUDA device")
    return cuda.Device(0)


def make_logger(trt):
    """A TensorRT logger that keeps errors for our one-line messages instead
    of printing TensorRT's own lines."""
    errors_only = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg) -> None:
            if severity in errors_only:
                self.errors.append(msg)

        @property
        def last_error(self) -> str:
            return one_line(self.errors[-1]) if self.errors else "no reason given"

    return Logger()


def check_network(model: Path, network) -> None:
    """The ONNX graph TensorRT parsed must honour the engine contract."""
    from .onnxruntime import check_contract
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    check_contract(model, [SimpleNamespace(name=t.name, shape=tuple(t.shape)) for t in tensors],
                   [SimpleNamespace(name=t.name, shape=tuple(t.shape)) for t in outputs])


def build_plan(trt, logger, model: Path, precision: str, profile: tuple[int, int, int]) -> bytes:
    """ONNX -> serialised plan for the current GPU (a minute or so)."""
    builder = trt.Builder(logger)
    flags = 0
    if not builder_has_fp16(trt.__name__, trt.BuilderFlag):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(model)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(f"{model}: TensorRT cannot parse it ({one_line(errors[0]) if errors else logger.last_error})")
    check_network(model, network)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)     # fp32 means fp32: parity with ONNX Runtime on CPU
    if trt.__name__ == "tensorrt_rtx":
        # its default is a portable plan for a list of RTX architectures; build for this GPU instead
        config.num_compute_capabilities = 1
        config.set_compute_capability(trt.ComputeCapability.CURRENT, 0)
    shapes = [(batch, *WINDOW_SHAPE) for batch in profile]
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(INPUT_NAME, *shapes)
    config.add_optimization_profile(optimisation)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT could not build a plan from {model} ({logger.last_error})")
    return bytes(plan)


class TensorRTEngine:
    """A cached TensorRT plan of the model, run on CUDA device 0.

    `infer` may be called from any thread (the live loop's is not the one
    that opened the engine): each call pushes the device's primary context
    and pops it after. Batches above `max_batch` run in chunks.
    `last_timings` holds the last call's stages in ms: pin (into page-locked
    memory, host), copy_in, inference, copy_out (CUDA events), total (wall).
    """

    def __init__(self, model: Path, precision: str = "auto", max_batch: int = DEFAULT_MAX_BATCH,
                 force_build: bool = False, report: Report = note) -> None:
        if max_batch < 1:
            raise EngineError(f"--max-batch must be at least 1, got {max_batch}")
        trt, cuda = import_backend()
        device = open_device(cuda)
        self._trt, self._cuda, self.max_batch = trt, cuda, max_batch
        self.gpu, capability = device.name(), device.compute_capability()
        runtime = f"{trt.__name__} {getattr(trt, '__version__', '(version unknown)')}"
        check_gpu_supported(trt, self.gpu, capability, runtime)
        self.precision = resolve_precision(precision, builder_has_fp16(trt.__name__, trt.BuilderFlag), capability,
                                           runtime)
        self.key = plan_key(model, runtime, self.gpu, capability, self.precision, max_batch)
        self.name = f"{runtime} {self.gpu} {self.precision}"
        self.last_timings: dict[str, float] = {}
        self._lock = threading.Lock()
        self._device_buffers: dict = {}
        self._primary = device.retain_primary_context()     # shared with any other CUDA user in the process
        self._primary.push()
        try:
            self._logger = make_logger(trt)
            self._runtime = trt.Runtime(self._logger)
            self._engine, self.plan_path, self.built = load_or_build(
                self.key, plans_dir(), lambda: build_plan(trt, self._logger, model, self.precision, self.key.profile),
                self._deserialize, force_build, report)
            self._check_io()
            self._allocate()
        except EngineError:
            self._free()
            raise
        except cuda.MemoryError:
            self._free()
            raise EngineError(f"GPU out of memory on {self.gpu} ({self._free_memory()}) for batches up to "
                              f"{max_batch}; try a smaller --max-batch") from None
        except Exception as error:          # CUDA or TensorRT failing in a way of its own: still one line
            self._free()
            raise EngineError(f"TensorRT engine failed ({type(error).__name__}: {one_line(error)})") from None
        finally:
            cuda.Context.pop()

    def _free_memory(self) -> str:
        try:
            free, total = self._cuda.mem_get_info()
        except self._cuda.Error:
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
        shapes = {name: tuple(self._context.get_tensor_shape(name)) for name in (INPUT_NAME, *OUTPUT_NAMES)}
        self._host = {name: cuda.pagelocked_empty(shape, np.float32) for name, shape in shapes.items()}
        for name, host in self._host.items():
            self._device_buffers[name] = cuda.mem_alloc(host.nbytes)
            self._context.set_tensor_address(name, int(self._device_buffers[name]))
        self._stream = cuda.Stream()
        self._events = [cuda.Event() for _ in range(4)]

    def infer(self, windows: np.ndarray) -> Prediction:
        windows = np.ascontiguousarray(windows, np.float32)
        if windows.shape[1:] != WINDOW_SHAPE:
            raise EngineError(f"windows of shape {windows.shape[1:]}, expected {WINDOW_SHAPE}")
        timings = dict.fromkeys(TIMING_STAGES, 0.0)
        with self._lock:
            self._primary.push()
            try:
                parts = [self._run(windows[start:start + self.max_batch], timings)
                         for start in range(0, len(windows), self.max_batch)]
            except self._cuda.Error as error:
                raise EngineError(f"CUDA error during inference ({one_line(error)})") from None
            finally:
                self._cuda.Context.pop()
        self.last_timings = timings
        if not parts:
            return Prediction(*(np.empty((0, *self._host[n].shape[1:]), np.float32) for n in OUTPUT_NAMES))
        return Prediction(*(np.concatenate([p[i] for p in parts]) for i in range(len(OUTPUT_NAMES))))

    def _run(self, chunk: np.ndarray, timings: dict) -> list[np.ndarray]:
        cuda, stream, count = self._cuda, self._stream, len(chunk)
        start, copied, inferred, done = self._events
        started = time.perf_counter()
        host_in = self._host[INPUT_NAME][:count]
        np.copyto(host_in, chunk)          # page-locked, so the copy to the device is asynchronous
        pinned = time.perf_counter()
        if not self._context.set_input_shape(INPUT_NAME, (count, *WINDOW_SHAPE)):
            raise EngineError(f"TensorRT refused batch {count} ({self._logger.last_error})")
        start.record(stream)
        cuda.memcpy_htod_async(self._device_buffers[INPUT_NAME], host_in, stream)
        copied.record(stream)
        if not self._context.execute_async_v3(stream.handle):
            raise EngineError(f"TensorRT inference failed ({self._logger.last_error})")
        inferred.record(stream)
        for name in OUTPUT_NAMES:
            cuda.memcpy_dtoh_async(self._host[name][:count], self._device_buffers[name], stream)
        done.record(stream)
        done.synchronize()
        outputs = [self._host[name][:count].copy() for name in OUTPUT_NAMES]    # the buffers are reused
        for stage, ms in (("pin", (pinned - started) * 1000), ("copy_in", copied.time_since(start)),
                          ("inference", inferred.time_since(copied)), ("copy_out", done.time_since(inferred)),
                          ("total", (time.perf_counter() - started) * 1000)):
            timings[stage] += ms
        return outputs

    def _free(self) -> None:
        """Device memory back, TensorRT objects released (the context first);
        the caller has pushed the primary context."""
        for allocation in self._device_buffers.values():
            allocation.free()
        self._device_buffers = {}
        for name in ("_stream", "_events", "_host", "_context", "_engine", "_runtime"):
            self.__dict__.pop(name, None)

    def close(self) -> None:
        with self._lock:
            self._primary.push()
            try:
                self._free()
            finally:
                self._cuda.Context.pop()
