"""ONNX Runtime back-end (CPU)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from ..contract import INPUT_NAME, OUTPUT_NAMES
from .base import EngineError, Prediction, check_contract


class OnnxRuntimeEngine:
    def __init__(self, model: Path, threads: int | None = None) -> None:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle worker threads would spin for each hop's tiny batch: a live
        # stream then costs several times the CPU its inference needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as error:          # ORT raises its own untyped errors for every bad file
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise EngineError(f"{model}: not a usable ONNX model ({reason[:200]})") from None
        check_contract(model, self._session.get_inputs(), self._session.get_outputs())
        self.name = f"onnxruntime {onnxruntime.__version__} CPU" + (f" x{threads}" if threads else "")

    def infer(self, windows: np.ndarray) -> Prediction:
        return Prediction(*self._session.run(OUTPUT_NAMES, {INPUT_NAME: windows}))

    def close(self) -> None:
        """Nothing to hand back: the session's memory goes with the engine."""
