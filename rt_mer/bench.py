"""`rt-mer bench`: speed figures, each beside a baseline run in the same
process, on the shipped demo music.

- analyze: offline analysis on one core, times real time (the median of
  three passes after a warm-up), against the obvious way (librosa STFT of
  every window from scratch, PyTorch eager).
- latency: processing latency per hop for one stream, per stage, as the
  real-time loop measures it: the audio a hop at a time (the work), then
  as a sound card delivers it (20 ms blocks at 48 kHz: the wait for the
  rest of the block and the resampler's look-ahead as well); beside it, the
  host's own tail: fixed work of the same median on the same schedule.
- streams: how many streams one process keeps up with at the given hop.

The latency, streams and gpu figures drive the real AnalysisLoop with
synthetic sources (the demo music, a hop or a block at a time) and read the
latencies the loop itself measured: there is no second copy of the loop.
Its threads are scheduled as `rt-mer run` schedules them (real-time where
the system allows it: rt_mer.realtime); the latency is measured at normal
priority as well, and each figure says which it is.
The PyTorch baselines need the shipped weights (engines/rt-mer.pt, in a
checkout) and torch; without either they are skipped, with the reason.
- cpu: CPU use of `rt-mer run` with its dashboard in a pseudo-terminal.
- gpu (TensorRT engines only): per-stage latency at batch sizes 1 to 1024,
  beside ONNX Runtime on the CPU and PyTorch eager on the same GPU.
"""
from __future__ import annotations

import functools
import os
import pty
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soxr

from . import realtime
from .audio.io import read_audio
from .audio.sources import _RingSource, demo_path
from .dsp import frontend
from .contract import WINDOW_SHAPE
from .engines import Prediction
from .stream.analyzer import STAGES, StreamAnalyzer, input_per_frame
from .stream.loop import AnalysisLoop, LoopOptions
from .stream.offline import analyze_file
from .stream.windows import DEFAULT_HOP, hop_frames

GPU_BATCHES = (1, 8, 64, 256, 1024)
CARD_RATE, CARD_BLOCK_SECONDS = 48_000, 0.02     # a sound card's usual rate and block


@functools.cache
def demo_audio(rate: int = frontend.SAMPLE_RATE) -> np.ndarray:
    """The demo music at `rate` (default: the model's), decoded once for every benchmark."""
    audio = read_audio(demo_path())
    return audio if rate == frontend.SAMPLE_RATE else soxr.resample(audio, frontend.SAMPLE_RATE, rate)


def bench_analyze(engine, baseline_seconds: float = 20.0, passes: int = 3) -> dict:
    """Offline analysis of the demo music, times real time: the median of
    `passes` after one warm-up pass (the first opens the decoder and sizes
    ONNX Runtime's buffers), beside the obvious way, warmed up likewise."""
    path, audio = demo_path(), demo_audio()
    duration = len(audio) / frontend.SAMPLE_RATE
    analyze_file(path, engine)
    seconds = []
    for _ in range(passes):
        started = time.perf_counter()
        trajectory = analyze_file(path, engine)
        seconds.append(time.perf_counter() - started)
    ours = duration / float(np.median(seconds))
    result = {"audio_s": duration, "windows": len(trajectory.valence), "ours_x_realtime": ours, "passes": passes}
    _obvious_way(audio, 1.0)
    obvious, result["baseline_skipped"] = _obvious_way(audio, baseline_seconds)
    if obvious:
        result.update(obvious_x_realtime=obvious, speedup=ours / obvious)
    return result


def _obvious_way(audio: np.ndarray, seconds: float) -> tuple[float | None, str]:
    """Each window from scratch: librosa STFT of its audio, the same filterbank,
    PyTorch eager at batch 1; (times real time over `seconds` of audio, "")
    or (None, why it cannot run here)."""
    try:
        import librosa
    except ImportError:
        return None, "librosa is not installed (the [train] extra)"
    network, missing = trained_network()
    if network is None:
        return None, missing
    import torch
    torch.set_num_threads(1)
    window_samples = frontend.WINDOW_FRAMES * frontend.FRAME_HOP
    step = hop_frames(DEFAULT_HOP) * frontend.FRAME_HOP
    ends = range(window_samples, min(len(audio), window_samples + int(seconds * frontend.SAMPLE_RATE)), step)
    started = time.perf_counter()
    with torch.no_grad():
        for end in ends:
            segment = np.concatenate([np.zeros(frontend.N_FFT - frontend.FRAME_HOP, np.float32),
                                      audio[end - window_samples:end]])
            magnitude = np.abs(librosa.stft(segment, n_fft=frontend.N_FFT, hop_length=frontend.FRAME_HOP,
                                            center=False)) * frontend._MAGNITUDE_SCALE
            spec = 20 * np.log10(np.maximum(frontend._FILTERBANK @ magnitude, 1e-5))
            window = frontend.harmonic_stack(spec[:, -frontend.WINDOW_FRAMES:].astype(np.float32))
            network(torch.from_numpy(window[None]))
    return len(ends) * step / frontend.SAMPLE_RATE / (time.perf_counter() - started), ""


