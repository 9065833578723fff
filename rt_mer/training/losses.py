"""The training losses: the labels' (`emotion_loss`), distillation of the
teacher's embedding (`Student`) and of its answer per window
(`TeacherAnswers`, through the drivers `through` names)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..contract import DRIVERS
from .augmentation import mixed
from .data.clips import Clip, teacher_target, window_mean
from .network import Outputs

LABEL_SMOOTHING = 0.1


def emotion_loss(outputs, clips: list[Clip], procedural_weight: float,
                 mixing: np.ndarray | None = None) -> torch.Tensor:
    """Each window's targets, or with `mixing` (labelled windows mixed only
    with labelled ones) the mix of its windows' targets."""
    logits, quadrant_logits = outputs.logits, outputs.quadrant_logits
    targets = torch.tensor([[c.valence, c.arousal] for c in clips])
    labelled = torch.tensor([c.quadrant is not None for c in clips])
    targets = torch.where(labelled[:, None], targets * (1 - 2 * LABEL_SMOOTHING) + LABEL_SMOOTHING, targets)
    if mixing is not None:
        targets = torch.from_numpy(mixing) @ targets
    weights = torch.where(labelled, 1.0, procedural_weight)[:, None]
    loss = (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights).mean()
    if labelled.any():
        quadrants = torch.tensor([c.quadrant if c.quadrant is not None else 0 for c in clips])
        if mixing is not None:
            quadrants = torch.from_numpy(mixing) @ F.one_hot(quadrants, 4).float()   # shares of each quadrant
        loss = loss + 0.5 * F.cross_entropy(quadrant_logits[labelled], quadrants[labelled])
    return loss


def through(outputs: Outputs, drivers: str) -> torch.Tensor:
    """The logits, with the gradient reaching only the named drivers' terms
    (DRIVERS; "all": the whole network). The value is the logits either way
    (to rounding)."""
    if drivers == "all":
        return outputs.logits
    named = [DRIVERS.index(name) for name in drivers.split(",")]
    terms = outputs.drivers[..., named].sum(dim=-1)
    return outputs.logits.detach() + terms - terms.detach()


class Student:
    """Distillation, training only: a linear head from the network's
    embedding to the teacher's output (each unit z-scored over the training
    clips), learnt by mean squared error, so the branches learn what a
    tagger trained on a million songs hears."""

    def __init__(self, clips: list[Clip], output: str, width: int) -> None:
        rows = np.concatenate([clip.teacher[output].astype(np.float32) for clip in clips if output in clip.teacher])
        self.output, self.mean, self.std = output, rows.mean(axis=0), rows.std(axis=0) + 1e-3
        self.head = torch.nn.Linear(width, rows.shape[1])

    def loss(self, embedding: torch.Tensor, clips: list[Clip], starts: tuple[int, ...],
             mixing: np.ndarray | None = None) -> torch.Tensor:
        targets = mixed([teacher_target(clip, self.output, start) for clip, start in zip(clips, starts)], mixing)
        return head_loss(F.mse_loss, self.head, embedding,
                         [None if target is None else (target - self.mean) / self.std for target in targets])


class TeacherAnswers:
    """Logit distillation, training only: the teacher's own answer for each
    window of a recording. A linear probe on the teacher (a logistic
    regression on its penultimate layer, the mean over a clip) is fitted per
    dimension on the training recordings, out of fold by artist, so no
    clip's answer comes from a fit that saw its label. Applied to the
    patches of a window it says how positive and how aroused that stretch
    sounds to a tagger trained on a million songs (which bars of a sad
    record sound sad, where the label holds for the whole clip), and the
    network learns that by binary cross-entropy. Recordings only: on EMOPIA
    the probe's valence is near chance."""

    FOLDS = 4

    def __init__(self, recordings: list[Clip]) -> None:
        patches = [clip.teacher["penultimate"].astype(np.float32) for clip in recordings]
        x = np.stack([rows.mean(axis=0) for rows in patches])
        y = np.array([[clip.valence, clip.arousal] for clip in recordings]) > 0.5
        self.logits: dict[Path, np.ndarray] = {}      # per clip: [patches, (valence, arousal)] logits
        for fitted, answered in GroupKFold(self.FOLDS).split(x, groups=[clip.artist for clip in recordings]):
            probes = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.1))
                      .fit(x[fitted], y[fitted, dimension]) for dimension in range(2)]
            for i in answered:
                self.logits[recordings[i].path] = np.stack([probe.decision_function(patches[i]) for probe in probes], 1)

    def loss(self, logits: torch.Tensor, clips: list[Clip], starts: tuple[int, ...],
             mixing: np.ndarray | None = None) -> torch.Tensor:
        """The probe is affine, so a window's answer is the mean of its
        patches' logits."""
        answers = [1 / (1 + np.exp(-window_mean(self.logits[clip.path], start))) if clip.path in self.logits
                   else None for clip, start in zip(clips, starts)]
        return head_loss(F.binary_cross_entropy_with_logits, torch.nn.Identity(), logits, mixed(answers, mixing))


def head_loss(loss, head: torch.nn.Module, embedding: torch.Tensor, targets: list) -> torch.Tensor:
    """`loss` of a training-only `head` on the windows that have targets."""
    given = [i for i, target in enumerate(targets) if target is not None]
    if not given:
        return embedding.sum() * 0.0
    return loss(head(embedding[given]), torch.from_numpy(np.stack([targets[i] for i in given]).astype(np.float32)))
