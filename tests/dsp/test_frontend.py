"""The streaming front-end: incremental equals one-shot whatever the blocks,
serving equals training, and harmonic stacking lands on the harmonics."""
from __future__ import annotations

import numpy as np
import pytest

from rt_mer.dsp import frontend
from rt_mer.dsp.frontend import SAMPLE_RATE
from rt_mer.stream.windows import FrameHistory

from support.music import BLOCKS, chirp, harmonic_tone, in_blocks


def test_incremental_spectrogram_equals_one_shot():
    audio = np.random.default_rng(0).standard_normal(16000 * 20).astype(np.float32) * 0.1
    streaming = frontend.StreamingSpectrogram()
    rng = np.random.default_rng(1)
    pieces, i = [], 0
    while i < len(audio):
        n = int(rng.integers(1, 5000))
        pieces.append(streaming.push(audio[i:i + n]))
        i += n
    incremental = np.concatenate(pieces, axis=1)
    one_shot = frontend.spectrogram(audio)
    assert incremental.shape == one_shot.shape == (frontend.N_BINS, len(audio) // frontend.FRAME_HOP)
    np.testing.assert_allclose(incremental, one_shot, atol=1e-4)


def test_served_windows_equal_training_windows():
    """Serving stacks windows out of FrameHistory in NumPy; training stacks
    crops of the one-shot spectrogram in torch: the same tensor."""
    torch = pytest.importorskip("torch")
    from rt_mer.training.augmentation import stack
    audio = harmonic_tone(330, 12.0) + np.random.default_rng(2).standard_normal(16000 * 12).astype(np.float32) * 0.01
    spec = frontend.spectrogram(audio)
    history = FrameHistory()
    streaming = frontend.StreamingSpectrogram()
    for block in np.array_split(audio, 37):
        history.push(streaming.push(block))
    served = np.empty((len(frontend.HARMONICS), frontend.N_BINS, frontend.WINDOW_FRAMES), np.float32)
    history.window(history.count, served)
    crop = spec[:, -frontend.WINDOW_FRAMES:]
    trained = stack(torch.from_numpy(crop[None]))[0].numpy()
    np.testing.assert_allclose(served, trained, atol=1e-4)
    np.testing.assert_array_equal(trained, frontend.harmonic_stack(crop))


def test_harmonics_land_on_their_bins():
    f0 = 220.0
    stacked = frontend.harmonic_stack(frontend.spectrogram(harmonic_tone(f0, 3.0)))[..., 20:].mean(axis=-1)
    pitch = int(np.argmin(abs(frontend.bin_frequencies() - f0)))
    for k, harmonic in enumerate(frontend.HARMONICS):
        # the k-th plane peaks at the fundamental's bin (offsets are rounded
        # to the nearest third of a semitone, so a neighbour may share it),
        # while a whole tone away there is nothing
        plane = stacked[k, pitch - 6:pitch + 7]
        assert abs(int(np.argmax(plane)) - 6) <= 1, f"harmonic {harmonic} misplaced"
        assert stacked[k, pitch] - max(stacked[k, pitch - 6], stacked[k, pitch + 6]) > 20
        centre = frontend.bin_frequencies()[pitch + frontend.harmonic_offsets()[k]]
        assert abs(12 * np.log2(centre / (harmonic * f0))) < 0.2      # within a fifth of a semitone
    assert list(frontend.harmonic_offsets()) == [0, 36, 57, 72, 84, 93]


@pytest.mark.parametrize("block", BLOCKS)
def test_the_spectrogram_does_not_depend_on_the_blocks(block):
    audio = chirp(SAMPLE_RATE, 3.0)
    streaming = frontend.StreamingSpectrogram()
    frames = np.concatenate([streaming.push(piece) for piece in in_blocks(audio, block)], axis=1)
    np.testing.assert_allclose(frames, frontend.spectrogram(audio), atol=1e-4)
