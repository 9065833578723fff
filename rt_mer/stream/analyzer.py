"""One stream's pipeline: resampler, incremental front-end, windows, then
post-processing of the engine's output into typed messages.

Every path drives this object: the live loop (several streams, batched
into one inference), `analyze_file` (no clock, as fast as the file
decodes) and `rt-mer bench` (through the live loop). The engine is not
here: the caller batches the windows of all its streams into one call.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..audio.io import Resampler
from ..dsp.frontend import FRAME_HOP, FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SECONDS, \
    StreamingSpectrogram
from ..messages import CLIP_DBFS, LEVEL_RANGE_DBFS, EmotionMessage, StatusMessage, quadrant
from .moods import MoodVocabulary, default_moods
from .smoothing import make_smoother
from .windows import DEFAULT_HOP, FrameHistory, hop_frames

STAGES = ("buffering", "frontend", "inference", "post", "publish", "total")
LATENCY_HISTORY = 512          # windows the status percentiles cover
CLIP_AMPLITUDE = 10 ** (CLIP_DBFS / 20)


def dbfs(amplitude: float) -> float:
    return 20 * np.log10(max(amplitude, 10 ** (LEVEL_RANGE_DBFS[0] / 20)))


class LevelMeter:
    """RMS, peak and clipped blocks of the samples since the last `read`."""

    def __init__(self) -> None:
        self.level = (LEVEL_RANGE_DBFS[0], LEVEL_RANGE_DBFS[0])   # rms, peak dBFS at the last read with samples
        self._reset()

    def _reset(self) -> None:
        self._peak = self._square_sum = 0.0
        self._count = self._clipped = 0

    def add(self, samples: np.ndarray) -> None:
        if len(samples):
            peak = float(np.abs(samples).max())
            self._peak = max(self._peak, peak)
            self._square_sum += float(np.dot(samples.astype(np.float64), samples))
            self._count += len(samples)
            self._clipped += int(peak >= CLIP_AMPLITUDE)

    def read(self) -> tuple[tuple[float, float], int]:
        """(rms, peak) dBFS since the last read (the previous reading when no
        samples came), and the clipped blocks since then; starts afresh."""
        if self._count:
            self.level = (dbfs(np.sqrt(self._square_sum / self._count)), dbfs(self._peak))
        clipped = self._clipped
        self._reset()
        return self.level, clipped


def input_per_frame(rate: int) -> float:
    """Input samples at `rate` per spectrogram frame."""
    return FRAME_HOP * rate / SAMPLE_RATE


class HopLevels:
    """The input's level between consecutive window ends: samples are
    metered in pieces cut where each window ends (counted in input
    samples), so a message carries the level of its own hop however many
    windows one push completes (a pipe faster than real time, a backlog)."""

    def __init__(self, rate: int, step: int) -> None:
        self.input_per_frame, self.step = input_per_frame(rate), step
        self.next_end, self.metered = WINDOW_FRAMES, 0
        self.meter = LevelMeter()
        self.readings: deque[tuple[int, tuple[float, float]]] = deque(maxlen=1024)   # (window end, level)

    def add(self, samples: np.ndarray) -> None:
        while len(samples):
            boundary = round(self.next_end * self.input_per_frame)
            piece, samples = samples[:boundary - self.metered], samples[boundary - self.metered:]
            self.meter.add(piece)
            self.metered += len(piece)
            if self.metered == boundary:
                self.readings.append((self.next_end, self.meter.read()[0]))
                self.next_end += self.step

    def at(self, end: int) -> tuple[float, float]:
        """(rms, peak) dBFS of the hop that ends at frame `end`; else (the
        stream's last window, due once the resampler flushed, before its
        input reached the boundary) of what came since the last reading."""
        while self.readings and self.readings[0][0] < end:
            self.readings.popleft()
        return self.readings[0][1] if self.readings and self.readings[0][0] == end else self.meter.read()[0]


@dataclass(frozen=True)
class DueWindow:
    """A window ready for the engine: it ends at frame `end` of the stream
    (frames counted from the stream's start); `wall` is the Unix time its
    last sample was captured (None without a clock). The first two stages
    of its processing latency, seconds: `buffering`, the input pushed after
    its last sample up to the push that completed it (audio time: the rest
    of the block that held that sample, the resampler's look-ahead, any
    backlog); `frontend`, the work of that push."""
    end: int
    wall: float | None
    buffering: float = 0.0
    frontend: float = 0.0

    @property
    def t(self) -> float:
        """Stream time of the window's end, seconds."""
        return self.end / FRAMES_PER_SECOND


class StreamAnalyzer:
    """`push(samples, capture_time)` -> the windows now due; `window(due,
    out)` writes one for the engine; `emit(due, valence, arousal, ...)` ->
    the EmotionMessage; `status(state, ...)` -> the StatusMessage.

    `max_backlog`: when more windows than this are due at once (the
    caller fell behind a live input), the oldest are skipped and counted in
    `late_windows`; None keeps them all (an input that can wait). The
    windows a push returns must be copied out (`window`) before the next
    push: the history keeps only what the newest windows need. `moods` names
    the points (default: the shipped vocabulary).
    """

    def __init__(self, name: str, rate: int, hop: float = DEFAULT_HOP, smoothing: str = "ema",
                 smoothing_time: float = 2.0, engine: str = "", max_backlog: int | None = None,
                 moods: MoodVocabulary | None = None) -> None:
        self.name, self.rate, self.engine, self.max_backlog = name, rate, engine, max_backlog
        self.moods = moods or default_moods()
        self.step = hop_frames(hop)
        self.hop_seconds = self.step / FRAMES_PER_SECOND
        self.resample = Resampler(rate)
        self.spectrogram = StreamingSpectrogram()
        self.history = FrameHistory(WINDOW_FRAMES)
        self.next_end = WINDOW_FRAMES
        self.samples = 0                      # pushed so far, at the model rate
        self.received = 0                     # pushed so far, input samples at `rate`
        self.input_per_frame = input_per_frame(rate)
        self.last_capture: float | None = None
        self.smooth = [make_smoother(smoothing, smoothing_time) for _ in range(2)]
        self.seq = {"emotion": 0, "status": 0}
        self.late_windows = 0
        self.latency = {stage: deque(maxlen=LATENCY_HISTORY) for stage in STAGES}
        # An emotion message carries the level of its window's hop, a status
        # message that of its period.
        self.hop_levels, self.status_level = HopLevels(rate, self.step), LevelMeter()

    # ------------------------------------------------------------ audio in

    def push(self, samples: np.ndarray, capture_time: float | None = None, last: bool = False) -> list[DueWindow]:
        """Mono samples at `rate` (the last one captured at `capture_time`,
        Unix time); `last` flushes the resampler at the end of the stream.
        Returns the windows this completes, oldest first."""
        started = time.perf_counter()
        self.hop_levels.add(samples)
        self.status_level.add(samples)
        resampled = self.resample(samples, last=last)
        self.samples += len(resampled)
        self.received += len(samples)
        self.history.push(self.spectrogram.push(resampled))
        if capture_time is not None:
            self.last_capture = capture_time
        return self._due(time.perf_counter() - started)

    def _due(self, frontend: float) -> list[DueWindow]:
        ends = list(range(self.next_end, self.history.count + 1, self.step))
        if ends:
            self.next_end = ends[-1] + self.step
        if self.max_backlog is not None and len(ends) > self.max_backlog:
            self.late_windows += len(ends) - self.max_backlog
            ends = ends[-self.max_backlog:]
        return [self._due_window(end, frontend) for end in ends]

    def _due_window(self, end: int, frontend: float) -> DueWindow:
        # Counted in input samples: the resampler holds back its look-ahead,
        # so the model-rate samples would place the last sample too late.
        buffering = max(0.0, (self.received - end * self.input_per_frame) / self.rate)
        wall = None if self.last_capture is None else self.last_capture - buffering
        return DueWindow(end, wall, buffering, frontend)

    def window(self, due: DueWindow, out: np.ndarray) -> None:
        """The harmonic-stacked window [*WINDOW_SHAPE] into `out`."""
        self.history.window(due.end, out)

    # ------------------------------------------------------- messages out

    def emit(self, due: DueWindow, valence: float, arousal: float, explanation: np.ndarray | None = None,
             batch: int = 1, inference_seconds: float = 0.0, drivers: np.ndarray | None = None) -> EmotionMessage:
        """The engine's output for `due` as the next emotion message:
        smoothed, with quadrant, mood, levels and per-stage latency (its
        total is set by whoever sends it); the explanation and drivers
        (unsmoothed, as the model gave them) where given."""
        started = time.perf_counter()
        smooth_v = self.smooth[0](valence, self.hop_seconds)
        smooth_a = self.smooth[1](arousal, self.hop_seconds)
        level, peak = self.hop_levels.at(due.end)
        message = EmotionMessage(
            stream=self.name, seq=self._next_seq("emotion"), t=due.t,
            wall=due.wall if due.wall is not None else time.time(),
            valence=smooth_v, arousal=smooth_a, valence_raw=valence, arousal_raw=arousal,
            quadrant=quadrant(smooth_v, smooth_a), mood=self.moods.word(smooth_v, smooth_a),
            level_dbfs=level, peak_dbfs=peak, engine=self.engine, batch=batch,
            explanation=explanation, drivers=drivers)
        message.latency_ms = {"buffering": due.buffering * 1000, "frontend": due.frontend * 1000,
                              "inference": inference_seconds * 1000, "post": (time.perf_counter() - started) * 1000}
        return message

    def record_latency(self, message: EmotionMessage, publish_seconds: float) -> None:
        """Keep a sent message's stage latencies for the status percentiles
        (a message cannot carry its own send time: publish is here only)."""
        for stage in STAGES:
            value = publish_seconds * 1000 if stage == "publish" else message.latency_ms.get(stage)
            if value is not None:
                self.latency[stage].append(value)

    def status(self, state: str, counters: dict[str, int], **fields) -> StatusMessage:
        """The next status message: levels since the previous one, late
        windows, latency percentiles, the source's `counters`; `fields`
        fills the rest (source, rate, channels, engine_reason, scheduling, capture_scheduling)."""
        (level, peak), clipped = self.status_level.read()
        return StatusMessage(stream=self.name, seq=self._next_seq("status"), t=self.samples / SAMPLE_RATE,
                             wall=time.time(), state=state, engine=self.engine, window_s=WINDOW_SECONDS,
                             hop_s=self.hop_seconds, level_dbfs=level, peak_dbfs=peak,
                             clipped=clipped, late_windows=self.late_windows, latency_ms=self.percentiles(),
                             counters=dict(counters), **fields)

    def percentiles(self) -> dict:
        return {name: {stage: float(np.percentile(values, q)) if values else None
                       for stage, values in self.latency.items()}
                for name, q in (("p50", 50), ("p99", 99))}

    def _next_seq(self, kind: str) -> int:
        seq = self.seq[kind]
        self.seq[kind] += 1
        return seq
