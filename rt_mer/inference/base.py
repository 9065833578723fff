"""The engine interface: a batch of harmonic-stacked windows in; valence,
arousal, the explanation map and the drivers out. Every back-end honours it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..contract import INPUT_NAME, OUTPUT_NAMES, WINDOW_SHAPE
from ..errors import RtMerError


class EngineError(RtMerError):
    """A model or back-end that cannot serve; the message is one line."""


def check_contract(path: Path, inputs: list, outputs: list) -> None:
    """The model must take the front-end's windows and give our outputs.
    `inputs`, `outputs`: objects with a name and a shape, as each back-end
    reads them off the model."""
    if [i.name for i in inputs] != [INPUT_NAME] or tuple(inputs[0].shape[1:]) != WINDOW_SHAPE:
        got = ", ".join(f"{i.name}{list(i.shape)}" for i in inputs)
        raise EngineError(f"{path}: model takes {got}, but the front-end makes {INPUT_NAME}[batch, "
                          f"{', '.join(map(str, WINDOW_SHAPE))}]")
    missing = set(OUTPUT_NAMES) - {o.name for o in outputs}
    if missing:
        raise EngineError(f"{path}: model lacks outputs {sorted(missing)}")


@dataclass
class Prediction:
    valence: np.ndarray          # [batch] in [-1, 1]
    arousal: np.ndarray          # [batch] in [-1, 1]
    # explanation [batch, 2, 12, steps]: the harmony branches' valence, arousal logit maps over
    # pitch class (0 = A) x time; their mean is harmony + key
    explanation: np.ndarray
    drivers: np.ndarray          # [batch, 2, len(DRIVERS)]: each branch's term of the valence, arousal logits


class Engine(Protocol):
    name: str                    # shown to the user, e.g. "onnxruntime CPU"
    reason: str                  # why this back-end serves, set by open_engine: "as asked", "auto: no CUDA device"

    def infer(self, windows: np.ndarray) -> Prediction:
        """windows: float32 [batch, *WINDOW_SHAPE] -> Prediction."""

    def close(self) -> None:
        """Hand back what the engine holds (a GPU context, its memory); a
        no-op where the garbage collector frees it all. Call it once, last."""
