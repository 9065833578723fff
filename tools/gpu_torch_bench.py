"""The floor a GPU engine must beat, with nothing installed: the model in
PyTorch eager mode on this machine's own torch and GPU, measured by
rt_mer.bench as the TensorRT engine is (step 1 of tools/gpu_check.sh).

- per-stage latency per batch (1, 8, 64, 256, 1024: a batch is one hop of
  that many streams, the CPU front-end included), ONNX Runtime on every
  CPU core beside it;
- latency per hop of one stream through the real loop;
- the streams sustained in real time at a 0.5 s hop.

    PYTHONPATH=$PWD python3 tools/gpu_torch_bench.py [--streams 1,64,256,1024,2048] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from rt_mer.bench.baselines import torch_eager_engine
from rt_mer.bench.gpu import bench_gpu
from rt_mer.bench.latency import bench_latency, bench_streams
from rt_mer.inference import open_engine
from rt_mer.stream.windows import DEFAULT_HOP


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1,64,256,1024,2048")
    parser.add_argument("--json", default=None, help="write every figure here too")
    args = parser.parse_args()
    engine, why = torch_eager_engine()
    if engine is None:
        print(f"gpu_torch_bench: {why}", file=sys.stderr)
        return 2
    cpu = open_engine("onnxruntime")
    figures = {"engine": engine.name, "cpu_engine": cpu.name, "cpu_cores": os.cpu_count(), "hop": DEFAULT_HOP}

    def save() -> None:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=1)

    print(f"engine: {engine.name}; beside it {cpu.name} on {os.cpu_count()} cores", flush=True)
    figures["batches"] = bench_gpu(engine, cpu, None, DEFAULT_HOP)
    save()
    print("per batch (p50 ms; a batch is one hop of that many streams):")
    for batch, v in figures["batches"].items():
        print(f"  batch {batch:4}: front-end {v['frontend']:.2f}, pin {v['pin']:.2f}, copy in {v['copy_in']:.2f}, "
              f"inference {v['inference']:.2f} (p99 {v['inference_p99']:.2f}), copy out {v['copy_out']:.2f}, "
              f"total {v['total']:.2f} | onnxruntime CPU {v['onnxruntime_cpu']:.2f}", flush=True)
    latency, scheduling = bench_latency(engine, DEFAULT_HOP)
    figures["latency_1_stream"], figures["scheduling"] = latency, scheduling
    save()
    print(f"latency per hop, 1 stream, {scheduling} (ms): " + ", ".join(
        f"{stage} p50 {v['p50']:.2f} / p99 {v['p99']:.2f}" for stage, v in latency.items()), flush=True)
    counts = tuple(int(n) for n in args.streams.split(","))
    figures["streams"] = bench_streams(engine, DEFAULT_HOP, counts)
    save()
    sustained = max((n for n, v in figures["streams"].items() if v["real_time"]), default=0)
    print(f"streams at hop {DEFAULT_HOP:g} s: " + ", ".join(
        f"{n}: p99 {v['hop_ms_p99']:.0f} ms (front-end {v['frontend_share']:.0%}, late {v['late']})"
        for n, v in figures["streams"].items()) + f"; sustained in real time: {sustained}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
