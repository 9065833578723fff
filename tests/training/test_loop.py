"""The training loop: batches in the recipe's shares, the answers' term for
the recipe's share of the steps, the same weights from the same seed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rt_mer.training.loop import Sampler, train
from rt_mer.training.losses import TeacherAnswers
from rt_mer.training.recipe import Recipe

from support.training_clips import taught_clip


def recordings(count: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    clips = [taught_clip(rng.normal(size=(10, 8))) for _ in range(count)]
    for i, clip in enumerate(clips):
        clip.spec = rng.uniform(-100, -20, (252, 80 + i)).astype(np.float16)
        clip.path, clip.artist, clip.quadrant = Path(f"r{i}.mp3"), f"artist {i}", i % 4
        clip.valence, clip.arousal = float(i % 4 in (0, 3)), float(i % 4 in (0, 1))
    return clips


def test_batch_shares_are_the_recipes():
    """Each corpus gets its share of a batch, rounded; a corpus at share 0
    is left out."""
    clips = [taught_clip(np.zeros((10, 8))) for _ in range(4)]
    sample = Sampler([(clips, 0.45, 0.0), (clips, 0.55, 0.4), (clips, 0.0, 0.4)], 24, np.random.default_rng(0))
    assert sample.groups == [(11, 0.0), (13, 0.4)] and len(sample()) == 24


def test_answers_train_only_the_first_share_of_the_steps(monkeypatch):
    """answers_until 0.5: the answers' term is in the loss of the first half
    of the steps only; the rest learn from the labels alone."""
    answered = []
    monkeypatch.setattr(TeacherAnswers, "loss", lambda self, logits, *_: answered.append(1) or logits.sum() * 0)
    recipe = Recipe(steps=6, batch=4, recordings=1.0, procedural=0.0, distill=0.0, mixup=0.0,
                    answers=1.0, answers_until=0.5)
    train(recordings(16), [], [], recipe, seed=0, log=lambda *_: None)
    assert len(answered) == 3


def test_a_seed_gives_the_same_weights():
    """The shipped recipe (distillation, answers, mixup of the renders) at a
    few steps: the same seed gives the same weights, bit for bit; another
    seed, others."""
    torch.set_num_threads(1)
    renders = recordings(8, seed=1)
    for clip in renders:
        clip.path = clip.path.with_suffix(".flac")

    def weights(seed: int) -> dict:
        return train(recordings(16), renders, [], Recipe(steps=3, batch=8), seed, log=lambda *_: None).state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)
