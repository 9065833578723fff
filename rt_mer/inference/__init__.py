"""Inference back-ends behind one interface (`Engine`), and their choice."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..paths import require_regular_file
from .base import Engine, EngineError, Prediction
from .tensorrt import DEFAULT_MAX_BATCH, PRECISIONS   # light: TensorRT itself is imported by the engine

__all__ = ["DEFAULT_MAX_BATCH", "ENGINES", "PRECISIONS", "Engine", "EngineError", "Prediction", "default_model",
           "open_engine", "shipped_weights"]


MODEL_FILE = "rt-mer.onnx"


def default_model() -> Path:
    """The shipped ONNX model: engines/rt-mer.onnx, which a wheel installs as
    rt_mer/models/ and an editable install leaves in the checkout."""
    installed = Path(str(resources.files("rt_mer"))) / "models" / MODEL_FILE
    return installed if installed.is_file() else Path(__file__).resolve().parents[2] / "engines" / MODEL_FILE


def shipped_weights() -> Path:
    """The shipped model's PyTorch weights, beside it (rt-mer.pt): training
    writes them there; a checkout has them, a wheel ships the ONNX model only."""
    return default_model().with_suffix(".pt")


ENGINES = ("auto", "onnxruntime", "tensorrt")


def open_engine(kind: str = "auto", model: Path | None = None, threads: int | None = None, precision: str = "auto",
                max_batch: int = DEFAULT_MAX_BATCH, force_build: bool = False) -> Engine:
    """Open a back-end by name; raises EngineError with a one-line reason.

    "auto" is TensorRT where a CUDA device, TensorRT and cuda-bindings are
    there and the engine opens, else ONNX Runtime on the CPU. The engine's
    `reason` says why it was chosen ("as asked", "auto: no CUDA device"...)
    and, for TensorRT, which TensorRT built the plan and which runs it.
    `threads` is for ONNX Runtime; `precision`, `max_batch` and
    `force_build` (ignore the cached plan) for TensorRT.
    """
    model = Path(model) if model else default_model()
    require_regular_file(model, EngineError)
    if not model.is_file():
        raise EngineError(f"{model}: no such model file")
    if kind not in ENGINES:
        raise EngineError(f"unknown engine {kind!r}; choose from {', '.join(ENGINES)}")
    if kind == "onnxruntime":
        return _with_reason(_onnxruntime(model, threads), "as asked")
    try:
        from .tensorrt import TensorRTEngine
        engine = TensorRTEngine(model, precision, max_batch, force_build)
    except EngineError as error:
        if kind == "tensorrt":
            raise
        return _with_reason(_onnxruntime(model, threads), f"auto: {error}")
    chosen = "as asked" if kind == "tensorrt" else f"auto: CUDA device {engine.gpu} and TensorRT"
    return _with_reason(engine, f"{chosen}; {engine.route}")


def _onnxruntime(model: Path, threads: int | None) -> Engine:
    from .onnxruntime import OnnxRuntimeEngine
    return OnnxRuntimeEngine(model, threads)


def _with_reason(engine: Engine, reason: str) -> Engine:
    engine.reason = reason
    return engine
