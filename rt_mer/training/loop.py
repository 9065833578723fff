"""The training loop: batches drawn from the corpora in fixed shares, the
loss of a batch, and the run that returns the averaged network."""
from __future__ import annotations

import time

import numpy as np
import torch

from .augmentation import augment, mix_windows, mixing_matrix, stack
from .data.clips import Clip, crop
from .losses import Student, TeacherAnswers, emotion_loss, through
from .network import HarmonicCNN
from .recipe import Recipe


def quadrant_balance(clips: list[Clip]) -> np.ndarray:
    """Sampling probabilities that make each quadrant equally likely: the
    model should not learn a corpus's prior (EMOPIA's train split is 31 %
    Q4), since the music it will hear has its own."""
    quadrants = np.array([clip.quadrant for clip in clips])
    weights = 1.0 / np.bincount(quadrants, minlength=4)[quadrants]
    return weights / weights.sum()


class Sampler:
    """Draws each batch from the corpora (clips, share, mixup alpha) in
    fixed shares, each labelled corpus quadrant-balanced."""

    def __init__(self, corpora: list[tuple[list[Clip], float, float]], batch: int, rng: np.random.Generator) -> None:
        corpora = [(clips, share, mixup) for clips, share, mixup in corpora if clips and share > 0]
        total = sum(share for _, share, _ in corpora)
        self.parts, self.groups = [], []       # groups: a batch's clips per corpus, in order, and its mixup alpha
        for clips, share, mixup in corpora:
            count = round(batch * share / total)
            self.parts.append((clips, count, quadrant_balance(clips) if clips[0].quadrant is not None else None))
            self.groups.append((count, mixup))
        self.rng = rng

    def __call__(self) -> list[Clip]:
        return [clips[i] for clips, count, p in self.parts for i in self.rng.choice(len(clips), count, p=p)]


def loss_on(network: HarmonicCNN, clips: list[Clip], rng: np.random.Generator, generator: torch.Generator,
            recipe: Recipe, groups: list[tuple[int, float]], student: Student | None = None,
            answers: TeacherAnswers | None = None) -> torch.Tensor:
    """The training loss on a batch of `clips`: `groups` of consecutive
    clips from one corpus each, with its mixup alpha (mixup stays within one)."""
    windows, starts = zip(*(crop(clip.spec, rng) for clip in clips))
    specs = torch.from_numpy(np.stack(windows).astype(np.float32))
    mixing = mixing_matrix(groups, rng) if any(alpha for _, alpha in groups) else None
    if mixing is not None:
        specs = mix_windows(specs, mixing)
    outputs = network(stack(augment(specs, generator)))
    loss = emotion_loss(outputs, clips, recipe.procedural_weight, mixing)
    if student is not None:
        loss = loss + recipe.distill * student.loss(outputs.embedding, clips, starts, mixing)
    if answers is not None:
        loss = loss + recipe.answers * answers.loss(through(outputs, recipe.answers_through), clips, starts, mixing)
    return loss


def train(recordings: list[Clip], emopia: list[Clip], extra: list[Clip], recipe: Recipe, seed: int,
          log=print) -> HarmonicCNN:
    """The network trained by `recipe` on the corpora, from `seed`: the
    exponential moving average of its weights."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = HarmonicCNN(recipe.width)
    average = torch.optim.swa_utils.AveragedModel(
        network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.995), use_buffers=True)
    student = (Student(recordings + emopia + extra, recipe.teacher_output, network.quadrant.in_features)
               if recipe.distill else None)
    answers = TeacherAnswers(recordings) if recipe.answers else None
    parameters = list(network.parameters()) + (list(student.head.parameters()) if student else [])
    optimiser = torch.optim.AdamW(parameters, lr=3e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=recipe.steps, pct_start=0.1)
    emopia_share = 1.0 - recipe.recordings - recipe.procedural
    # Mixup mixes the renders only: two records at once are no record; two piano passages are piano.
    sample = Sampler([(recordings, recipe.recordings, 0.0), (emopia, emopia_share, recipe.mixup),
                      (extra, recipe.procedural, recipe.mixup)], recipe.batch, rng)
    started = time.time()
    for step in range(1, recipe.steps + 1):
        network.train()
        loss = loss_on(network, sample(), rng, generator, recipe, sample.groups, student,
                       answers if step <= recipe.answers_until * recipe.steps else None)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        average.update_parameters(network)
        if step % 100 == 0 or step == recipe.steps:
            log(f"step {step}/{recipe.steps}  loss {loss.item():.3f}  {time.time() - started:.0f} s")
    return average.module.eval()
