"""Microphone/line-in through PortAudio (sounddevice, imported only where a
live device is wanted): the device list, the choice of an input, and
`MicSource`, whose callback only copies into the ring and counts."""
from __future__ import annotations

import time

import numpy as np

from ..text import printable
from .io import AudioError
from .sources import RingSource


def _sounddevice():
    """sounddevice, imported only where a live device is wanted."""
    try:
        import sounddevice
    except OSError as error:
        raise AudioError(f"PortAudio cannot be loaded ({error}): install libportaudio2, "
                         "e.g. apt-get install libportaudio2") from None
    return sounddevice


def list_devices() -> list[dict]:
    """Input devices for `rt-mer devices`: index, name (made printable),
    channels (inputs), default_rate, hostapi, default (the default input)."""
    sd = _sounddevice()
    apis = sd.query_hostapis()
    default = sd.default.device[0]
    return [{"index": d["index"], "name": printable(d["name"]), "channels": d["max_input_channels"],
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


class MicSource(RingSource):
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
        api = sd.query_hostapis(info["hostapi"])["name"]
        super().__init__(name, rate, len(selected), printable(f"{info['name']} ({api}), {rate} Hz, "
                                                              f"channels {','.join(map(str, selected))}"))
        self.device, self.blocksize, self._opened = index, int(blocksize), opened
        self._columns = None if selected == list(range(1, opened + 1)) else np.array(selected, np.intp) - 1
        self._offset = 0.0                      # wall time minus stream time
        self._last = 0.0                        # seconds from a block's first frame to its last
        self._stream = None

    def _callback(self, indata, frames, when, status) -> None:
        # Real-time thread: copy, stamp, count. Nothing else, but once its scheduling.
        self.take_priority()
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
            self.end(AudioError(f"{self.description}: the device stopped delivering audio (unplugged?)"))

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
