"""Reading audio files and bringing audio to the model's rate."""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile
import soxr

from ..dsp.frontend import SAMPLE_RATE
from ..paths import require_regular_file
from .ring import MAX_SAMPLE
from ..errors import RtMerError


# libsndfile notes a RIFF/AIFF chunk cut short as "data : 441000 (should be 220478)"
TRUNCATED_CHUNK = re.compile(r"^data\s*:\s*\d+ \(should be \d+\)", re.MULTILINE)


# libmpg123 estimates an MP3's length (from its Xing tag, else its size): a
# whole file may decode a little short of it. Other formats state it exactly.
MP3_LENGTH_SLACK = 0.01
UNKNOWN_LENGTH = 2**62         # libsndfile's frame count for a stream of unknown length is about 2**63


class AudioError(RtMerError):
    """An input that cannot be analysed; the message is one line for the user."""


class TruncatedAudio(AudioError):
    """The audio stopped decoding before the length its header gives
    (a truncated or corrupt file); what decoded before that is good.
    `trajectory`, where set, holds the analysis of that part."""
    trajectory = None


def missing_frames(source: soundfile.SoundFile, decoded: int) -> int:
    """Frames the file's header promises beyond the `decoded` ones (0 where
    none, or within an MP3's length estimate)."""
    if source.frames >= UNKNOWN_LENGTH:
        return 0
    missing = source.frames - decoded
    slack = MP3_LENGTH_SLACK * source.frames if source.format == "MP3" else 0
    return missing if missing > slack else 0


def truncated(path: str | Path, source: soundfile.SoundFile, decoded: int, reason: str = "") -> TruncatedAudio:
    """The one-line error for a file whose audio ends after `decoded` frames."""
    rate = source.samplerate
    return TruncatedAudio(f"{path}: truncated or corrupt: audio ends at {decoded / rate:.1f} s of the "
                          f"{source.frames / rate:.1f} s its header says" + (f" ({reason})" if reason else ""))


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
    """An open SoundFile, checked to exist, be readable, be whole and hold
    audio. Raises AudioError with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    require_regular_file(path, AudioError)      # a FIFO would block the open, for ever if no one writes
    with quiet_native_stderr():
        try:
            source = soundfile.SoundFile(path)
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
            reason = str(error).split(": ", 1)[-1].rstrip(".")
            if "not a regular file" in reason:        # libsndfile's words for an unknown MP3-like file
                reason = "format not recognised"
            raise AudioError(f"{path}: not a readable audio file ({reason})") from None
    if TRUNCATED_CHUNK.search(source.extra_info):
        source.close()
        raise AudioError(f"{path}: truncated: its data is shorter than its header says")
    if source.frames == 0:
        source.close()
        raise AudioError(f"{path}: no audio in file")
    return source


def read_blocks(path: str | Path, seconds: float = 10.0) -> Iterator[np.ndarray]:
    """A file as mono float32 blocks at SAMPLE_RATE, whatever its format,
    rate and channels. Raises AudioError on any defect, where it is found;
    TruncatedAudio after the last audio that decoded, where the audio ends
    before its header says."""
    with open_audio(path) as source:
        rate, read = source.samplerate, 0
        resample, block_frames = Resampler(rate), int(seconds * rate)
        while True:
            block, damage = read_until_damage(source, block_frames)
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                raise AudioError(f"{path}: NaN or infinite samples at {(read + int(np.argmin(finite))) / rate:.1f} s")
            audible = (np.abs(block) <= MAX_SAMPLE).all(axis=1)     # as a live stream, which silences such blocks
            if not audible.all():
                raise AudioError(f"{path}: samples beyond {MAX_SAMPLE:g} times full scale at "
                                 f"{(read + int(np.argmin(audible))) / rate:.1f} s: not audio")
            read += len(block)
            last = damage is not None or len(block) < block_frames
            yield resample(to_mono(block), last=last)
            if damage is not None or (last and missing_frames(source, read)):
                raise truncated(path, source, read, damage or "")
            if last:
                return


def read_until_damage(source: soundfile.SoundFile, frames: int) -> tuple[np.ndarray, str | None]:
    """Up to `frames` float32 frames [frames, channels], and None; where the
    decoder fails in them, the frames before the failure (read again in
    small pieces: a failed read returns nothing) and its reason."""
    start = source.tell()
    try:
        with quiet_native_stderr():
            return source.read(frames, dtype="float32", always_2d=True), None
    except (soundfile.LibsndfileError, RuntimeError) as error:
        reason = str(error).strip().rstrip(".")
    pieces, got, piece = [], 0, max(1, source.samplerate // 10)
    try:
        source.seek(start)
        with quiet_native_stderr():
            while got < frames and len(block := source.read(min(piece, frames - got), dtype="float32",
                                                            always_2d=True)):
                pieces.append(block)
                got += len(block)
    except (soundfile.LibsndfileError, RuntimeError):
        pass
    return (np.concatenate(pieces) if pieces else np.zeros((0, source.channels), np.float32)), reason


def read_audio(path: str | Path) -> np.ndarray:
    """Whole file as mono float32 at SAMPLE_RATE."""
    return np.concatenate(list(read_blocks(path)))
