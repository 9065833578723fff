"""Live audio sources: microphone/line-in (PortAudio), file paced as if live,
raw PCM on stdin, and the packaged demo music.

Every source follows the `Source` protocol. A producer (the PortAudio callback
or a reader thread) copies blocks into a preallocated `RingBuffer`; the
analysis thread calls `read()` for everything that arrived since its last
call. The producer never allocates containers, logs or takes a lock: losses
and bad samples are counted, never raised, and published by whoever reads
`counters`.
"""
from __future__ import annotations

import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import numpy as np
import soundfile

from .io import AudioError, open_audio, to_mono

BUFFER_SECONDS = 20.0          # how far the consumer may fall behind before audio is lost
FILE_BLOCK_SECONDS = 0.02      # a file "arrives" in blocks this long, like a sound card's


class RingBuffer:
    """Preallocated float32 ring [capacity_frames, channels], one producer
    thread and one consumer thread, no locks.

    Frames are numbered from 0 since creation. The writer copies a block in
    and only then advances `written`, so the reader never sees a frame before
    it is complete. If the writer laps the reader, the oldest unread frames
    are lost: `overflows` counts them, in frames. Beside the samples, a small
    ring of (frame count at block end, capture time) marks lets the consumer
    learn the capture time of any recent frame (`capture_time`).

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
        self._mark_end = np.full(marks, -1, np.int64)
        self._mark_time = np.full(marks, np.nan, np.float64)
        self._marks = 0
        self._sum = np.zeros((), np.float64)     # scratch for the NaN check, so write allocates no array

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
        last frame. Non-finite samples are zeroed and the block counted.
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

    def _put(self, source: np.ndarray, target: np.ndarray, columns: np.ndarray | None) -> None:
        if columns is None:
            np.copyto(target, source.reshape(len(source), -1))
        else:
            np.take(source, columns, axis=1, out=target, mode="clip")   # "clip": unbuffered, no temporary
        np.add.reduce(target, axis=None, dtype=np.float64, out=self._sum)
        if not np.isfinite(self._sum) and not np.isfinite(target).all():   # rare path may allocate
            np.nan_to_num(target, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            self.nonfinite += 1

    def read(self) -> tuple[np.ndarray, int]:
        """Everything unread (consumer only): a new [frames, channels] array
        and the frame count at its end."""
        end = self.written
        start = max(self._read, end - self.capacity)
        out = np.empty((end - start, self.channels), np.float32)
        pos = start % self.capacity
        first = min(len(out), self.capacity - pos)
        out[:first] = self._data[pos:pos + first]
        out[first:] = self._data[:len(out) - first]
        # Frames the writer claimed while we copied may be torn: drop and count them.
        torn = min(len(out), max(0, self._claimed - self.capacity - start))
        self._lost += start - self._read + torn
        self._read = end
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


@runtime_checkable
class Source(Protocol):
    """What the real-time loop needs from an audio input.

    - `name`: the stream name used in topics (``emotion.<name>``).
    - `rate`: native sample rate in Hz (the consumer resamples).
    - `channels`: channels after selection; `read` downmixes them to mono.
    - `description`: one human line (device, file, format).
    - `start()` begins capture; `stop()` ends it and may be called twice.
    - `read()` never blocks: (mono float32 samples at `rate` that arrived
      since the last call, wall time of the last one's capture or None).
      Raises AudioError if the input failed (after the audio before it).
    - `finished`: True once a file or stdin ended and everything was read.
    - `counters`: ``overflows`` (frames lost because the consumer fell
      behind), ``dropped_blocks`` (blocks the driver flagged as lost before
      they reached us), ``underruns`` (driver input underflows),
      ``nonfinite`` (blocks with NaN/inf samples, zeroed), and for stdin
      ``truncated_bytes`` (a partial frame at the end of the stream).
    """

    name: str
    rate: int
    channels: int
    description: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def read(self) -> tuple[np.ndarray, float | None]: ...
    @property
    def finished(self) -> bool: ...
    @property
    def counters(self) -> dict[str, int]: ...


class _RingSource:
    """Shared consumer side: a ring, counters, end of stream and errors."""

    def __init__(self, name: str, rate: int, channels: int, description: str) -> None:
        self.name, self.rate, self.channels, self.description = name, int(rate), int(channels), description
        self.ring = RingBuffer(int(BUFFER_SECONDS * self.rate) + 1, self.channels)
        self._dropped_blocks = self._underruns = 0
        self._ended = False                     # set by the producer at end of stream
        self._error: AudioError | None = None

    def read(self) -> tuple[np.ndarray, float | None]:
        ended = self._ended                     # before reading, so nothing written after is missed
        data, end = self.ring.read()
        if len(data) == 0:
            if ended and self._error is not None:
                error, self._error = self._error, None
                raise error
            return np.zeros(0, np.float32), None
        return to_mono(data), self.ring.capture_time(end - 1, self.rate)

    @property
    def finished(self) -> bool:
        return self._ended and self.ring.available == 0

    @property
    def counters(self) -> dict[str, int]:
        return {"overflows": self.ring.overflows, "dropped_blocks": self._dropped_blocks,
                "underruns": self._underruns, "nonfinite": self.ring.nonfinite}


def _sounddevice():
    """sounddevice, imported only where a live device is wanted."""
    try:
        import sounddevice
    except OSError as error:
        raise AudioError(f"PortAudio cannot be loaded ({error}): install libportaudio2, "
                         "e.g. apt-get install libportaudio2") from None
    return sounddevice


def list_devices() -> list[dict]:
    """Input devices for `rt-mer devices`: index, name, channels (inputs),
    default_rate, hostapi, default (the default input)."""
    sd = _sounddevice()
    apis = sd.query_hostapis()
    default = sd.default.device[0]
    return [{"index": d["index"], "name": d["name"], "channels": d["max_input_channels"],
             "default_rate": d["default_samplerate"], "hostapi": apis[d["hostapi"]]["name"],
             "default": d["index"] == default}
            for d in sd.query_devices() if d["max_input_channels"] > 0]


def find_input_device(device: int | str | None) -> int:
    """PortAudio index of an input device given by index, by case-insensitive
    name substring (an exact name wins), or None for the default."""
    sd = _sounddevice()
    inputs = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
    if device is None:
        index = sd.default.device[0]
        if index is None or index < 0:
            raise AudioError("no default input device; run rt-mer devices")
        return int(index)
    if isinstance(device, int) or str(device).strip().isdigit():
        matches = [d for d in inputs if d["index"] == int(device)]
    else:
        wanted = str(device).strip().lower()
        matches = [d for d in inputs if d["name"].lower() == wanted] or \
                  [d for d in inputs if wanted in d["name"].lower()]
    if len(matches) > 1:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in matches)
        raise AudioError(f"input device '{device}' is ambiguous ({names}); run rt-mer devices")
    if not matches:
        raise AudioError(f"no input device matches '{device}'; run rt-mer devices")
    return int(matches[0]["index"])


class MicSource(_RingSource):
    """A PortAudio input device (microphone, line-in, monitor).

    `channels`: None for the first two (or one) of the device's channels, a
    count n for channels 1..n, or a list of 1-based channel numbers; they are
    averaged to mono on read. `rate` defaults to the device's.

    Capture time: PortAudio stamps each block with `inputBufferAdcTime` on
    the stream's clock (Pa_GetStreamTime). Just before starting, `start`
    reads that clock between two `time.time()` calls (best of a few tries)
    and keeps the difference, so the callback only adds a constant to get
    wall time. Host APIs that give no ADC time (0) fall back to the
    callback's `currentTime`, a little late by the driver's latency.
    """

    def __init__(self, device: int | str | None = None, rate: int | None = None,
                 channels: int | list[int] | None = None, blocksize: int = 0, name: str = "mic") -> None:
        sd = _sounddevice()
        self._sd = sd
        index = find_input_device(device)
        info = sd.query_devices(index)
        available = int(info["max_input_channels"])
        if channels is None:
            selected = list(range(1, min(2, available) + 1))
        elif isinstance(channels, int):
            selected = list(range(1, channels + 1))
        else:
            selected = [int(c) for c in channels]
        if not selected or min(selected) < 1 or max(selected) > available:
            raise AudioError(f"{info['name']}: channels {channels} not available (it has {available} inputs)")
        rate = int(rate or info["default_samplerate"])
        opened = max(selected)                  # PortAudio opens channels 1..n; we keep the selected ones
        try:
            sd.check_input_settings(device=index, channels=opened, samplerate=rate, dtype="float32")
        except Exception as error:              # PortAudioError or ValueError, one line either way
            raise AudioError(f"{info['name']}: refuses {rate} Hz with {opened} channels ({error})") from None
        super().__init__(name, rate, len(selected),
                         f"{info['name']} ({sd.query_hostapis(info['hostapi'])['name']}), {rate} Hz, "
                         f"channels {','.join(map(str, selected))}")
        self.device, self.blocksize, self._opened = index, int(blocksize), opened
        self._columns = None if selected == list(range(1, opened + 1)) else np.array(selected, np.intp) - 1
        self._offset = 0.0                      # wall time minus stream time
        self._last = 0.0                        # seconds from a block's first frame to its last
        self._stream = None

    def _callback(self, indata, frames, when, status) -> None:
        # Real-time thread: copy, stamp, count. Nothing else.
        if status.input_overflow:
            self._dropped_blocks += 1
        if status.input_underflow:
            self._underruns += 1
        adc = when.inputBufferAdcTime
        stamp = (adc + (frames - 1) / self.rate if adc > 0 else when.currentTime) + self._offset
        self.ring.write(indata, stamp, self._columns)

    def _finished(self) -> None:
        # PortAudio ended the stream though stop() was not called: the device
        # went away (unplugged, its server died). End cleanly with the reason.
        if self._stream is not None:
            self._error = AudioError(f"{self.description}: the device stopped delivering audio (unplugged?)")
            self._ended = True

    def start(self) -> None:
        if self._stream is not None:
            return
        try:
            stream = self._sd.InputStream(device=self.device, channels=self._opened, samplerate=self.rate,
                                          blocksize=self.blocksize, dtype="float32", callback=self._callback,
                                          finished_callback=self._finished)
        except Exception as error:
            raise AudioError(f"{self.description}: cannot open ({error})") from None
        best = None
        for _ in range(5):
            before = time.time()
            clock = stream.time
            after = time.time()
            if best is None or after - before < best[0]:
                best = (after - before, (before + after) / 2 - clock)
        self._offset = best[1]
        self._stream = stream
        stream.start()

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()


class _ThreadSource(_RingSource):
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
            self._error = AudioError(f"{self.description}: read failed ({error})")
        finally:
            self._ended = True

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
        super().__init__(name or self.path.stem, self._file.samplerate, self._file.channels,
                         f"{self.path.name}, {self._file.samplerate} Hz, {self._file.channels} channels"
                         + (", looping" if loop else ""))

    def _run(self) -> None:
        block = np.empty((max(1, int(FILE_BLOCK_SECONDS * self.rate)), self.channels), np.float32)
        sent, started = 0, time.monotonic()
        with self._file:
            while not self._stopping.is_set():
                got = self._file.read(len(block), dtype="float32", always_2d=True, out=block)
                if len(got) == 0:
                    if not self.loop:
                        return
                    self._file.seek(0)
                    continue
                sent += len(got)
                if self.realtime:
                    self._stopping.wait(max(0.0, started + sent / self.rate - time.monotonic()))
                else:                           # lossless: wait for the consumer to make room
                    while self.ring.available + len(got) > self.ring.capacity:
                        if self._stopping.wait(0.01):
                            return
                self.ring.write(got, time.time())


PCM_FORMATS = {"f32le": 4, "s16le": 2, "s24le": 3}      # bytes per sample


class StdinSource(_ThreadSource):
    """Raw interleaved little-endian PCM from a byte stream (stdin by
    default), not paced: the producer's pace is the capture pace. The end of
    the stream ends the source; a partial frame there is counted in
    ``truncated_bytes``."""

    def __init__(self, rate: int, channels: int = 1, fmt: str = "f32le", stream: BinaryIO | None = None,
                 name: str = "stdin") -> None:
        if fmt not in PCM_FORMATS:
            raise AudioError(f"unsupported PCM format '{fmt}' (use {', '.join(PCM_FORMATS)})")
        if not isinstance(rate, int) or not 1000 <= rate <= 384_000:
            raise AudioError(f"unsupported sample rate {rate!r} (1000 .. 384000 Hz)")
        if not isinstance(channels, int) or not 1 <= channels <= 64:
            raise AudioError(f"unsupported channel count {channels!r} (1 .. 64)")
        super().__init__(name, rate, channels, f"stdin, {fmt}, {rate} Hz, {channels} channels")
        self.fmt, self._stream = fmt, stream if stream is not None else sys.stdin.buffer
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
        readinto = getattr(self._stream, "readinto1", None) or self._stream.readinto   # return what is there
        while not self._stopping.is_set():
            got = readinto(view[held:])
            if not got:                         # end of stream
                self._truncated = held
                return
            held += got
            whole = held - held % frame
            if whole:
                self.ring.write(self._decode(view[:whole]), time.time())
                buffer[:held - whole] = buffer[whole:held]
                held -= whole


def demo_path() -> Path:
    """The packaged demo music (four moods, about two minutes)."""
    return Path(str(resources.files("rt_mer.audio") / "demo.ogg"))


class DemoSource(FileSource):
    """The packaged demo music, looping in real time."""

    def __init__(self, name: str = "demo") -> None:
        super().__init__(demo_path(), name=name, realtime=True, loop=True)
