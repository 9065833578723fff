"""The real-time loop: one analysis thread for every stream of the process.

It sleeps until a source has data (every source sets one shared event when
audio or its end arrives), drains the sources into their StreamAnalyzers,
and copies the windows now due into one batch. The batch goes to the
engine when every stream has a window in it, or when the first window in
it has waited BATCH_WAIT_SECONDS, so that windows of several streams due a
few milliseconds apart share one inference, as a dynamic batcher does.
Then the messages go to the sinks (publisher, dashboard state, recorder),
none of which may block.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .. import realtime
from ..audio.io import AudioError
from ..inference import Engine
from ..contract import WINDOW_SHAPE
from ..messages import Message
from .analyzer import DueWindow, StreamAnalyzer
from .moods import MoodVocabulary
from .windows import DEFAULT_HOP

Sink = Callable[[Message], None]
STATUS_SECONDS = 1.0
BATCH_WAIT_SECONDS = 0.005     # how long a due window waits for other streams' windows to join its batch
MAX_BACKLOG_WINDOWS = 8        # a live input this far behind skips its oldest due windows, and counts them


@dataclass
class LoopOptions:
    hop: float = DEFAULT_HOP
    smoothing: str = "ema"
    smoothing_time: float = 2.0
    explain: bool = False
    engine_reason: str = ""
    moods: MoodVocabulary | None = None      # None: the shipped vocabulary
    realtime: bool = True                    # ask for real-time scheduling (rt_mer.realtime)


class _Stop(threading.Event):
    """`loop.stop`: setting it also wakes the loop from its sleep."""

    def __init__(self, wakeup: threading.Event) -> None:
        super().__init__()
        self._wakeup = wakeup

    def set(self) -> None:
        super().set()
        self._wakeup.set()


class LiveStream:
    """A source and its analyzer, as the loop drives them."""

    def __init__(self, source, options: LoopOptions, engine_name: str) -> None:
        self.source = source
        # A source that can wait is read a backlog at a time and never late;
        # a live one is read whole and skips what it cannot catch up with.
        self.analyzer = StreamAnalyzer(source.name, source.rate, options.hop, options.smoothing,
                                       options.smoothing_time, engine_name,
                                       max_backlog=None if source.can_wait else MAX_BACKLOG_WINDOWS,
                                       moods=options.moods)
        self.read_limit = (int(MAX_BACKLOG_WINDOWS * self.analyzer.hop_seconds * source.rate)
                           if source.can_wait else None)
        self.emitted = False
        self.drained = False       # the source finished and its last samples went through
        self.ended = False         # its "ended" status was sent
        self.error: AudioError | None = None     # what the source failed with, if it did

    @property
    def seq(self) -> dict[str, int]:
        return self.analyzer.seq

    @property
    def late_windows(self) -> int:
        return self.analyzer.late_windows

    def ingest(self) -> tuple[list[DueWindow], bool]:
        """(windows now due, whether more is waiting in the source); once
        the source has finished, flush the resampler once and stop."""
        if self.drained:
            return [], False
        try:
            samples, capture = self.source.read(self.read_limit)
        except AudioError as error:              # raised once all its audio was read: flush and stop
            self.error, self.drained = error, True
            return self.analyzer.push(np.zeros(0, np.float32), last=True), False
        self.drained = self.source.finished      # after the read: it has taken everything
        if not len(samples) and not self.drained:
            return [], False
        more = not self.drained and self.read_limit is not None and len(samples) >= self.read_limit
        return self.analyzer.push(samples, capture, last=self.drained), more


class AnalysisLoop:
    """Runs until every source has finished or `stop` is set. A source that
    fails ends its own stream only; `failures` lists what each failed with."""

    def __init__(self, sources: Sequence, engine: Engine, sinks: Sequence[Sink],
                 options: LoopOptions | None = None) -> None:
        self.options = options or LoopOptions()
        self.engine, self.sinks = engine, list(sinks)
        self.streams = [LiveStream(source, self.options, engine.name) for source in sources]
        self.hop_seconds = self.streams[0].analyzer.hop_seconds if self.streams else DEFAULT_HOP
        self.windows = np.empty((max(1, 2 * len(self.streams) * MAX_BACKLOG_WINDOWS), *WINDOW_SHAPE), np.float32)
        self.pending: list[tuple[LiveStream, DueWindow]] = []
        self._pending_since = 0.0            # monotonic time the oldest pending window became due
        self.batches = 0                     # inference calls made
        self.passes = 0                      # times the loop woke and drained its sources
        self.wakeup = threading.Event()
        self.stop = _Stop(self.wakeup)
        self._error: BaseException | None = None
        # How the analysis thread runs, once it runs; a live source's
        # producer asks for the step above it (rt_mer.realtime). Inputs that
        # can wait for the analysis have no deadline to keep.
        self.real_time = self.options.realtime and not all(s.source.can_wait for s in self.streams)
        self.scheduling = f"{realtime.NORMAL}: " + (
            "not started" if self.real_time else "not asked for" if not self.options.realtime else "no live input")
        for stream in self.streams:
            stream.source.priority = realtime.CAPTURE_PRIORITY if self.real_time else None

    def run(self) -> None:
        """Analyse on a thread of its own until done; the calling thread
        only waits (so a signal handler that sets `stop` runs there, never
        inside the loop's own locks). Re-raises what ended the loop."""
        worker = threading.Thread(target=self._run_safely, name="analysis")
        worker.start()
        worker.join()
        if self._error is not None:
            raise self._error

    def _run_safely(self) -> None:
        try:
            asked = realtime.analysis_thread() if self.real_time else contextlib.nullcontext(self.scheduling)
            with asked as self.scheduling:
                self._run()
        except BaseException as error:       # handed to run()'s caller, in its thread
            self._error = error

    def _run(self) -> None:
        for stream in self.streams:
            stream.source.wakeup = self.wakeup
            stream.source.start()
        next_status = 0.0
        try:
            while not self.stop.is_set():
                self.wakeup.clear()          # before draining: audio arriving after this wakes us again
                self.passes += 1
                more = self._drain()
                deadline = self._dispatch()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_SECONDS
                    self._statuses()
                if all(s.drained for s in self.streams) and not self.pending:
                    break
                if not more:
                    self.wakeup.wait(max(0.0, min(next_status, deadline) - time.monotonic()))
        finally:
            for stream in self.streams:
                stream.source.stop()
            try:
                self._infer()                # windows already due are not lost
            finally:
                for stream in self.streams:
                    if not stream.ended:
                        self._status(stream, "ended")

    def _drain(self) -> bool:
        """Read every source, copying due windows into the batch; True if a
        source that can wait has more ready."""
        more = False
        for stream in self.streams:
            due, waiting = stream.ingest()
            more |= waiting
            for window in due:
                if len(self.pending) == len(self.windows):
                    self._infer()
                if not self.pending:
                    self._pending_since = time.monotonic()
                stream.analyzer.window(window, self.windows[len(self.pending)])
                self.pending.append((stream, window))
        return more

    def _dispatch(self) -> float:
        """Infer the batch if it is complete or has waited long enough;
        returns when it must go at the latest (infinity: nothing pending)."""
        if not self.pending:
            return float("inf")
        waiting = {id(stream) for stream, _ in self.pending}
        live = [s for s in self.streams if not s.drained]
        deadline = self._pending_since + BATCH_WAIT_SECONDS
        if all(id(s) in waiting for s in live) or time.monotonic() >= deadline:
            self._infer()
            return float("inf")
        return deadline

    def _infer(self) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        started = time.perf_counter()
        prediction = self.engine.infer(self.windows[:len(pending)])
        inference = time.perf_counter() - started
        self.batches += 1
        explain = self.options.explain
        for i, (stream, due) in enumerate(pending):
            message = stream.analyzer.emit(due, float(prediction.valence[i]), float(prediction.arousal[i]),
                                           prediction.explanation[i] if explain else None,
                                           batch=len(pending), inference_seconds=inference,
                                           drivers=prediction.drivers[i] if explain else None)
            publish_started = time.perf_counter()
            self._send(message)
            stream.analyzer.record_latency(message, time.perf_counter() - publish_started)
            stream.emitted = True

    @property
    def failures(self) -> list[AudioError]:
        return [stream.error for stream in self.streams if stream.error is not None]

    def _statuses(self) -> None:
        """Every stream's periodic status; a stream whose source has
        finished, and whose last window has gone, says "ended" once."""
        pending = {id(stream) for stream, _ in self.pending}
        for stream in (s for s in self.streams if not s.ended):
            if stream.drained and id(stream) not in pending:
                self._status(stream, "ended")
            else:
                self._status(stream, "running" if stream.emitted else "warming")

    def _status(self, stream: LiveStream, state: str) -> None:
        stream.ended = state == "ended"
        source = stream.source
        self._send(stream.analyzer.status(state, source.counters, source=source.description, rate=source.rate,
                                          channels=source.channels, engine_reason=self.options.engine_reason,
                                          scheduling=self.scheduling, capture_scheduling=source.scheduling))

    def _send(self, message: Message) -> None:
        """Hand a finished message to every sink; sinks must not change it."""
        if message.type == "emotion":
            # processing latency: the window's last sample captured -> sent
            message.latency_ms["total"] = (time.time() - message.wall) * 1000
        for sink in self.sinks:
            sink(message)


__all__ = ["AnalysisLoop", "AudioError", "LoopOptions", "Sink"]
