"""Live audio sources: file paced as if live, raw PCM on stdin, the packaged
demo music, and audio its caller pushes; microphone/line-in (PortAudio) is
in device.py.

Every source follows the `Source` protocol. A producer (the PortAudio callback
or a reader thread) copies blocks into a preallocated `RingBuffer`; the
analysis thread calls `read()` for everything that arrived since its last
call. The producer never allocates containers, logs or takes a lock: losses
and bad samples are counted, never raised, and published by whoever reads
`counters`.
"""
from __future__ import annotations

import os
import select
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import numpy as np
import soundfile

from .. import realtime
from ..text import printable
from .io import AudioError, missing_frames, open_audio, to_mono
from .ring import RingBuffer

BUFFER_SECONDS = 20.0          # how far the consumer may fall behind before audio is lost
FILE_BLOCK_SECONDS = 0.02      # a file "arrives" in blocks this long, like a sound card's
READ_POLL_SECONDS = 0.1        # a reader waiting on a quiet pipe looks this often whether to stop
MIN_RATE, MAX_RATE = 1000, 384_000     # Hz: sample rates an input may have
MAX_CHANNELS = 64


@runtime_checkable
class Source(Protocol):
    """What the real-time loop needs from an audio input.

    - `name`: the stream name used in topics (``emotion.<name>``).
    - `rate`: native sample rate in Hz (the consumer resamples).
    - `channels`: channels after selection; `read` downmixes them to mono.
    - `description`: one human line (device, file, format).
    - `start()` begins capture; `stop()` ends it and may be called twice.
    - `read(max_frames=None)` never blocks: (mono float32 samples at `rate`
      that arrived since the last call, oldest first and at most
      `max_frames`, wall time of the last one's capture or None). Raises
      AudioError if the input failed (after the audio before it).
    - `wakeup`: a threading.Event set whenever audio or the end arrives;
      assign one event to several sources to sleep until any has data.
    - `can_wait`: True if the producer waits for the consumer (a pipe, a
      file read as fast as it is analysed): nothing is lost however far
      behind the consumer is. False for a sound card or a file paced at
      real time, which overrun instead.
    - `finished`: True once a file or stdin ended and everything was read
      (and, if it ended with an error, that error was raised by `read`).
    - `priority`: set by the analysis loop: the SCHED_FIFO priority the
      thread that delivers live audio asks for (None: normal scheduling);
      `scheduling` then says how it runs (rt_mer.realtime).
    - `counters`: ``overflows`` (frames lost because the consumer fell
      behind), ``dropped_blocks`` (blocks the driver flagged as lost before
      they reached us), ``underruns`` (driver input underflows),
      ``nonfinite`` (blocks with NaN/inf samples, zeroed),
      ``out_of_range`` (blocks of finite samples too large to be audio,
      zeroed), for stdin ``truncated_bytes`` (a partial frame at the end
      of the stream), and for a file ``truncated`` (times its audio ended
      before the length its header gives: a truncated or corrupt file).
    """

    name: str
    rate: int
    channels: int
    description: str

    wakeup: threading.Event
    can_wait: bool
    priority: int | None

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def read(self, max_frames: int | None = None) -> tuple[np.ndarray, float | None]: ...
    @property
    def finished(self) -> bool: ...
    @property
    def counters(self) -> dict[str, int]: ...


def channel_count(channels: int) -> str:
    return "1 channel" if channels == 1 else f"{channels} channels"


