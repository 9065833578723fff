"""Offline analysis: a file through the live path's StreamAnalyzer
(incremental front-end, windows) and engine, as fast as the machine allows."""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio.io import AudioError, TruncatedAudio, read_blocks
from ..dsp.frontend import FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SECONDS
from ..inference import Engine, open_engine
from ..contract import DRIVERS, WINDOW_SHAPE
from ..messages import AXES, quadrant
from .analyzer import DueWindow, StreamAnalyzer
from .moods import MoodVocabulary, default_moods
from .windows import DEFAULT_HOP

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".opus"}
READ_SECONDS = 10.0
DEFAULT_BATCH = 32
TOP_MOODS = 3          # moods a Trajectory's repr names


@dataclass(repr=False)
class Trajectory:
    """Per-window predictions of one file; times in seconds from its start.

    `print(trajectory)` gives a summary; `to_rows()` every window as a dict
    (`pandas.DataFrame(trajectory.to_rows())` for a table)."""
    path: str
    t_start: np.ndarray
    t_end: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    explanation: np.ndarray      # [windows, 2, 12, steps]: the harmony map (Prediction)
    drivers: np.ndarray          # [windows, 2, len(DRIVERS)]: each branch's logit term
    vocabulary: MoodVocabulary = field(default_factory=default_moods)   # names the moods

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

    def to_rows(self) -> list[dict]:
        """One dict a window: file, t_start, t_end, valence, arousal,
        quadrant, mood (the columns of `rt-mer analyze --out`), then each
        driver as <axis>_<branch> (valence_harmony ... arousal_rhythm): the
        branch's term of that axis's logit. The harmony map (`explanation`)
        is too large for a row: it stays an array."""
        rows = []
        for i, (word, quad) in enumerate(zip(self.moods, self.quadrants)):
            row = {"file": self.path, "t_start": float(self.t_start[i]), "t_end": float(self.t_end[i]),
                   "valence": float(self.valence[i]), "arousal": float(self.arousal[i]),
                   "quadrant": quad, "mood": word}
            for axis, terms in zip(AXES, self.drivers[i]):
                row.update({f"{axis}_{branch}": float(term) for branch, term in zip(DRIVERS, terms)})
            rows.append(row)
        return rows

    def __repr__(self) -> str:
        windows = len(self.valence)
        if not windows:
            return f"<Trajectory {self.path!r}: no windows>"
        v, a, quad, word = self.summary()
        hop = f" every {self.t_start[1] - self.t_start[0]:g} s" if windows > 1 else ""
        per_quadrant = np.bincount(self.quadrants, minlength=5)[1:]
        moods = Counter(self.moods).most_common()
        top = ", ".join(f"{mood} {count}" for mood, count in moods[:TOP_MOODS])
        more = f" (+{len(moods) - TOP_MOODS} more)" if len(moods) > TOP_MOODS else ""
        return (f"<Trajectory {self.path!r}: {self.t_end[-1]:.1f} s, {windows} windows of {WINDOW_SECONDS:g} s"
                f"{hop}; mean valence {v:+.2f}, arousal {a:+.2f} (quadrant {quad}, {word}); windows by quadrant "
                f"1/2/3/4: {'/'.join(map(str, per_quadrant))}; top moods: {top}{more}>")


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
