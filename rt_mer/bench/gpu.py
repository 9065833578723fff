"""Per-stage latency of a GPU engine per batch size, beside ONNX Runtime
on the CPU and PyTorch eager on the same GPU."""
from __future__ import annotations

import time

import numpy as np

from ..stream.windows import DEFAULT_HOP
from .feed import SyntheticFeed, demo_windows, loop_stages, run_loop

GPU_BATCHES = (1, 8, 64, 256, 1024)


def is_gpu_engine(engine) -> bool:
    from ..inference.tensorrt import TensorRTEngine
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
