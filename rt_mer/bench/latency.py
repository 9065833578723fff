"""Processing latency per hop through the real loop, the host's own tail
beside it, and how many streams one process keeps up with."""
from __future__ import annotations

import threading
import time

import numpy as np

from .. import realtime
from ..stream.windows import DEFAULT_HOP
from .feed import SyntheticFeed, loop_stages, run_loop

CARD_RATE, CARD_BLOCK_SECONDS = 48_000, 0.02     # a sound card's usual rate and block


def bench_latency(engine, hop: float = DEFAULT_HOP, hops: int = 500, interval: float = 0.02,
                  real_time: bool = True) -> tuple[dict, str]:
    """One stream through the loop, publishing on a real socket; a hop of
    audio `interval` s after the previous hop was sent (faster than real
    time: the loop is idle between hops either way). The work per hop, and
    the scheduling it ran under. 500 hops (the most the loop's
    LATENCY_HISTORY keeps) put the p99 on the five slowest, not on one
    stall of the host."""
    return _latency(engine, SyntheticFeed(1, hop, hops, interval, lockstep=True), real_time)


def bench_host_tail(work_ms: float, hops: int = 500, interval: float = 0.02, real_time: bool = True) -> dict:
    """The latency's baseline: the tail the host alone adds. Fixed NumPy work
    on one core (a 256 KB working set, as the model's weights) lasting about
    `work_ms`, on `bench_latency`'s schedule and scheduling (a thread asking
    for real-time unless not `real_time`): on a shared or virtual machine a
    stall or a neighbour's cache traffic lengthens it as it lengthens a hop."""
    data = np.ones(65_536, dtype=np.float32)

    def run(reps: int) -> float:
        started = time.perf_counter()
        for _ in range(reps):
            np.multiply(data, 1.0, out=data)
        return (time.perf_counter() - started) * 1000

    def scheduled(reps: int, count: int) -> np.ndarray:
        return np.array([time.sleep(interval) or run(reps) for _ in range(count)])

    def measure() -> None:
        if real_time:
            realtime.request(realtime.ANALYSIS_PRIORITY)
        reps = 100
        for _ in range(2):               # the second pass corrects the first's cold start
            reps = max(1, round(reps * work_ms / np.median(scheduled(reps, 25))))
        times.extend(scheduled(reps, hops))

    times: list[float] = []
    worker = threading.Thread(target=measure, name="host tail")
    worker.start()
    worker.join()
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def bench_capture_latency(engine, hop: float = DEFAULT_HOP, hops: int = 40, rate: int = CARD_RATE,
                          block_seconds: float = CARD_BLOCK_SECONDS) -> tuple[dict, str]:
    """As `bench_latency`, with the audio as a sound card delivers it, in
    real time: `block_seconds` blocks at `rate`, so the wait for the rest of
    the block and the resampler's look-ahead (`buffering`) are in the total.
    (Faster than real time, a stall would pile up more audio than it would
    live and inflate the buffering.)"""
    return _latency(engine, SyntheticFeed(1, hop, hops, block_seconds, rate=rate, block_seconds=block_seconds))


def _latency(engine, feed: SyntheticFeed, real_time: bool = True) -> tuple[dict, str]:
    from ..publish import Publisher
    with Publisher(f"inproc://bench-{id(feed)}") as publisher:       # a fresh name: unbinding is asynchronous
        loop = run_loop(engine, feed, publisher.send, real_time)
    feeder = feed.sources[0].scheduling
    return ({stage: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}
             for stage, v in loop_stages(loop).items()},
            loop.scheduling if realtime.is_real_time(feeder) else f"{loop.scheduling}, its feed {feeder}")


def bench_streams(engine, hop: float = DEFAULT_HOP, counts=(1, 4, 8, 16, 32, 64, 128), hops: int = 8) -> dict:
    """Per stream count, in real time through the loop: p99 of the
    processing latency (a hop's last sample captured -> its message sent,
    every stream's windows in one batch), and whether it fits in the hop
    with a 20 % margin (the rest is for capture and sinks) with no window
    late."""
    result = {}
    for count in counts:
        loop = run_loop(engine, SyntheticFeed(count, hop, hops, hop))
        stages = loop_stages(loop)
        p99 = float(np.percentile(stages["total"], 99))
        late = sum(stream.late_windows for stream in loop.streams)
        result[count] = {"hop_ms_p99": p99, "real_time": p99 < 0.8 * hop * 1000 and not late,
                         "frontend_share": sum(stages["frontend"]) / sum(stages["total"]), "late": late}
        if p99 > hop * 1000:
            break
    return result
