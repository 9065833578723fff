"""Offline analysis: a file through the live path's StreamAnalyzer
(incremental front-end, windows) and engine, as fast as the machine allows."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio.io import AudioError, TruncatedAudio, read_blocks
from ..dsp.frontend import FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SECONDS
from ..engines import Engine, open_engine
from ..contract import WINDOW_SHAPE
from .analyzer import DueWindow, StreamAnalyzer
from .moods import MoodVocabulary, default_moods
from .post import quadrant
from .windows import DEFAULT_HOP

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
    explanation: np.ndarray = field(repr=False)   # [windows, 2, 12, steps]: the harmony map (Prediction)
    drivers: np.ndarray = field(repr=False)       # [windows, 2, len(DRIVERS)]: each branch's logit term
    vocabulary: MoodVocabulary = field(default_factory=default_moods, repr=False)   # names the moods

    @property
    def quadrants(self) -> list[int]:
        return [quadrant(v, a) for v, a in zip(self.valence, self.arousal)]

    @property
    def moods(self) -> list[str]:
        return [self.vocabulary.word(v, a) for v, a in zip(self.valence, self.arousal)]

    def summary(self) -> tuple[float, float, int, str]:
        """Whole-file (valence, arousal, quadrant, mood): the window mean."""
        v, a = float(self.valence.mean()), float(self.arousal.mean())
        return v, a, quadrant(v, a), self.vocabulary.word(v, a)


@functools.cache
def default_engine() -> Engine:
    """The engine `analyze_file` uses when given none: opened once per
    process (a GPU engine holds its plan and buffers between files)."""
    return open_engine()


def analyze_file(path: str | Path, engine: Engine | None = None, hop: float = DEFAULT_HOP,
                 batch: int = DEFAULT_BATCH, progress: Callable[[float], None] | None = None,
                 moods: MoodVocabulary | None = None) -> Trajectory:
    """Analyse one audio file: a window of WINDOW_SECONDS every `hop` seconds.

    The live path's StreamAnalyzer, fed the file as fast as it decodes,
    with no clock; windows go to the engine `batch` at a time. Raises
    AudioError (bad or too short file) or EngineError (bad model); for a
    file whose audio ends before its header says, TruncatedAudio with the
    analysis of what decoded in its `trajectory`.
    `progress` is called with seconds of audio consumed; `moods` names the
    windows' moods (default: the shipped vocabulary).
    """
    path = Path(path)
    engine = engine or default_engine()
    analyzer = StreamAnalyzer(path.stem, SAMPLE_RATE, hop, moods=moods)    # read_blocks resamples already
    windows = np.empty((batch, *WINDOW_SHAPE), np.float32)
    pending: list[DueWindow] = []
    results = []

    def infer() -> None:
        results.append((np.array([due.end for due in pending]), engine.infer(windows[:len(pending)])))
        pending.clear()

    truncated = None
    try:
        for block in read_blocks(path, READ_SECONDS):
            for due in analyzer.push(block):
                analyzer.window(due, windows[len(pending)])
                pending.append(due)
                if len(pending) == batch:
                    infer()
            if progress:
                progress(len(block) / SAMPLE_RATE)
    except TruncatedAudio as error:             # analyse what decoded, then raise with it
        truncated = error
    if pending:
        infer()
    if not results:
        raise truncated or AudioError(f"{path}: shorter than one {WINDOW_SECONDS:g} s analysis window")
    end_frames = np.concatenate([ends for ends, _ in results])
    trajectory = Trajectory(str(path), (end_frames - WINDOW_FRAMES) / FRAMES_PER_SECOND,
                            end_frames / FRAMES_PER_SECOND, np.concatenate([p.valence for _, p in results]),
                            np.concatenate([p.arousal for _, p in results]),
                            np.concatenate([p.explanation for _, p in results]),
                            np.concatenate([p.drivers for _, p in results]), analyzer.moods)
    if truncated:
        truncated.trajectory = trajectory
        raise truncated
    return trajectory


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
