"""The real-time loop: one analysis thread for every stream of the process.

It wakes every few milliseconds, drains each source's ring (the audio
callback only copies into it), runs the new samples through the resampler
and the incremental front-end, and when windows are due, sends the windows
of every stream through the engine as one batch. Post-processing, then the
sinks (publisher, dashboard state, recorder), none of which may block.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..audio.io import Resampler
from ..dsp.frontend import FRAME_HOP, FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SECONDS, StreamingSpectrogram
from ..engines import Engine
from ..engines.base import WINDOW_SHAPE
from ..publish.schema import CLIP_DBFS, VERSION
from .post import mood, quadrant
from .smoothing import make_smoother
from .windows import FrameHistory, hop_frames

Sink = Callable[[str, str, dict], None]          # (kind, stream, message)
STAGES = ("frontend", "inference", "post", "publish", "total")
POLL_SECONDS = 0.004
STATUS_SECONDS = 1.0
MAX_BACKLOG_WINDOWS = 8        # more windows due than this and the oldest are skipped, and counted
LATENCY_HISTORY = 512


def dbfs(amplitude: float) -> float:
    return 20 * np.log10(max(amplitude, 1e-10))


@dataclass
class LoopOptions:
    hop: float = 0.5
    smoothing: str = "ema"
    smoothing_time: float = 2.0
    explain: bool = False
    engine_reason: str = ""


class StreamState:
    """What the loop keeps for one stream."""

    def __init__(self, source, step: int, options: LoopOptions) -> None:
        self.source, self.step = source, step
        self.resample = Resampler(source.rate)
        self.spectrogram = StreamingSpectrogram()
        self.history = FrameHistory(WINDOW_FRAMES + MAX_BACKLOG_WINDOWS * step)
        self.next_end = WINDOW_FRAMES
        self.samples = 0                      # at the model rate
        self.last_capture: float | None = None
        self.smooth = [make_smoother(options.smoothing, options.smoothing_time) for _ in range(2)]
        self.seq = {"emotion": 0, "status": 0}
        self.peak = self.square_sum = 0.0
        self.level_count = 0
        self.level = (-200.0, -200.0)        # rms, peak dBFS over the last status period
        self.clipped = 0                     # reads that clipped, since the last status
        self.late_windows = 0
        self.frontend_seconds = 0.0
        self.latency = {stage: deque(maxlen=LATENCY_HISTORY) for stage in STAGES}
        self.emitted = False
        self.drained = False                 # the source finished and its last samples went through

    def ingest(self) -> None:
        """Drain the source and run new samples through the front-end; once
        the source has finished, flush the resampler once and stop."""
        if self.drained:
            return
        started = time.perf_counter()
        samples, capture = self.source.read()
        finishing = self.source.finished
        if len(samples) or finishing:
            self._meter(samples)
            resampled = self.resample(samples, last=finishing)
            self.samples += len(resampled)
            self.history.push(self.spectrogram.push(resampled))
            if capture is not None:
                self.last_capture = capture
        self.drained = finishing
        self.frontend_seconds += time.perf_counter() - started

    def _meter(self, samples: np.ndarray) -> None:
        if len(samples):
            peak = float(np.abs(samples).max())
            self.peak = max(self.peak, peak)
            self.square_sum += float(np.dot(samples, samples))
            self.level_count += len(samples)
            self.clipped += int(peak >= 10 ** (CLIP_DBFS / 20))

    def take_level(self) -> tuple[float, float, int]:
        """(rms, peak dBFS, reads that clipped) since the last call."""
        if self.level_count:
            self.level = (dbfs(np.sqrt(self.square_sum / self.level_count)), dbfs(self.peak))
        clipped = self.clipped
        self.peak = self.square_sum = 0.0
        self.level_count = self.clipped = 0
        return (*self.level, clipped)

    def due_windows(self) -> list[int]:
        """End frames of the windows now complete, oldest first; a backlog
        past MAX_BACKLOG_WINDOWS is skipped and counted as late."""
        ends = []
        while self.next_end <= self.history.count:
            ends.append(self.next_end)
            self.next_end += self.step
        if len(ends) > MAX_BACKLOG_WINDOWS:
            self.late_windows += len(ends) - MAX_BACKLOG_WINDOWS
            ends = ends[-MAX_BACKLOG_WINDOWS:]
        return ends

    def capture_time(self, end_frame: int) -> float:
        """Wall time the window's last sample was captured, from the capture
        time of the newest sample read and the samples since."""
        if self.last_capture is None:
            return time.time()
        return self.last_capture - (self.samples - end_frame * FRAME_HOP) / SAMPLE_RATE

    def percentiles(self) -> dict:
        return {name: {stage: round(float(np.percentile(values, q)), 3) if values else None
                       for stage, values in self.latency.items()}
                for name, q in (("p50", 50), ("p99", 99))}


class AnalysisLoop:
    """Runs until every source has finished or `stop` is set."""

    def __init__(self, sources: Sequence, engine: Engine, sinks: Sequence[Sink],
                 options: LoopOptions | None = None) -> None:
        self.options = options or LoopOptions()
        step = hop_frames(self.options.hop)
        self.engine, self.sinks = engine, list(sinks)
        self.streams = [StreamState(source, step, self.options) for source in sources]
        self.windows = np.empty((len(self.streams) * MAX_BACKLOG_WINDOWS, *WINDOW_SHAPE), np.float32)
        self.hop_seconds = step / FRAMES_PER_SECOND
        self.stop = threading.Event()

    def run(self) -> None:
        for stream in self.streams:
            stream.source.start()
        next_status = 0.0
        try:
            while not self.stop.is_set():
                for stream in self.streams:
                    stream.ingest()
                self._analyse([(s, end) for s in self.streams for end in s.due_windows()])
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_SECONDS
                    for stream in self.streams:
                        self._status(stream, "running" if stream.emitted else "warming")
                if all(s.drained for s in self.streams):
                    break
                time.sleep(POLL_SECONDS)
        finally:
            for stream in self.streams:
                stream.source.stop()
                self._status(stream, "ended")

    def _analyse(self, due: list[tuple[StreamState, int]]) -> None:
        if not due:
            return
        for i, (stream, end) in enumerate(due):
            stream.history.window(end, self.windows[i])
        started = time.perf_counter()
        prediction = self.engine.infer(self.windows[:len(due)])
        inference = time.perf_counter() - started
        for i, (stream, end) in enumerate(due):
            post_started = time.perf_counter()
            message = self._emotion(stream, end, float(prediction.valence[i]), float(prediction.arousal[i]),
                                    prediction.explanation[i] if self.options.explain else None)
            message["batch"] = len(due)
            message["latency_ms"] = {"frontend": round(stream.frontend_seconds * 1000, 3),
                                     "inference": round(inference * 1000, 3),
                                     "post": round((time.perf_counter() - post_started) * 1000, 3)}
            publish_started = time.perf_counter()
            self._send("emotion", stream, message)
            # a message cannot carry its own send time: publish is in the percentiles only
            latency = {**message["latency_ms"], "publish": (time.perf_counter() - publish_started) * 1000}
            for stage in STAGES:
                stream.latency[stage].append(latency[stage])
            stream.frontend_seconds = 0.0
            stream.emitted = True

    def _emotion(self, stream: StreamState, end: int, valence: float, arousal: float, explanation) -> dict:
        smooth_v = stream.smooth[0](valence, self.hop_seconds)
        smooth_a = stream.smooth[1](arousal, self.hop_seconds)
        rms, peak = stream.level
        message = {"v": VERSION, "type": "emotion", "stream": stream.source.name, "seq": 0,
                   "t": end / FRAMES_PER_SECOND, "wall": stream.capture_time(end),
                   "valence": round(smooth_v, 4), "arousal": round(smooth_a, 4),
                   "valence_raw": round(valence, 4), "arousal_raw": round(arousal, 4),
                   "quadrant": quadrant(smooth_v, smooth_a), "mood": mood(smooth_v, smooth_a),
                   "level_dbfs": round(rms, 1), "peak_dbfs": round(peak, 1),
                   "engine": self.engine.name}
        if explanation is not None:
            message["explanation"] = {"valence": np.round(explanation[0], 3).tolist(),
                                      "arousal": np.round(explanation[1], 3).tolist()}
        return message

    def _status(self, stream: StreamState, state: str) -> None:
        rms, peak, clipped = stream.take_level()
        source = stream.source
        message = {"v": VERSION, "type": "status", "stream": source.name, "seq": 0,
                   "t": stream.samples / SAMPLE_RATE, "wall": time.time(), "state": state,
                   "source": source.description, "rate": source.rate, "channels": source.channels,
                   "engine": self.engine.name, "engine_reason": self.options.engine_reason,
                   "window_s": WINDOW_SECONDS, "hop_s": self.hop_seconds,
                   "level_dbfs": round(rms, 1), "peak_dbfs": round(peak, 1), "clipped": clipped,
                   "late_windows": stream.late_windows, "latency_ms": stream.percentiles(),
                   **{name: int(count) for name, count in source.counters.items()}}
        self._send("status", stream, message)

    def _send(self, kind: str, stream: StreamState, message: dict) -> None:
        """Hand a finished message to every sink; sinks must not change it."""
        message["seq"] = stream.seq[kind]
        stream.seq[kind] += 1
        if kind == "emotion":
            # processing latency: the window's last sample captured -> sent
            message["latency_ms"]["total"] = round((time.time() - message["wall"]) * 1000, 3)
        for sink in self.sinks:
            sink(kind, stream.source.name, message)
