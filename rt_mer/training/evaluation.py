"""Scoring a trained network: a clip's logits as the mean over its
windows, the quadrants they give, and accuracies against the labels."""
from __future__ import annotations

import numpy as np
import torch

from ..dsp import frontend
from .augmentation import stack
from .data.clips import HIGH_AROUSAL, POSITIVE_VALENCE, Clip, padded
from .network import HarmonicCNN

VALIDATION_HOP_FRAMES = int(frontend.FRAMES_PER_SECOND)


@torch.no_grad()
def clip_logits(network: HarmonicCNN, clip: Clip) -> np.ndarray:
    """Mean (valence, arousal) logits over a clip's windows, one a second."""
    spec = padded(clip.spec.astype(np.float32))
    starts = range(0, spec.shape[1] - frontend.WINDOW_FRAMES + 1, VALIDATION_HOP_FRAMES)
    windows = torch.from_numpy(np.stack([spec[:, s:s + frontend.WINDOW_FRAMES] for s in starts]))
    return network(stack(windows)).logits.mean(dim=0).numpy()


def predicted_quadrants(logits: np.ndarray) -> np.ndarray:
    """[clips, 2] (valence, arousal) logits -> quadrants 0..3."""
    valence, arousal = logits[:, 0] > 0, logits[:, 1] > 0
    return np.select([valence & arousal, ~valence & arousal, ~valence & ~arousal], [0, 1, 2], 3)


def labelled_quadrants(clips: list[Clip]) -> np.ndarray:
    return np.array([clip.quadrant for clip in clips])


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Quadrants 0..3, predicted and true -> four-quadrant, valence and
    arousal accuracy."""
    return {"quadrant": round(float((predicted == truth).mean()), 4),
            "valence": round(float((POSITIVE_VALENCE[predicted] == POSITIVE_VALENCE[truth]).mean()), 4),
            "arousal": round(float((HIGH_AROUSAL[predicted] == HIGH_AROUSAL[truth]).mean()), 4)}
