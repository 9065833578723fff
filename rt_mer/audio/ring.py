"""The ring buffer between a capture thread (or the PortAudio callback) and
the analysis thread: preallocated, one producer, one consumer, no locks."""
from __future__ import annotations

import threading

import numpy as np

# A float sample beyond this (120 dB over full scale) is not audio but random
# bytes, or 16-bit PCM read as float: levels and spectra of it would overflow.
# Such a block is zeroed and counted.
MAX_SAMPLE = 1e6


class RingBuffer:
    """Preallocated float32 ring [capacity_frames, channels].

    Frames are numbered from 0 since creation. The writer copies a block in
    and only then advances `written`, so the reader never sees a frame before
    it is complete. If the writer laps the reader, the oldest unread frames
    are lost: `overflows` counts them, in frames. Beside the samples, a small
    ring of (frame count at block end, capture time) marks lets the consumer
    learn the capture time of any recent frame (`capture_time`).

    `wakeup` is set after every write, so a consumer can sleep until there
    is data (the analysis loop shares one event among all its sources);
    Event.set is the only synchronisation the producer does. A producer that
    can wait (a pipe, a file) calls `wait_for_room` first, so it is held back
    instead of overrunning the consumer; a sound card cannot wait and
    overruns.

    Lock-free correctness relies on the GIL making each attribute store
    atomic and ordered; NumPy may release the GIL while copying, which is why
    `read` checks after its copy whether the writer claimed the region.
    """

    def __init__(self, capacity_frames: int, channels: int = 1, marks: int = 256) -> None:
        if capacity_frames < 1 or channels < 1:
            raise ValueError("a ring needs at least one frame and one channel")
        self.capacity, self.channels = int(capacity_frames), int(channels)
        self._data = np.zeros((self.capacity, self.channels), np.float32)
        self.written = 0            # frames ever written (advanced after the copy)
        self._claimed = 0           # frames the writer is writing or has written (advanced before)
        self._read = 0              # frames the consumer has taken or lost
        self._lost = 0              # frames lost, counted when the consumer noticed
        self.nonfinite = 0          # written blocks that held NaN or inf (zeroed)
        self.out_of_range = 0       # written blocks with finite samples beyond MAX_SAMPLE (zeroed)
        self._mark_end = np.full(marks, -1, np.int64)
        self._mark_time = np.full(marks, np.nan, np.float64)
        self._marks = 0
        # scratch for the sample check, so that write allocates no array
        self._low, self._high = np.zeros((), np.float32), np.zeros((), np.float32)
        self.wakeup = threading.Event()
        self._room = threading.Event()

    @property
    def overflows(self) -> int:
        """Frames overwritten before the consumer read them."""
        return self._lost + max(0, self.written - self.capacity - self._read)

    @property
    def available(self) -> int:
        """Unread frames now held."""
        return min(self.written - self._read, self.capacity)

    def write(self, block: np.ndarray, capture_time: float | None = None, columns: np.ndarray | None = None) -> None:
        """Copy `block` [frames, channels] in (producer only).

        `columns` (an intp array, preallocated by the caller) picks the block's
        columns to store, so that a callback writes the selected channels
        straight into the ring. `capture_time` is the wall time of the block's
        last frame. Non-finite samples are zeroed, and a block with samples
        beyond ±MAX_SAMPLE wholly; either is counted.
        """
        n = len(block)
        if n == 0:
            return
        skip = max(0, n - self.capacity)        # a block longer than the ring keeps its tail
        start = self.written + skip
        end = self.written + n
        self._claimed = end
        pos = start % self.capacity
        first = min(end - start, self.capacity - pos)
        self._put(block[skip:skip + first], self._data[pos:pos + first], columns)
        if first < end - start:
            self._put(block[skip + first:], self._data[:end - start - first], columns)
        slot = self._marks % len(self._mark_end)
        self._mark_end[slot] = -1               # invalidate first: a reader racing us sees a changed end
        self._mark_time[slot] = np.nan if capture_time is None else capture_time
        self._mark_end[slot] = end
        self._marks += 1
        self.written = end
        self.wakeup.set()

    def _put(self, source: np.ndarray, target: np.ndarray, columns: np.ndarray | None) -> None:
        if columns is None:
            np.copyto(target, source.reshape(len(source), -1))
        else:
            np.take(source, columns, axis=1, out=target, mode="clip")   # "clip": unbuffered, no temporary
        np.minimum.reduce(target, axis=None, out=self._low)
        np.maximum.reduce(target, axis=None, out=self._high)            # NaN wins both reductions
        if not -MAX_SAMPLE <= self._low <= self._high <= MAX_SAMPLE:    # rare path may allocate
            if np.isfinite(target).all():
                self.out_of_range += 1
                target[:] = 0.0                 # garbage, not a loud passage: silence it all
            else:
                self.nonfinite += 1             # a glitch in audio: only the bad samples go
                np.nan_to_num(target, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
                if not -MAX_SAMPLE <= target.min() <= target.max() <= MAX_SAMPLE:
                    target[:] = 0.0

    def wait_for_room(self, frames: int, stop: threading.Event, poll: float = 0.05) -> bool:
        """Block (producer only) until `frames` more fit without overwriting
        unread audio; False if `stop` was set meanwhile."""
        frames = min(frames, self.capacity)
        while self.written + frames - self._read > self.capacity:
            self._room.clear()
            if self.written + frames - self._read <= self.capacity:     # the consumer read just now
                break
            if stop.is_set():
                return False
            self._room.wait(poll)
        return not stop.is_set()

    def read(self, max_frames: int | None = None) -> tuple[np.ndarray, int]:
        """The unread frames, oldest first, at most `max_frames` of them
        (consumer only): a new [frames, channels] array and the frame count
        at its end."""
        written = self.written                  # once: the writer may advance it meanwhile
        start = max(self._read, written - self.capacity)
        end = written if max_frames is None else min(written, start + max_frames)
        out = np.empty((end - start, self.channels), np.float32)
        pos = start % self.capacity
        first = min(len(out), self.capacity - pos)
        out[:first] = self._data[pos:pos + first]
        out[first:] = self._data[:len(out) - first]
        # Frames the writer claimed while we copied may be torn: drop and count them.
        torn = min(len(out), max(0, self._claimed - self.capacity - start))
        self._lost += start - self._read + torn
        self._read = end
        self._room.set()
        return out[torn:], end

    def capture_time(self, frame: int, rate: float) -> float | None:
        """Wall time at which frame number `frame` was captured, from the first
        mark at or after it, stepped back at `rate`; None if unknown."""
        ends = self._mark_end
        later = np.flatnonzero(ends > frame)
        if len(later) == 0:
            return None
        slot = later[np.argmin(ends[later])]
        end, stamp = ends[slot], self._mark_time[slot]
        if ends[slot] != end or not np.isfinite(stamp):     # overwritten while we looked, or no time given
            return None
        return float(stamp - (end - 1 - frame) / rate)
