"""The PyTorch baselines' engines (rt_mer.inference.pytorch), or why they
cannot run here: never random weights."""
from __future__ import annotations

from pathlib import Path

from ..inference import EngineError


def trained_network(weights: Path | None = None):
    """(the PyTorch network with the shipped weights, or `weights`, "") for
    the PyTorch baselines, or (None, why not)."""
    try:
        from ..inference.pytorch import load_network
    except ImportError:
        return None, "PyTorch is not installed (the [train] extra)"
    try:
        return load_network(weights), ""
    except EngineError as error:
        return None, str(error)


def torch_eager_engine():
    """(PyTorch eager on the GPU, "") or (None, why it cannot run here)."""
    try:
        from ..inference.pytorch import open_torch_engine
    except ImportError:
        return None, "PyTorch is not installed (the [train] extra)"
    try:
        return open_torch_engine(), ""
    except EngineError as error:
        return None, str(error)
