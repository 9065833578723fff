"""`rt-mer bench`'s figures, each a line beside its baseline."""
from __future__ import annotations

import os

from .. import realtime
from .analyze import bench_analyze
from .baselines import torch_eager_engine
from .cpu import bench_cpu
from .gpu import bench_gpu, is_gpu_engine
from .latency import (CARD_BLOCK_SECONDS, CARD_RATE, bench_capture_latency, bench_host_tail, bench_latency,
                      bench_streams)


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
        print_line(f"latency per hop as a {CARD_RATE // 1000} kHz sound card delivers it "
                   f"({CARD_BLOCK_SECONDS * 1000:g} ms blocks), 1 stream, {where}, {scheduling} (ms): "
                   + _stages(capture))
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
                           f"{v['copy_in']:.2f}, inference {v['inference']:.2f} (p99 {v['inference_p99']:.2f}), "
                           f"copy out {v['copy_out']:.2f}, "
                           f"total {v['total']:.2f} | onnxruntime CPU {v['onnxruntime_cpu']:.2f}"
                           + (f" | pytorch eager GPU {v['pytorch_eager_gpu']:.2f}" if torch_engine else ""))
            if not torch_engine:
                print_line(f"  pytorch eager on the GPU: skipped: {torch_skipped}")
    if "cpu" in sections:
        r = bench_cpu()
        print_line(f"rt-mer demo with dashboard: {r['cpu_percent_of_one_core']:.1f}% of one core")
