"""Training clips: each file's spectrogram as the serving front-end makes
it, its soft targets, its artist, and the teacher's outputs where
rt_mer.training.teacher made them; windows cropped from them."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from ...audio.io import read_audio
from ...dsp import frontend
from . import corpus, procedural

# The side of each axis each quadrant (0..3: Q1..Q4) lies on: for targets, scores and the follow benchmark.
POSITIVE_VALENCE = np.array([True, False, False, True])
HIGH_AROUSAL = np.array([True, True, False, False])


def features(path: Path) -> np.ndarray:
    """The serving front-end's log spectrogram of a file, cached as float16."""
    version = f"{frontend.N_FFT}-{frontend.FRAME_HOP}-{frontend.N_BINS}-{frontend.FLOOR_DB:g}"
    return corpus.cached_array("features", version, path,
                               lambda audio_path: frontend.spectrogram(read_audio(audio_path)).astype(np.float16))


class Clip:
    """One training clip: its spectrogram, soft targets P(positive), and
    the teacher's outputs per 3 s patch where the teacher made them."""

    def __init__(self, path: Path, valence: float, arousal: float, quadrant: int | None, artist: str = "") -> None:
        self.path, self.spec = path, features(path)
        self.valence, self.arousal, self.quadrant, self.artist = valence, arousal, quadrant, artist
        cached = corpus.CACHE / "teacher" / corpus.TEACHER_VERSION / f"{corpus.cache_key(path)}.npz"
        self.teacher = {}
        if cached.exists():
            with np.load(cached) as outputs:
                self.teacher = dict(outputs)


def labelled_clip(path: Path, quadrant: int, artist: str = "") -> Clip:
    return Clip(path, float(POSITIVE_VALENCE[quadrant - 1]), float(HIGH_AROUSAL[quadrant - 1]), quadrant - 1, artist)


def emopia_clips(split: str, limit: int | None, folder: Path = corpus.EMOPIA) -> list[Clip]:
    return [labelled_clip(path, q) for path, q in corpus.emopia_split(split, limit, folder)]


def recording_clips(limit: int | None, folder: Path = corpus.FOURQ) -> list[Clip]:
    return [labelled_clip(path, q, artist) for path, q, artist in corpus.fourq_clips(folder)[:limit]]


def procedural_clips(count: int) -> list[Clip]:
    rows = procedural.make_corpus(corpus.CACHE / "procedural", count=count) if count else []
    return [Clip(path, (v + 1) / 2, (a + 1) / 2, None) for path, v, a in rows]


def artist_folds(clips: list[Clip], folds: int = corpus.FOLDS) -> list[np.ndarray]:
    """Held-out clip indices per fold: no artist in two folds, quadrants
    balanced across folds."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    quadrants = [clip.quadrant for clip in clips]
    return [test for _, test in splitter.split(np.zeros(len(clips)), quadrants, [c.artist for c in clips])]


def fourq_folds(folder: Path = corpus.FOURQ) -> tuple[list[Path], list[int], list[np.ndarray]]:
    """The 4Q recordings' paths and quadrants (1..4), and the artist folds
    training's cross-validation holds out, without reading their audio."""
    rows = corpus.fourq_clips(folder)
    folds = artist_folds([SimpleNamespace(quadrant=q - 1, artist=artist) for _, q, artist in rows])
    return [path for path, _, _ in rows], [q for _, q, _ in rows], folds


def padded(spec: np.ndarray) -> np.ndarray:
    """A clip shorter than a window, with silence before it (as a stream
    begins): one window long."""
    missing = frontend.WINDOW_FRAMES - spec.shape[1]
    if missing <= 0:
        return spec
    return np.concatenate([np.full((spec.shape[0], missing), frontend.FLOOR_DB, spec.dtype), spec], axis=1)


def crop(spec: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A random window of the clip, and the frame it starts at."""
    frames = frontend.WINDOW_FRAMES
    if spec.shape[1] < frames:
        return padded(spec), 0
    start = int(rng.integers(0, spec.shape[1] - frames + 1))
    return spec[:, start:start + frames], start


def teacher_target(clip: Clip, output: str, start: int) -> np.ndarray | None:
    """The teacher's `output` for a window starting at frame `start`."""
    return window_mean(clip.teacher[output].astype(np.float32), start) if output in clip.teacher else None


def window_mean(patches: np.ndarray, start: int) -> np.ndarray:
    """The mean of per-patch rows over the teacher's patches centred in the
    window starting at frame `start` (else the nearest one)."""
    centres = (np.arange(len(patches)) + 0.5) * corpus.TEACHER_PATCH_SECONDS * frontend.FRAMES_PER_SECOND - start
    inside = (centres >= 0) & (centres < frontend.WINDOW_FRAMES)
    if not inside.any():
        distance = np.abs(centres - frontend.WINDOW_FRAMES / 2)
        inside = distance == distance.min()
    return patches[inside].mean(axis=0)
