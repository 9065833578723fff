"""`rt-mer bench`, speed figures against in-process baselines, and
`rt-mer build-engine`, the TensorRT plan for this GPU."""
from __future__ import annotations

import argparse

from ..dsp.frontend import FRAMES_PER_SECOND
from ..stream.windows import DEFAULT_HOP
from .options import (Parser, add_engine_options, fail, hop_seconds, open_engine_from,
                      stream_counts)

BENCH_SECTIONS = ["analyze", "latency", "streams", "gpu", "cpu"]
ASKED_ONLY = ["hub", "cluster"]     # run only when named: they start processes of their own


def add_parsers(parser: Parser, commands) -> None:
    bench_parser = parser.command(commands, "bench", help="speed figures against in-process baselines")
    bench_parser.add_argument("sections", nargs="*", metavar="SECTION",
                              help=f"which of {', '.join(BENCH_SECTIONS)} (default: all); named only: hub (the "
                                   f"hub's messages/s against direct PUB->SUB), cluster (local analyze against a "
                                   f"local Ray cluster of 1 and 2 workers; needs [cluster])")
    bench_parser.add_argument("--hop", type=hop_seconds, default=DEFAULT_HOP,
                              help=f"seconds between windows, a multiple of {1 / FRAMES_PER_SECOND:g} "
                                   f"(default: %(default)s)")
    bench_parser.add_argument("--streams", type=stream_counts, default=None,
                              help="stream counts for the streams benchmark, e.g. 1,64,1024 "
                                   "(default: 1,4,8,...,128, stopping at the first that does not keep up)")
    add_engine_options(bench_parser)
    bench_parser.set_defaults(handler=bench)

    build_engine_parser = parser.command(
        commands, "build-engine", help="build the TensorRT plan for this GPU (or find it in the cache)",
        description="Builds the shipped ONNX model (or --model) into a TensorRT plan for this GPU, TensorRT "
                    "version, precision and batch profile, and caches it (under $RT_MER_CACHE/plans, else "
                    "$XDG_CACHE_HOME/rt-mer/plans, else ~/.cache/rt-mer/plans); prints the plan's path and "
                    "whether it was built or found. `run`, `analyze` and `bench` with --engine tensorrt or "
                    "auto use the same cache. Needs the [gpu] extra and an NVIDIA GPU.")
    add_engine_options(build_engine_parser, engine=False)
    build_engine_parser.add_argument("--force", action="store_true", help="build again even if a sound plan is cached")
    build_engine_parser.add_argument("--version-compatible", action="store_true",
                                     help="a plan that later TensorRT runtimes run too, the small lean and dispatch "
                                          "runtimes included (forced where only such a runtime is installed)")
    build_engine_parser.add_argument("--exclude-lean-runtime", action="store_true",
                                     help="with --version-compatible: leave TensorRT's lean runtime out of the plan "
                                          "(a lean runtime must then run it)")
    build_engine_parser.add_argument("--ampere-plus", action="store_true",
                                     help="a plan for every GPU of compute capability 8.0 or newer, not this one only")
    build_engine_parser.set_defaults(handler=build_engine)


def cluster_bench(args: argparse.Namespace) -> None:
    try:
        from ..bench.cluster import bench_cluster
    except ImportError:
        fail("bench cluster needs Ray: pip install 'rt-mer[cluster]'")
    bench_cluster(lambda line: print(line, flush=True), threads=args.threads or 1, hop=args.hop)


def bench(args: argparse.Namespace) -> int:
    from ..bench import is_gpu_engine, run_benchmarks
    from ..inference import EngineError, open_engine
    unknown = set(args.sections) - set(BENCH_SECTIONS + ASKED_ONLY)
    if unknown:
        fail(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(BENCH_SECTIONS + ASKED_ONLY)}")
    asked = [section for section in args.sections if section in ASKED_ONLY]
    if "hub" in asked:
        hub_bench()
    if "cluster" in asked:
        cluster_bench(args)
    args.sections = [section for section in args.sections if section not in ASKED_ONLY]
    if asked and not args.sections:     # neither needs this machine's engine
        return 0
    engine = open_engine_from(args)     # a UserError: one line, from main
    try:
        if is_gpu_engine(engine):       # threads mean nothing to it; ONNX Runtime on the CPU is the baseline
            one_core, cpu = engine, open_engine("onnxruntime", args.model, args.threads)
        else:
            one_core, cpu = open_engine("onnxruntime", args.model, threads=1), None
    except EngineError as error:
        fail(str(error))
    print(f"engine: {engine.name} ({engine.reason})")
    try:
        run_benchmarks(engine, one_core, args.sections or BENCH_SECTIONS, args.hop,
                       lambda line: print(line, flush=True), streams=args.streams, cpu_engine=cpu)
    finally:
        engine.close()
    return 0


def hub_bench() -> None:
    from ..bench.hub import bench_hub, hub_lines
    print("hub: 3 publisher processes -> one subscriber process on loopback TCP, real emotion payloads",
          flush=True)
    for line in hub_lines(bench_hub()):
        print(line, flush=True)


def build_engine(args: argparse.Namespace) -> int:
    from ..inference import EngineError, default_model
    from ..inference.plans import Portability
    from ..inference.tensorrt import TensorRTEngine
    model = args.model or default_model()
    if not model.is_file():
        fail(f"{model}: no such model file")
    portability = Portability(args.version_compatible, args.exclude_lean_runtime, args.ampere_plus)
    try:
        engine = TensorRTEngine(model, args.precision, args.max_batch, force_build=args.force, portability=portability)
    except EngineError as error:
        fail(str(error))
    how = "built" if engine.built else "found in the cache"
    print(f"{engine.plan_path}: {how}; {engine.key.describe()}; {engine.route}")
    engine.close()
    return 0
