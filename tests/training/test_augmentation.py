"""Mixup within a corpus, mixed as sounds, and targets mixed as their windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rt_mer.dsp import frontend
from rt_mer.training.augmentation import augment, mix_windows, mixed, mixing_matrix


def test_mixup_mixes_windows_of_one_corpus():
    """Each row of the mixing matrix is a share of its own window and the
    rest of one partner from its own corpus (consecutive groups)."""
    mixing = mixing_matrix([(3, 0.4), (5, 0.4), (2, 0.0), (2, 0.4)], np.random.default_rng(1))
    assert np.allclose(mixing.sum(axis=1), 1.0) and (mixing >= 0).all()
    assert all(np.count_nonzero(row) <= 2 for row in mixing)
    assert (mixing[8:10, :] == np.eye(12)[8:10]).all()                # alpha 0: not mixed
    corpus = np.repeat([0, 1, 2, 3], [3, 5, 2, 2])
    rows, columns = np.nonzero(mixing)
    assert (corpus[rows] == corpus[columns]).all()
    assert (np.diag(mixing) > 0).all()                                 # each row holds its own window
    assert any(np.count_nonzero(row) == 2 for row in mixing)         # some windows are mixed


def test_mixup_adds_sounds_at_their_shares():
    """Two tones, the second 20 dB quieter, mixed 3:1 are heard 3:1: each is
    first brought to the same peak, powers add, the mix keeps the row's level."""
    spec = torch.full((2, 50, 8), -160.0)
    spec[0, 10], spec[1, 40] = -10.0, -30.0
    mixing = np.array([[0.75, 0.25], [0.0, 1.0]], np.float32)
    mix = mix_windows(spec, mixing)
    assert mix[0, 10, 0].item() == pytest.approx(-10 + 10 * np.log10(0.75), abs=1e-3)
    assert mix[0, 40, 0].item() == pytest.approx(-10 + 10 * np.log10(0.25), abs=1e-3)
    assert torch.allclose(mix[1], spec[1], atol=1e-3)                  # unmixed: unchanged
    silence = torch.full((2, 50, 8), frontend.FLOOR_DB)
    silence[0] = spec[0]
    mix = mix_windows(silence, np.array([[0.8, 0.2], [0.5, 0.5]], np.float32))
    assert mix[0, 20].max().item() == frontend.FLOOR_DB          # silence adds nothing
    assert mix[1, 10, 0].item() == pytest.approx(-100 + 10 * np.log10(0.5), abs=1e-3)   # at the silent window's level
    targets = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    assert np.allclose(mixed(targets, mixing)[0], [0.75, 0.25])
    assert mixed([targets[0], None], mixing) == [None, None]     # a mix with an untaught window: no target


def test_augmentation_is_seeded_and_keeps_the_shape():
    """The same generator state gives the same changes; they do change the windows."""
    loud = torch.full((8, frontend.N_BINS, frontend.WINDOW_FRAMES), -20.0)
    first = augment(loud.clone(), torch.Generator().manual_seed(3))
    assert first.shape == loud.shape and torch.equal(first, augment(loud.clone(), torch.Generator().manual_seed(3)))
    assert not torch.equal(first, loud)
