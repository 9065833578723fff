"""PyTorch back-end: the shipped network in eager mode on a CUDA GPU,
copies in and out included as for TensorRT. It is the baseline a GPU
engine must beat and the floor on a machine with nothing installed
(`rt-mer bench`, tools/gpu_torch_bench.py), not a serving choice of
`open_engine`. It imports torch at once: import it only where torch is."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..contract import WINDOW_SHAPE
from ..training.network import ExportWrapper, HarmonicCNN, trained
from . import shipped_weights
from .base import EngineError, Prediction

DEFAULT_MAX_BATCH = 1024


def load_network(weights: Path | None = None) -> HarmonicCNN:
    """The network with the shipped weights, or `weights`; EngineError says
    why not: never random weights."""
    weights = weights or shipped_weights()
    if not weights.is_file():
        raise EngineError(f"the PyTorch weights {weights} are not here (a wheel ships the ONNX model only)")
    try:
        return trained(weights)
    except Exception as error:          # another model's weights, a damaged file
        raise EngineError(f"the PyTorch weights {weights} do not load ({type(error).__name__}: another version of "
                          f"the network, or a damaged file)") from None


class TorchEagerEngine:
    """The model in PyTorch eager mode on the GPU. Its `last_timings` has
    the TensorRT engine's stages (pin, copy_in, inference, copy_out: CUDA
    events; total: wall), so the bench's gpu and streams figures run on it
    as on TensorRT."""

    def __init__(self, network: HarmonicCNN, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._network = ExportWrapper(network).cuda().eval()
        self.name = f"pytorch {torch.__version__} eager {torch.cuda.get_device_name()}"
        self.reason = "the PyTorch eager baseline"
        self.max_batch = max_batch
        self.last_timings: dict[str, float] = {}
        self._pinned = torch.empty((max_batch, *WINDOW_SHAPE), dtype=torch.float32).pin_memory()
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]

    def infer(self, windows: np.ndarray) -> Prediction:
        if len(windows) > len(self._pinned):          # a larger batch than any before: the buffer grows once
            self._pinned = torch.empty((len(windows), *WINDOW_SHAPE), dtype=torch.float32).pin_memory()
        start, copied, inferred, done = self._events
        started = time.perf_counter()
        host = self._pinned[:len(windows)]
        host.numpy()[...] = windows
        pinned = time.perf_counter()
        with torch.inference_mode():
            start.record()
            device = host.cuda(non_blocking=True)
            copied.record()
            outputs = self._network(device)
            inferred.record()
            result = Prediction(*(output.cpu().numpy() for output in outputs))     # .cpu() waits for the GPU
            done.record()
        done.synchronize()
        self.last_timings = {"pin": (pinned - started) * 1000, "copy_in": start.elapsed_time(copied),
                             "inference": copied.elapsed_time(inferred), "copy_out": inferred.elapsed_time(done),
                             "total": (time.perf_counter() - started) * 1000}
        return result

    def close(self) -> None:
        """Drops the network and the pinned buffer, and hands torch's cached GPU memory back."""
        self._network = self._pinned = None
        torch.cuda.empty_cache()


def open_torch_engine(weights: Path | None = None, max_batch: int = DEFAULT_MAX_BATCH) -> TorchEagerEngine:
    """PyTorch eager on the GPU; EngineError says why it cannot run here."""
    network = load_network(weights)
    if not torch.cuda.is_available():
        raise EngineError(f"torch {torch.__version__} has no CUDA device (a CPU build, or no GPU)")
    return TorchEagerEngine(network, max_batch)
