"""Inference back-ends behind one interface (`Engine`), and their choice."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .base import Engine, EngineError, Prediction

__all__ = ["Engine", "EngineError", "Prediction", "default_model", "open_engine"]


MODEL_FILE = "rt-mer.onnx"


def default_model() -> Path:
    """The shipped ONNX model: engines/rt-mer.onnx, which a wheel installs as
    rt_mer/models/ and an editable install leaves in the checkout."""
    installed = Path(str(resources.files("rt_mer"))) / "models" / MODEL_FILE
    return installed if installed.is_file() else Path(__file__).resolve().parents[2] / "engines" / MODEL_FILE


def open_engine(kind: str = "onnxruntime", model: Path | None = None, threads: int | None = None) -> Engine:
    """Open a back-end by name; raises EngineError with a one-line reason."""
    model = Path(model) if model else default_model()
    if not model.is_file():
        raise EngineError(f"{model}: no such model file")
    if kind == "onnxruntime":
        from .onnxruntime import OnnxRuntimeEngine
        return OnnxRuntimeEngine(model, threads)
    raise EngineError(f"unknown engine {kind!r}")