class RingSource:
    """Shared consumer side: a ring, counters, end of stream and errors."""

    can_wait = False
    # Set by the analysis loop: the SCHED_FIFO priority a live producer's
    # thread asks for (None: normal), and how it then runs.
    priority: int | None = None
    scheduling = ""

    def __init__(self, name: str, rate: int, channels: int, description: str,
                 buffer_seconds: float = BUFFER_SECONDS) -> None:
        self.name, self.rate, self.channels, self.description = name, int(rate), int(channels), description
        self.ring = RingBuffer(int(buffer_seconds * self.rate) + 1, self.channels)
        self._dropped_blocks = self._underruns = 0
        self._ended = False                     # set by the producer at end of stream (see end)
        self._error: AudioError | None = None

    @property
    def wakeup(self) -> threading.Event:
        return self.ring.wakeup

    @wakeup.setter
    def wakeup(self, event: threading.Event) -> None:
        self.ring.wakeup = event

    def take_priority(self) -> None:
        """In the thread that delivers the audio: ask, once, for the
        priority the loop set (rt_mer.realtime)."""
        if self.priority and not self.scheduling:
            self.scheduling = realtime.request(self.priority)

    def end(self, error: AudioError | None = None) -> None:
        """Producer: the stream is over (with `error` if it failed)."""
        if error is not None:
            self._error = error
        self._ended = True
        self.ring.wakeup.set()

    def read(self, max_frames: int | None = None) -> tuple[np.ndarray, float | None]:
        ended = self._ended                     # before reading, so nothing written after is missed
        data, end = self.ring.read(max_frames)
        if len(data) == 0:
            if ended and self._error is not None:
                error, self._error = self._error, None
                raise error
            return np.zeros(0, np.float32), None
        return to_mono(data), self.ring.capture_time(end - 1, self.rate)

    @property
    def finished(self) -> bool:
        # Not while an error is pending: the read that finds the ring empty
        # raises it, even where the error came in with the last audio.
        return self._ended and self.ring.available == 0 and self._error is None

    @property
    def counters(self) -> dict[str, int]:
        return {"overflows": self.ring.overflows, "dropped_blocks": self._dropped_blocks,
                "underruns": self._underruns, "nonfinite": self.ring.nonfinite,
                "out_of_range": self.ring.out_of_range}


class PushSource(RingSource):
    """Audio its caller writes (`write`) and then ends (`end`): a live
    stream with no device, for benchmarks and tests. A block's last sample
    counts as captured when it is written."""

    def __init__(self, name: str, rate: int, channels: int = 1, description: str | None = None,
                 buffer_seconds: float = BUFFER_SECONDS) -> None:
        super().__init__(name, rate, channels, description or f"pushed {name}", buffer_seconds)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def write(self, block: np.ndarray) -> None:
        """Producer: frames x channels of float32, captured now."""
        self.ring.write(block, time.time())


class _ThreadSource(RingSource):
    """A source fed by a reader thread of its own."""

    def __init__(self, name: str, rate: int, channels: int, description: str) -> None:
        super().__init__(name, rate, channels, description)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run_safely, name=f"rt-mer {self.name}", daemon=True)
            self._thread.start()

    def _run_safely(self) -> None:
        try:
            self._run()
        except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError) as error:
            self.end(AudioError(f"{self.description}: read failed ({error})"))
        finally:
            self.end()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.5)     # a stdin reader may sit in a blocking read: it is a daemon


class FileSource(_ThreadSource):
    """An audio file delivered block by block as if it were being captured:
    each block is written when the wall clock reaches its end (`realtime`),
    or as fast as the consumer takes it (never overwriting unread audio).
    With `loop` it starts over at the end, forever."""

    def __init__(self, path: str | Path, name: str | None = None, realtime: bool = True, loop: bool = False) -> None:
        self._file = open_audio(path)           # AudioError now, not in the thread
        self.path, self.realtime, self.loop = Path(path), realtime, loop
        self.can_wait = not realtime
        super().__init__(name or printable(self.path.stem), self._file.samplerate, self._file.channels,
                         f"{printable(self.path.name)}, {self._file.samplerate} Hz, "
                         f"{channel_count(self._file.channels)}" + (", looping" if loop else ""))
        self._truncated = 0

    @property
    def counters(self) -> dict[str, int]:
        return {**super().counters, "truncated": self._truncated}

    def _run(self) -> None:
        block = np.empty((max(1, int(FILE_BLOCK_SECONDS * self.rate)), self.channels), np.float32)
        if self.realtime:                            # played as a sound card would deliver it
            self.take_priority()
        sent, decoded, started = 0, 0, time.monotonic()
        with self._file:
            while not self._stopping.is_set():
                try:
                    got, damaged = self._file.read(len(block), dtype="float32", always_2d=True, out=block), False
                except (soundfile.LibsndfileError, RuntimeError):     # the decoder gave up: the end
                    got, damaged = block[:0], True
                if len(got) == 0:
                    # A file that ends short of its header is counted, and
                    # ends (or restarts) like a whole one: no other stream stops.
                    self._truncated += damaged or missing_frames(self._file, decoded) > 0
                    if not self.loop:
                        return
                    self._file.seek(0)
                    decoded = 0
                    continue
                sent += len(got)
                decoded += len(got)
                if self.realtime:
                    self._stopping.wait(max(0.0, started + sent / self.rate - time.monotonic()))
                elif not self.ring.wait_for_room(len(got), self._stopping):   # lossless
                    return
                self.ring.write(got, time.time())


