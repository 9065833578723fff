"""The demo music as synthetic live streams through the real loop: the
benchmarks' shared input. The latency, streams and gpu figures drive the
real AnalysisLoop with these sources (the demo music, a hop or a block at a
time) and read the latencies the loop itself measured: there is no second
copy of the loop."""
from __future__ import annotations

import functools
import threading
import time

import numpy as np
import soxr

from ..audio.io import read_audio
from ..audio.sources import PushSource, demo_path
from ..contract import WINDOW_SHAPE
from ..dsp import frontend
from ..stream.analyzer import STAGES, StreamAnalyzer, input_per_frame
from ..stream.loop import AnalysisLoop, LoopOptions
from ..stream.windows import DEFAULT_HOP, hop_frames


@functools.cache
def demo_audio(rate: int = frontend.SAMPLE_RATE) -> np.ndarray:
    """The demo music at `rate` (default: the model's), decoded once for every benchmark."""
    audio = read_audio(demo_path())
    return audio if rate == frontend.SAMPLE_RATE else soxr.resample(audio, frontend.SAMPLE_RATE, rate)


def demo_windows(count: int, hop: float = DEFAULT_HOP) -> np.ndarray:
    """`count` real windows of the demo music, a hop apart, starting over
    when the music has fewer: float32 [count, *WINDOW_SHAPE]."""
    analyzer = StreamAnalyzer("demo", frontend.SAMPLE_RATE, hop)
    due = analyzer.push(demo_audio())
    windows = np.empty((min(count, len(due)), *WINDOW_SHAPE), np.float32)
    for i in range(len(windows)):
        analyzer.window(due[i], windows[i])
    return windows[np.arange(count) % len(windows)]


class SyntheticFeed:
    """Writes the demo music at `rate` into `streams` sources: the first
    window at once, then `hops` hops in blocks of `block_seconds` (default:
    a hop), one block every `interval` seconds; then ends them. In
    `lockstep` (blocks of a hop only), each hop is written only once the
    loop has sent every window of the one before (then `interval` later):
    the per-hop work measured alone, never queued behind the previous hop's."""

    def __init__(self, streams: int, hop: float, hops: int, interval: float, lockstep: bool = False,
                 rate: int = frontend.SAMPLE_RATE, block_seconds: float | None = None) -> None:
        self.hop, self.rate, self.interval, self.lockstep = hop, rate, interval, lockstep
        per_frame = input_per_frame(rate)
        step = round(hop_frames(hop) * per_frame)
        self.block = step if block_seconds is None else round(block_seconds * rate)
        assert not lockstep or self.block == step, "lockstep counts one window per stream a block"
        self.blocks = hops * step // self.block
        self.window = round(frontend.WINDOW_FRAMES * per_frame)
        self.sources = [PushSource(f"s{i}", rate, description=f"synthetic s{i}",
                                   buffer_seconds=(self.window + 4 * step) / rate) for i in range(streams)]
        self.stop = threading.Event()
        self._sent = self._expected = 0
        self._caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synthetic feed", daemon=True)

    def count(self, message) -> None:
        """The loop's sink: notes each window sent."""
        if message.type == "emotion":
            self._sent += 1
            if self._sent >= self._expected:
                self._caught_up.set()

    def _run(self) -> None:
        for source in self.sources:                 # scheduled as a capture thread would be
            source.take_priority()
        audio = demo_audio(self.rate)
        self._write(audio[:self.window, None])
        position, next_tick = self.window, time.monotonic() + self.interval
        for _ in range(self.blocks):
            if self.lockstep:
                self._caught_up.wait(60)
                next_tick = time.monotonic() + self.interval
            if self.stop.wait(max(0.0, next_tick - time.monotonic())):
                break
            next_tick += self.interval
            if position + self.block > len(audio):
                position = 0
            self._write(audio[position:position + self.block, None])
            position += self.block
        for source in self.sources:
            source.end()

    def _write(self, block: np.ndarray) -> None:
        self._caught_up.clear()
        self._expected += len(self.sources)
        for source in self.sources:
            source.write(block)

    def start(self) -> None:
        self._thread.start()


def run_loop(engine, feed: SyntheticFeed, sink=None, real_time: bool = True) -> AnalysisLoop:
    """The real-time loop over the feed's streams (asking for real-time
    scheduling unless not `real_time`); returns it when they have ended,
    with the latencies, counters and scheduling it measured."""
    loop = AnalysisLoop(feed.sources, engine, [feed.count] + ([sink] if sink else []),
                        LoopOptions(hop=feed.hop, smoothing="off", realtime=real_time))
    feed.start()
    try:
        loop.run()
    finally:
        feed.stop.set()
    return loop


def loop_stages(loop: AnalysisLoop, stages=STAGES) -> dict:
    """Every window's per-stage latency (ms) the loop measured, all streams together."""
    return {stage: [ms for stream in loop.streams for ms in stream.analyzer.latency[stage]] for stage in stages}
