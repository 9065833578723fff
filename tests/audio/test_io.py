"""Audio in (rt_mer.audio.io): the same samples out whatever the blocks,
rates and channel counts they arrive in, as pedalboard proves its
resampler: every block size, every common rate."""
from __future__ import annotations

import numpy as np
import pytest

from rt_mer.audio.io import Resampler, to_mono
from rt_mer.dsp.frontend import SAMPLE_RATE

from support.music import BLOCKS, chirp, in_blocks

RATES = [8000, 16000, 22050, 44100, 48000, 96000]


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("block", BLOCKS)
def test_resampling_does_not_depend_on_the_blocks(rate, block):
    signal = chirp(rate, 0.5)
    whole = Resampler(rate)(signal, last=True)
    resampler = Resampler(rate)
    pieces = in_blocks(signal, block)
    streamed = np.concatenate([resampler(piece, last=i == len(pieces) - 1) for i, piece in enumerate(pieces)])
    assert abs(len(whole) - len(signal) * SAMPLE_RATE / rate) <= 1
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_identical_channels_downmix_to_the_same_mono(channels):
    mono = chirp(SAMPLE_RATE, 0.25)
    block = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
    np.testing.assert_allclose(to_mono(block), mono, rtol=1e-6, atol=1e-7)     # a mean of six rounds
