"""Audio the tests make themselves: synthetic tones and FluidSynth renders of
generated MIDI (rt_mer.training.data.procedural)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile

from rt_mer.dsp.frontend import WINDOW_SECONDS
from rt_mer.training.data.corpus import LAYERED_SOUNDFONT, SOUNDFONT, render  # noqa: F401
from rt_mer.training.data.procedural import Piece, write_midi


def windows_in(seconds: float, hop: float) -> int:
    """How many analysis windows a file of `seconds` gives at `hop`."""
    return int((seconds - WINDOW_SECONDS) / hop) + 1


def harmonic_tone(f0: float, seconds: float, rate: int = 16000, harmonics: int = 6) -> np.ndarray:
    """A steady tone with `harmonics` partials of falling amplitude."""
    t = np.arange(int(seconds * rate)) / rate
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, harmonics + 1)).astype(np.float32)


def chord_music(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Plucked triads changing every half second: music-like, cheap to make."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.5 * rate)) / rate
    notes = []
    for _ in range(int(seconds * 2)):
        root = 220 * 2 ** (rng.integers(0, 12) / 12)
        notes.append(sum(np.sin(2 * np.pi * root * r * t) for r in (1, 1.26, 1.5)) * np.exp(-4 * t) * 0.2)
    mono = np.concatenate(notes).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1) * np.linspace(1, 0.6, channels)[None, :]


PASSAGE = Piece(major=True, tempo_bpm=100, velocity=80, staccato=0.5, register=0, dissonance=0.0, density=2,
                drums=False, key=0, lead=0, harmony=0, bass=32, seconds=16.0, seed=7)


def render_passage(folder: Path, name: str, soundfont: Path = SOUNDFONT, **changes) -> Path:
    """PASSAGE with `changes`, written as MIDI and rendered to FLAC."""
    piece = replace(PASSAGE, **changes)
    return render(write_midi(piece, folder / f"{name}.mid"), folder / f"{name}.flac", soundfont)


def write(path: Path, audio: np.ndarray, rate: int, **kwargs) -> Path:
    soundfile.write(path, audio, rate, **kwargs)
    return path


def cut_short(path: Path, fraction: float) -> Path:
    """A copy of `path` cut after `fraction` of its bytes, as a broken
    download or a full disk leaves it: its header still gives the whole length."""
    cut = path.with_name(f"{path.stem}-cut{path.suffix}")
    data = path.read_bytes()
    cut.write_bytes(data[:int(len(data) * fraction)])
    return cut


BLOCKS = [1, 37, 441, 1000, 4096, None]          # None: the whole signal at once


def chirp(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * (110 + 900 * t) * t)).astype(np.float32)


def in_blocks(signal: np.ndarray, block: int | None):
    block = block or len(signal)
    return [signal[i:i + block] for i in range(0, len(signal), block)]