PCM_FORMATS = {"f32le": 4, "s16le": 2, "s24le": 3}      # bytes per sample


class StdinSource(_ThreadSource):
    """Raw interleaved little-endian PCM from a byte stream (stdin by
    default), not paced: the producer's pace is the capture pace. A pipe can
    wait, so the reader stops reading while the ring is full, and a producer
    faster than real time (a file piped without ffmpeg's -re) is analysed
    whole, at the pace of the analysis. The end of the stream ends the
    source; a partial frame there is counted in ``truncated_bytes``."""

    can_wait = True

    def __init__(self, rate: int, channels: int = 1, fmt: str = "f32le", stream: BinaryIO | None = None,
                 name: str = "stdin") -> None:
        if fmt not in PCM_FORMATS:
            raise AudioError(f"unsupported PCM format '{fmt}' (use {', '.join(PCM_FORMATS)})")
        if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
            raise AudioError(f"unsupported sample rate {rate!r} ({MIN_RATE} .. {MAX_RATE} Hz)")
        if not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
            raise AudioError(f"unsupported channel count {channels!r} (1 .. {MAX_CHANNELS})")
        if stream is None and sys.stdin is None:
            raise AudioError("--stdin: standard input is closed")
        super().__init__(name, rate, channels, f"stdin, {fmt}, {rate} Hz, {channel_count(channels)}")
        self.fmt, self._stream = fmt, stream if stream is not None else sys.stdin.buffer
        self._fd = _fileno(self._stream)
        self._truncated = 0

    @property
    def counters(self) -> dict[str, int]:
        return {**super().counters, "truncated_bytes": self._truncated}

    def _decode(self, raw: memoryview) -> np.ndarray:
        if self.fmt == "f32le":
            samples = np.frombuffer(raw, "<f4")
        elif self.fmt == "s16le":
            samples = np.frombuffer(raw, "<i2") * np.float32(1 / 2**15)
        else:                                   # s24le: put each 3-byte sample in the top of an int32
            wide = np.zeros((len(raw) // 3, 4), np.uint8)
            wide[:, 1:] = np.frombuffer(raw, np.uint8).reshape(-1, 3)
            samples = wide.view("<i4")[:, 0] * np.float32(1 / 2**31)
        return samples.reshape(-1, self.channels)

    def _run(self) -> None:
        frame = PCM_FORMATS[self.fmt] * self.channels
        buffer = bytearray(frame * max(1, self.rate // 50))    # 20 ms per read at most
        view, held = memoryview(buffer), 0
        while not self._stopping.is_set():
            got = self._read_some(view[held:])
            if got is None:                     # nothing yet
                continue
            if not got:                         # end of stream
                self._truncated = held
                return
            held += got
            whole = held - held % frame
            if whole:
                if not self.ring.wait_for_room(whole // frame, self._stopping):
                    return
                self.ring.write(self._decode(view[:whole]), time.time())
                buffer[:held - whole] = buffer[whole:held]
                held -= whole

    def _read_some(self, into: memoryview) -> int | None:
        """Bytes read into `into` (0 at the end of the stream), or None if
        none came within READ_POLL_SECONDS. Reads the file descriptor itself
        where there is one: a thread blocked in a buffered reader holds its
        lock, and the interpreter's exit aborts on that lock."""
        if self._fd is None:
            reader = getattr(self._stream, "readinto1", None) or self._stream.readinto   # what is there
            return reader(into)
        if not select.select([self._fd], [], [], READ_POLL_SECONDS)[0]:
            return None
        return os.readv(self._fd, [into])


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):     # io.UnsupportedOperation is an OSError
        return None


def demo_path() -> Path:
    """The packaged demo music (four moods, about two minutes)."""
    return Path(str(resources.files("rt_mer.audio") / "demo.ogg"))


class DemoSource(FileSource):
    """The packaged demo music, looping in real time."""

    def __init__(self, name: str = "demo") -> None:
        super().__init__(demo_path(), name=name, realtime=True, loop=True)
