"""Offline analysis: a file through the live path's stages (resampler,
incremental front-end, windows, engine, post), as fast as the machine allows."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio.io import AudioError, read_blocks
from ..dsp.frontend import FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SECONDS, StreamingSpectrogram
from ..engines import Engine, open_engine
from ..engines.base import WINDOW_SHAPE
from .post import mood, quadrant
from .windows import DEFAULT_HOP, FrameHistory, hop_frames

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".opus"}
READ_SECONDS = 10.0
DEFAULT_BATCH = 32


@dataclass
class Trajectory:
    """Per-window predictions of one file; times in seconds from its start."""
    path: str
    t_start: np.ndarray
    t_end: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    explanation: np.ndarray = field(repr=False)   # [windows, 2, 12, steps]

    @property
    def quadrants(self) -> list[int]:
        return [quadrant(v, a) for v, a in zip(self.valence, self.arousal)]

    @property
    def moods(self) -> list[str]:
        return [mood(v, a) for v, a in zip(self.valence, self.arousal)]

    def summary(self) -> tuple[float, float, int, str]:
        """Whole-file (valence, arousal, quadrant, mood): the window mean."""
        v, a = float(self.valence.mean()), float(self.arousal.mean())
        return v, a, quadrant(v, a), mood(v, a)


@functools.cache
def default_engine() -> Engine:
    """The engine `analyze_file` uses when given none: opened once per
    process (a GPU engine holds its plan and buffers between files)."""
    return open_engine()


def analyze_file(path: str | Path, engine: Engine | None = None, hop: float = DEFAULT_HOP,
                 batch: int = DEFAULT_BATCH, progress: Callable[[float], None] | None = None) -> Trajectory:
    """Analyse one audio file: a window of WINDOW_SECONDS every `hop` seconds.

    Raises AudioError (bad or too short file) or EngineError (bad model).
    `progress` is called with seconds of audio consumed.
    """
    path = Path(path)
    engine = engine or default_engine()
    step = hop_frames(hop)
    spectrogram, history = StreamingSpectrogram(), FrameHistory(WINDOW_FRAMES + batch * step)
    windows = np.empty((batch, *WINDOW_SHAPE), np.float32)
    ends: list[int] = []
    results = []
    next_end = WINDOW_FRAMES

    def run(pending: list[int]) -> None:
        for i, end in enumerate(pending):
            history.window(end, windows[i])
        results.append((pending, engine.infer(windows[:len(pending)])))

    for block in read_blocks(path, READ_SECONDS):
        history.push(spectrogram.push(block))
        while next_end <= history.count:
            ends.append(next_end)
            next_end += step
            if len(ends) == batch:
                run(ends)
                ends = []
        if progress:
            progress(len(block) / SAMPLE_RATE)
    if ends:
        run(ends)
    if not results:
        raise AudioError(f"{path}: shorter than one {WINDOW_SECONDS:g} s analysis window")
    end_frames = np.concatenate([np.array(e) for e, _ in results])
    return Trajectory(str(path), (end_frames - WINDOW_FRAMES) / FRAMES_PER_SECOND, end_frames / FRAMES_PER_SECOND,
                      np.concatenate([p.valence for _, p in results]),
                      np.concatenate([p.arousal for _, p in results]),
                      np.concatenate([p.explanation for _, p in results]))


def audio_files(paths: list[Path]) -> list[Path]:
    """Expand directories into the audio files in them (recursively, sorted);
    files named explicitly are kept whatever their extension."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        else:
            found.append(path)
    return found
