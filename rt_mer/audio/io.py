"""Reading audio files and bringing audio to the model's rate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

from ..dsp.frontend import SAMPLE_RATE


class AudioError(Exception):
    """An input that cannot be analysed; the message is one line for the user."""


def to_mono(block: np.ndarray) -> np.ndarray:
    """[frames, channels] or [frames] -> [frames] float32, channels averaged."""
    block = np.asarray(block, np.float32)
    return block.mean(axis=1) if block.ndim == 2 else block


class Resampler:
    """Streaming resampler to SAMPLE_RATE (libsoxr, the library librosa uses
    by default): the same output whether the input comes whole or in blocks."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")

    def __call__(self, mono: np.ndarray, last: bool = False) -> np.ndarray:
        mono = np.asarray(mono, np.float32)
        return mono if self._stream is None else self._stream.resample_chunk(mono, last=last)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Whole file as mono float32 at SAMPLE_RATE, and its original rate.

    Raises AudioError for a missing, unreadable, empty or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(f"{path}: not a readable audio file ({error})") from None
    if len(data) == 0:
        raise AudioError(f"{path}: no audio in file")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: {bad} NaN or infinite samples")
    return Resampler(rate)(to_mono(data), last=True), rate