def trained_weights() -> Path:
    """The shipped PyTorch weights: engines/rt-mer.pt in a checkout (a
    wheel ships the ONNX model only)."""
    return Path(str(frontend.__file__)).resolve().parents[2] / "engines" / "rt-mer.pt"


def trained_network(weights: Path | None = None):
    """(the PyTorch network with the shipped weights, or `weights`, "") for
    the PyTorch baselines, or (None, why not): never random weights."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed (the [train] extra)"
    weights = weights or trained_weights()
    if not weights.is_file():
        return None, f"the PyTorch weights {weights} are not here (a wheel ships the ONNX model only)"
    from .training.network import trained
    try:
        network = trained(weights)
    except Exception as error:          # another model's weights, a damaged file
        return None, (f"the PyTorch weights {weights} do not load ({type(error).__name__}: another version of "
                      f"the network, or a damaged file)")
    return network, ""


class TorchEagerEngine:
    """The model in PyTorch eager mode on the GPU, copies in and out
    included as for TensorRT: the baseline a GPU engine must beat. Its
    `last_timings` has the TensorRT engine's stages (pin, copy_in,
    inference, copy_out: CUDA events; total: wall), so bench_gpu and the
    streams figures run on it as on TensorRT."""

    def __init__(self, network, max_batch: int = 1024) -> None:
        import torch

        from .training.network import ExportWrapper
        self._torch = torch
        self._network = ExportWrapper(network).cuda().eval()
        self.name = f"pytorch {torch.__version__} eager {torch.cuda.get_device_name()}"
        self.max_batch = max_batch
        self.last_timings: dict[str, float] = {}
        self._pinned = torch.empty((max_batch, *WINDOW_SHAPE), dtype=torch.float32).pin_memory()
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]

    def infer(self, windows: np.ndarray) -> Prediction:
        torch = self._torch
        if len(windows) > len(self._pinned):          # a larger batch than any before: the buffer grows once
            self._pinned = torch.empty((len(windows), *WINDOW_SHAPE), dtype=torch.float32).pin_memory()
        start, copied, inferred, done = self._events
        started = time.perf_counter()
        host = self._pinned[:len(windows)]
        host.numpy()[...] = windows
        pinned = time.perf_counter()
        with torch.inference_mode():
            start.record()
            device = host.cuda(non_blocking=True)
            copied.record()
            outputs = self._network(device)
            inferred.record()
            result = Prediction(*(output.cpu().numpy() for output in outputs))     # .cpu() waits for the GPU
            done.record()
        done.synchronize()
        self.last_timings = {"pin": (pinned - started) * 1000, "copy_in": start.elapsed_time(copied),
                             "inference": copied.elapsed_time(inferred), "copy_out": inferred.elapsed_time(done),
                             "total": (time.perf_counter() - started) * 1000}
        return result


def torch_eager_engine() -> tuple[TorchEagerEngine | None, str]:
    """(PyTorch eager on the GPU, "") or (None, why it cannot run here)."""
    network, missing = trained_network()
    if network is None:
        return None, missing
    import torch
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} has no CUDA device (a CPU build, or no GPU)"
    return TorchEagerEngine(network), ""


def demo_windows(count: int, hop: float = DEFAULT_HOP) -> np.ndarray:
    """`count` real windows of the demo music, a hop apart, starting over
    when the music has fewer: float32 [count, *WINDOW_SHAPE]."""
    analyzer = StreamAnalyzer("demo", frontend.SAMPLE_RATE, hop)
    due = analyzer.push(demo_audio())
    windows = np.empty((min(count, len(due)), *WINDOW_SHAPE), np.float32)
    for i in range(len(windows)):
        analyzer.window(due[i], windows[i])
    return windows[np.arange(count) % len(windows)]


class SyntheticSource(_RingSource):
    """The demo music as a live stream, written by a `SyntheticFeed` a
    block at a time, so a block's last sample is captured when it is
    written."""

    def __init__(self, name: str, capacity_seconds: float, rate: int = frontend.SAMPLE_RATE) -> None:
        super().__init__(name, rate, 1, f"synthetic {name}", buffer_seconds=capacity_seconds)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


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
        self.sources = [SyntheticSource(f"s{i}", (self.window + 4 * step) / rate, rate) for i in range(streams)]
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
            source._end()

    def _write(self, block: np.ndarray) -> None:
        self._caught_up.clear()
        self._expected += len(self.sources)
        for source in self.sources:
            source.ring.write(block, time.time())

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
    from .publish import Publisher
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


def bench_cpu(seconds: float = 20.0, warmup: float = 10.0) -> dict:
    """CPU use of `rt-mer demo` (dashboard on, in a pseudo-terminal) after
    warm-up, from the kernel's accounting of the process."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "rt_mer.cli", "demo", "--pub", "inproc://bench-cpu"],
                               stdin=terminal, stdout=terminal, stderr=terminal,
                               env={**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"})
    os.close(terminal)

    def cpu_seconds() -> float:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def drain(until: float) -> None:
        while time.monotonic() < until:
            try:
                os.read(controller, 65536)
            except OSError:
                return
            time.sleep(0.01)
    try:
        drain(time.monotonic() + warmup)
        start_cpu, start = cpu_seconds(), time.monotonic()
        drain(start + seconds)
        used = cpu_seconds() - start_cpu
        return {"cpu_percent_of_one_core": 100 * used / (time.monotonic() - start)}
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.close(controller)


def is_gpu_engine(engine) -> bool:
    from .engines.tensorrt import TensorRTEngine
    return isinstance(engine, TensorRTEngine)


def _p50(values) -> float:
    return float(np.percentile(values, 50))


def _time_infer(engine, windows: np.ndarray, repeats: int) -> float:
    """p50 ms of one inference call on `windows`, after a warm-up call."""
    engine.infer(windows)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.infer(windows)
        times.append((time.perf_counter() - started) * 1000)
    return _p50(times)


def bench_gpu(engine, cpu_engine, torch_engine, hop: float = DEFAULT_HOP, batches=GPU_BATCHES, hops: int = 100) -> dict:
    """Per batch size (a batch = one hop of that many streams): p50 ms of
    the CPU front-end and of the GPU engine's stages (`last_timings`),
    beside one inference call of ONNX Runtime on the CPU and of PyTorch
    eager on the GPU (copies included) over the same number of windows."""
    result = {}
    for batch in (b for b in batches if b <= engine.max_batch):
        timings = []

        def after_inference(message) -> None:     # the first stream's message follows each inference call
            if message.type == "emotion" and message.stream == "s0":
                timings.append(dict(engine.last_timings))
        loop = run_loop(engine, SyntheticFeed(batch, hop, hops, 0.005, lockstep=True), after_inference)
        frontend_ms = loop_stages(loop, ("frontend",))["frontend"]
        row = {"frontend": _p50(frontend_ms) * batch, **{k: _p50([t[k] for t in timings]) for k in timings[0]},
               "inference_p99": float(np.percentile([t["inference"] for t in timings], 99))}
        windows, repeats = demo_windows(batch, hop), max(3, min(30, 256 // batch))
        row["onnxruntime_cpu"] = _time_infer(cpu_engine, windows, repeats)
        if torch_engine:
            row["pytorch_eager_gpu"] = _time_infer(torch_engine, windows, repeats)
        result[batch] = row
    return result


def _stages(latency: dict) -> str:
    return ", ".join(f"{stage} p50 {v['p50']:.2f} / p99 {v['p99']:.2f}" for stage, v in latency.items())


def _streams_line(label: str, r: dict, hop: float) -> str:
    sustained = max((n for n, v in r.items() if v["real_time"]), default=0)
    return f"streams at hop {hop:g} s, {label}: " + ", ".join(
        f"{n}: {v['hop_ms_p99']:.0f} ms (front-end {v['frontend_share']:.0%})" for n, v in r.items()
    ) + f"; sustained in real time: {sustained}"


def run_benchmarks(engine, threads_engine, sections: list[str], hop: float, print_line, streams=None,
                   cpu_engine=None) -> None:
    """`threads_engine` is the engine on one CPU thread (a GPU engine is
    its own); `cpu_engine`, ONNX Runtime on every core, is the baseline
    printed beside a GPU engine's figures; `streams`, the stream counts."""
    gpu = is_gpu_engine(engine)
    where = "front-end on 1 core, inference on the GPU" if gpu else "1 core"
    counts = dict(counts=tuple(streams)) if streams else {}
    torch_engine, torch_skipped = torch_eager_engine() if gpu and {"streams", "gpu"} & set(sections) else (None, "")
    if "analyze" in sections:
        r = bench_analyze(threads_engine)
        line = (f"analyze ({where}): {r['ours_x_realtime']:.0f}x real time over {r['audio_s']:.0f} s of audio "
                f"(median of {r['passes']} passes after a warm-up)")
        if "speedup" in r:
            line += (f"; obvious way (librosa STFT per window + PyTorch eager): {r['obvious_x_realtime']:.1f}x; "
                     f"ratio {r['speedup']:.1f}")
        else:
            line += f"; obvious-way baseline skipped: {r['baseline_skipped']}"
        print_line(line)
    if "latency" in sections:
        latency, scheduling = bench_latency(threads_engine, hop)
        print_line(f"latency per hop, 1 stream, {where}, {scheduling} (ms): " + _stages(latency))
        host = bench_host_tail(latency["total"]["p50"], real_time=realtime.is_real_time(scheduling))
        print_line(f"the host's own tail, fixed NumPy work on the same schedule and scheduling, 1 core (ms): "
                   f"p50 {host['p50']:.2f} / p99 {host['p99']:.2f}")
        if realtime.is_real_time(scheduling):
            normal, _ = bench_latency(threads_engine, hop, real_time=False)
            print_line(f"latency per hop, 1 stream, {where}, at normal priority (--no-realtime) (ms): "
                       + _stages(normal))
        capture, scheduling = bench_capture_latency(threads_engine, hop)
        print_line(f"latency per hop as a {CARD_RATE // 1000} kHz sound card delivers it ({CARD_BLOCK_SECONDS * 1000:g} ms "
                   f"blocks), 1 stream, {where}, {scheduling} (ms): " + _stages(capture))
    if "streams" in sections:
        print_line(_streams_line(f"{engine.name}, {os.cpu_count()} cores", bench_streams(
            engine, hop, **counts), hop))
        if gpu:
            print_line(_streams_line(f"{cpu_engine.name}, {os.cpu_count()} cores", bench_streams(
                cpu_engine, hop, **counts), hop))
            print_line(_streams_line(torch_engine.name, bench_streams(torch_engine, hop, **counts), hop)
                       if torch_engine else f"streams, PyTorch eager on the GPU: skipped: {torch_skipped}")
    if "gpu" in sections:
        if not gpu:
            print_line(f"gpu: skipped: the engine is {engine.name} ({getattr(engine, 'reason', '')})")
        else:
            print_line(f"gpu stages per batch (p50 ms; a batch is one hop of that many streams; {engine.name}"
                       f" vs {cpu_engine.name} on {os.cpu_count()} cores"
                       + (f" and {torch_engine.name}" if torch_engine else "") + "):")
            for batch, v in bench_gpu(engine, cpu_engine, torch_engine, hop).items():
                print_line(f"  batch {batch:4}: front-end {v['frontend']:.2f}, pin {v['pin']:.2f}, copy in "
                           f"{v['copy_in']:.2f}, inference {v['inference']:.2f} (p99 {v['inference_p99']:.2f}), copy out "
                           f"{v['copy_out']:.2f}, "
                           f"total {v['total']:.2f} | onnxruntime CPU {v['onnxruntime_cpu']:.2f}"
                           + (f" | pytorch eager GPU {v['pytorch_eager_gpu']:.2f}" if torch_engine else ""))
            if not torch_engine:
                print_line(f"  pytorch eager on the GPU: skipped: {torch_skipped}")
    if "cpu" in sections:
        r = bench_cpu()
        print_line(f"rt-mer demo with dashboard: {r['cpu_percent_of_one_core']:.1f}% of one core")
