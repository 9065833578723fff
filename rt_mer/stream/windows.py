"""Sliding windows over a stream's log-spectrogram frames, harmonic-stacked
on the way out. Live and offline analysis share this stage."""
from __future__ import annotations

import math

import numpy as np

from ..dsp.frontend import FLOOR_DB, FRAMES_PER_SECOND, N_BINS, STACK_INDEX, WINDOW_FRAMES

DEFAULT_HOP = 0.5              # seconds between windows, live and offline


def hop_frames(hop_seconds: float) -> int:
    """A hop in seconds as a whole number of frames (at least one)."""
    scaled = hop_seconds * FRAMES_PER_SECOND
    if not 0 < scaled < math.inf:           # NaN, or so long (1e308 s) that it has no frame count
        raise ValueError(f"hop must be a positive number of seconds, got {hop_seconds:g}")
    frames = round(scaled)
    if frames < 1:
        raise ValueError(f"hop must be at least {1 / FRAMES_PER_SECOND:g} s, got {hop_seconds:g}")
    return frames


class FrameHistory:
    """The most recent frames of one stream, with a floor row below them so
    that harmonics above the top bin read silence (see STACK_INDEX)."""

    def __init__(self, keep_frames: int = WINDOW_FRAMES) -> None:
        self.keep = max(keep_frames, WINDOW_FRAMES)
        self._frames = np.full((N_BINS + 1, 2 * self.keep), FLOOR_DB, np.float32)
        self._filled = 0             # columns of _frames in use
        self.count = 0               # frames pushed since the stream began

    def push(self, frames: np.ndarray) -> None:
        """Append new frames [N_BINS, n], forgetting all but the last `keep`."""
        n = frames.shape[1]
        if self._filled + n > self._frames.shape[1]:
            kept = min(self._filled, self.keep)
            self._frames[:, :kept] = self._frames[:, self._filled - kept:self._filled]
            self._filled = kept
            if kept + n > self._frames.shape[1]:
                self._frames = np.concatenate([self._frames[:, :kept],
                                               np.full((N_BINS + 1, n), FLOOR_DB, np.float32)], axis=1)
        self._frames[:N_BINS, self._filled:self._filled + n] = frames
        self._filled += n
        self.count += n

    def window(self, end: int, out: np.ndarray) -> None:
        """Write the stacked window of the WINDOW_FRAMES frames before frame
        `end` (a count since the stream began) into out [6, N_BINS, W]."""
        stop = self._filled - (self.count - end)
        if stop < WINDOW_FRAMES or end > self.count:
            raise IndexError(f"window ending at frame {end} is not held")
        np.take(self._frames[:, stop - WINDOW_FRAMES:stop], STACK_INDEX, axis=0, out=out)
