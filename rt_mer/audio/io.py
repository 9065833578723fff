"""Reading audio files and bringing audio to the model's rate."""
from __future__ import annotations

import os
from contextlib import contextmanager
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


@contextmanager
def quiet_native_stderr():
    """Silence file descriptor 2 for a moment: libmpg123, inside libsndfile,
    prints resync notes there directly, which would break our one-line
    error contract. Python's own sys.stderr writes are unaffected only if
    they happen outside this block, so keep it tight around library calls."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_audio(path: str | Path) -> soundfile.SoundFile:
    """An open SoundFile, checked to exist, be readable and hold audio.

    Raises AudioError for a missing, unreadable or empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        f = soundfile.SoundFile(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(f"{path}: not a readable audio file ({error})") from None
    if f.frames == 0:
        f.close()
        raise AudioError(f"{path}: no audio in file")
    return f


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Whole file as mono float32 at SAMPLE_RATE, and its original rate.

    Raises AudioError for a missing, unreadable, empty or non-finite file.
    """
    with open_audio(path) as f:
        try:
            data, rate = f.read(dtype="float32", always_2d=True), f.samplerate
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
            raise AudioError(f"{path}: not a readable audio file ({error})") from None
    if len(data) == 0:
        raise AudioError(f"{path}: no audio in file")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: {bad} NaN or infinite samples")
    return Resampler(rate)(to_mono(data), last=True), rate
