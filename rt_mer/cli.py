"""`rt-mer` sub-commands. User errors end in one line on stderr and a
non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import math
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from . import app
from .app import EXIT_SOME_FAILED, EXIT_USER_ERROR, UserError, close_engine, moods_from, open_engine_from
from .dsp.frontend import FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SECONDS
from .errors import RtMerError
from .publish import DEFAULT_ENDPOINT
from .stream.windows import DEFAULT_HOP
from .ui.dashboard import MAX_REFRESH_HZ, MIN_REFRESH_HZ
from .text import printable, say


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    say(f"error: {message}")
    raise SystemExit(code)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line like every other user error."""

    def error(self, message: str):
        fail(f"{message} (see {self.prog} --help)")


# Every number an option takes is checked here, where the command line and
# a --config file both pass, before anything computes with it: a value far
# out of range is one line, not an overflow, a hang or gigabytes allocated.

THREADS_PER_CORE = 4                # ONNX Runtime gains nothing from more threads than cores
MAX_BATCH = 4096                    # 4096 windows are 1.6 GB of input alone on the GPU
MAX_BLOCKSIZE = 65536               # frames: over a second a callback at any common rate
MAX_STREAMS = 4096                  # bench: each stream holds its own ring and front-end
MAX_SMOOTH_TIME = 3600.0            # seconds: longer would freeze the published values


def positive_float(text: str, most: float = math.inf, unit: str = "") -> float:
    """A positive, finite number, at most `most`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    if value > most:
        raise argparse.ArgumentTypeError(f"must be at most {most:g}{unit}, got {text}")
    return value


def hop_seconds(text: str) -> float:
    """--hop: from one spectrogram frame to one window (a longer hop would
    leave audio unanalysed); `rounded_hop` later makes it whole frames."""
    from .stream.windows import hop_frames
    value = positive_float(text)
    too_long = f"hop must be at most the {WINDOW_SECONDS:g} s window, got {text}"
    if value > 2 * WINDOW_SECONDS:      # refused before it is made frames: 1e308 s has no frame count
        raise argparse.ArgumentTypeError(too_long)
    try:
        frames = hop_frames(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if frames > WINDOW_FRAMES:
        raise argparse.ArgumentTypeError(too_long)
    return value


def smooth_time(text: str) -> float:
    return positive_float(text, MAX_SMOOTH_TIME, " s")


def refresh_rate(text: str) -> float:
    value = positive_float(text, MAX_REFRESH_HZ, " redraws a second")
    if value < MIN_REFRESH_HZ:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_REFRESH_HZ:g} redraws a second, got {text}")
    return value


def rounded_hop(args: argparse.Namespace) -> None:
    """The hop as whole frames, as the analysis will use it; says so on
    stderr where that changed what was asked for."""
    from .stream.windows import hop_frames
    if getattr(args, "hop", None) is None:
        return
    rounded = hop_frames(args.hop) / FRAMES_PER_SECOND
    if rounded != args.hop:
        say(f"hop {args.hop:g} s rounded to {rounded:g} s, a whole number of {1 / FRAMES_PER_SECOND:g} s frames")
    args.hop = rounded


def whole_number(text: str, least: int, most: int | None = None, why: str = "") -> int:
    """A whole number from `least` to `most` (`why` says why that limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {text}")
    if most is not None and value > most:
        raise argparse.ArgumentTypeError(f"must be at most {most}{why}, got {text}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def positive_ints(text: str, most: int | None = None) -> list[int]:
    """"1,64,1024" -> [1, 64, 1024], each at least 1 (and at most `most`)."""
    return [whole_number(part, 1, most) for part in text.split(",")]


def machine_name(text: str) -> str:
    try:
        return app.check_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def thread_count(text: str) -> int:
    cores = os.cpu_count() or 1
    return whole_number(text, 1, THREADS_PER_CORE * cores, f" ({THREADS_PER_CORE} x the {cores} cores here)")


def max_batch(text: str) -> int:
    return whole_number(text, 1, MAX_BATCH)


def sample_rate(text: str) -> int:
    from .audio.sources import MAX_RATE, MIN_RATE
    return whole_number(text, MIN_RATE, MAX_RATE, " Hz")


def blocksize(text: str) -> int:
    return whole_number(text, 0, MAX_BLOCKSIZE, " frames")


def stream_counts(text: str) -> list[int]:
    return positive_ints(text, MAX_STREAMS)


def tcp_port(text: str) -> int:
    return whole_number(text, 0, 65535, " (a TCP port)")


def add_moods_option(parser) -> None:
    parser.add_argument("--moods", type=Path, default=None, metavar="FILE.toml",
                        help="mood words of your own, word = [valence, arousal] (default: English words "
                             "placed by published affective norms)")


def add_engine_options(parser: argparse.ArgumentParser, engine: bool = True) -> None:
    from .engines import DEFAULT_MAX_BATCH, ENGINES, PRECISIONS
    if engine:
        parser.add_argument("--engine", default="auto", choices=ENGINES,
                            help="inference back-end; auto: TensorRT where a CUDA GPU and TensorRT are there, "
                                 "else ONNX Runtime on the CPU (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    if engine:
        parser.add_argument("--threads", type=thread_count, default=None,
                            help="CPU threads for inference (default: ONNX Runtime's choice, one a core)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="TensorRT precision; auto: fp16 where the GPU and TensorRT do it fast (default: auto)")
    parser.add_argument("--max-batch", type=max_batch, default=DEFAULT_MAX_BATCH,
                        help="TensorRT: the largest batch the plan and its GPU buffers are sized for; larger "
                             "batches run in chunks (default: %(default)s)")


# --------------------------------------------------------------- analyze

def analyze(args: argparse.Namespace) -> int:
    """Rows in input order, local or on a cluster; outputs refused if they
    name an input, written whole by rename, or journaled with --resume
    (rt_mer.stream.table says how)."""
    from .stream.offline import audio_files
    from .paths import refuse_overwriting
    from .stream.table import HEADER, SUMMARY_HEADER, OutputError, Table, resume

    if args.workers and not args.cluster:
        fail("--workers is for --cluster runs")
    files = audio_files(args.inputs)
    if not files:
        fail("no audio files found in " + ", ".join(map(str, args.inputs)))
    if args.summary is not None and str(args.summary) == "-" and str(args.out or "-") == "-":
        fail("--out and --summary both go to standard output; give one of them a file")
    try:            # before anything is opened for writing
        refuse_overwriting([("--out", args.out), ("--summary", args.summary)],
                           [("", path) for path in [*args.inputs, *files]] + app.option_inputs(args), OutputError)
        if args.resume:
            if args.out in (None, Path("-")):
                fail("--resume needs --out FILE: the CSV to go on with")
            done = resume(args.out, args.summary)
            if done:
                say(f"resuming: {len(done)} files already in {args.out}")
            files = [path for path in files if str(path) not in done]
    except OutputError as error:
        fail(str(error))
    moods = moods_from(args)            # a UserError: one line, from main
    if not files:
        say("nothing left to analyse")
        return 0
    failed, complete = 0, False
    with ExitStack() as stack:
        results = _cluster_results(stack, args, files, moods) if args.cluster else \
            _local_results(stack, args, files, moods)
        try:
            tables = [Table(args.out, HEADER, journal=args.resume)]
            tables.append(Table(args.summary, SUMMARY_HEADER, journal=args.resume) if args.summary else None)
        except OutputError as error:
            fail(str(error))
        stack.callback(lambda: [table.close(complete) for table in tables if table])
        out, songs = tables
        for result in results:
            if result.error:
                say(f"error: {result.error}")
                failed += 1
            out.write(result.rows)          # a truncated file's rows too: what decoded
            if songs and result.summary:
                songs.write([result.summary])
        complete = True
    if failed:
        say(f"{failed} of {len(files)} files failed")
    return EXIT_SOME_FAILED if failed else 0


def _local_results(stack: ExitStack, args: argparse.Namespace, files: list[Path], moods):
    """Each file's FileResult through one engine here, with a progress bar in audio seconds."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .stream.table import analyze_to_result
    engine = open_engine_from(args)     # a UserError: one line, from main
    stack.callback(close_engine, engine)
    say(f"engine {engine.name} ({engine.reason})")
    progress = stack.enter_context(Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(), console=_stderr_console(), transient=True, disable=args.quiet))
    task = progress.add_task("analysing", total=_total_seconds(files), speed="")
    for path in files:
        progress.update(task, description=f"{printable(path.name)[:30]:30}")
        yield analyze_to_result(path, engine, args.hop, moods, progress=lambda s: _advance(progress, task, s))


def _cluster_results(stack: ExitStack, args: argparse.Namespace, files: list[Path], moods):
    """Each file's FileResult from workers on a Ray cluster, in input order,
    with one progress bar for the whole cluster."""
    import time
    from contextlib import redirect_stdout

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    try:
        from .stream.cluster import Cluster, ClusterError
    except ImportError:
        fail("--cluster needs Ray: pip install 'rt-mer[cluster]'")
    say(f"starting workers on {args.cluster} ...")
    stack.enter_context(redirect_stdout(sys.stderr))    # Ray prints its news (a worker died) to stdout: our rows'
    try:
        cluster = Cluster(args.cluster, args.workers, args.engine, args.model, args.threads, args.precision,
                          args.max_batch, args.hop, moods)
    except ClusterError as error:
        fail(str(error))
    stack.callback(cluster.close)
    say(f"cluster: {cluster.describe()}")
    progress = stack.enter_context(Progress(
        TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TextColumn("files {task.fields[status]}"),
        TimeRemainingColumn(), console=_stderr_console(), transient=True, disable=args.quiet))
    task = progress.add_task("files", total=len(files), status="")
    started, audio = time.monotonic(), [0.0]

    def arrived(result) -> None:
        audio[0] += result.seconds
        speed = audio[0] / max(time.monotonic() - started, 1e-9)
        progress.update(task, advance=1, status=f"{audio[0] / 3600:,.2f} h audio, {speed:,.0f}x real time, "
                                                f"{len(cluster.up)}/{len(cluster.workers)} workers up")
    try:
        yield from cluster.results(files, arrived)
    except ClusterError as error:
        fail(str(error))


def _stderr_console():
    from rich.console import Console
    return Console(stderr=True)


def _total_seconds(files: list[Path]) -> float:
    import soundfile

    from .audio.io import quiet_native_stderr
    from .paths import irregular_kind
    total = 0.0
    for path in files:
        if irregular_kind(path):        # a FIFO's open waits for a writer; each is reported when analysed
            continue
        try:
            with quiet_native_stderr():
                total += soundfile.info(path).duration
        except Exception:       # unreadable files are reported when analysed
            pass
    return total


def _advance(progress, task, seconds: float) -> None:
    progress.advance(task, seconds)
    state = progress.tasks[task]
    if state.elapsed:
        progress.update(task, speed=f"{state.completed / state.elapsed:,.0f}x real time")



# ------------------------------------------------------------------ live

def parse_channels(text: str) -> int | list[int]:
    """"2" -> a count; "1,2" -> a selection of 1-based channel numbers."""
    from .audio.sources import MAX_CHANNELS
    values = positive_ints(text, MAX_CHANNELS)
    return values if "," in text else values[0]


def devices(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .audio import AudioError, list_devices
    try:
        found = list_devices()
    except AudioError as error:
        fail(str(error))
    if not found:
        say("no audio inputs found: check that a microphone or line-in is plugged in and not muted, "
            "that the sound server runs (PulseAudio, PipeWire) and that this user may use it (the audio "
            "group); `rt-mer demo` needs no input")
        return EXIT_SOME_FAILED
    table = Table("index", "name", "input channels", "default rate", "host API", title="Audio inputs")
    for device in found:
        table.add_row(str(device["index"]), device["name"], str(device["channels"]),
                      f"{device['default_rate']:.0f}", device["hostapi"])
    Console().print(table)
    return 0


def listen(args: argparse.Namespace) -> int:
    import threading

    from .publish import PublishError, listen as listen_to
    from .signals import StopOnSignal, silence
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    try:
        listen_to(args.endpoint, topics=args.topic or ("emotion", "status"), streams=args.stream, count=args.count,
                  timeout_s=args.timeout, stop=stop, prefix=args.stream_prefix)
    except PublishError as error:
        fail(str(error))
    except BrokenPipeError:                 # e.g. | head: the reader has what it wanted, which is fine
        silence(sys.stdout)
    return stopped.exit_status


def dash(args: argparse.Namespace) -> int:
    import threading

    from .publish import PublishError, Subscriber
    from .signals import StopOnSignal, lost_output_signal, output_gone
    from .ui import dash as remote_dashboard
    try:
        subscriber = Subscriber(args.endpoint, prefix=args.stream_prefix)
    except PublishError as error:
        fail(str(error))
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    say(f"dashboard of {args.endpoint}; Ctrl-C stops it")
    try:
        remote_dashboard(subscriber, stop, args.refresh, title=args.endpoint)
    except OSError as error:                # the terminal went away, maybe before its hang-up signal came
        if not output_gone(error):
            raise
        return stopped.exit_status or 128 + lost_output_signal(error)
    return stopped.exit_status


def osc(args: argparse.Namespace) -> int:
    from .publish import PublishError
    from .publish.osc import serve
    try:
        return serve(args.target, getattr(args, "from"), bundle=not args.no_bundle, normalize=args.normalize,
                     prefix=args.stream_prefix)
    except PublishError as error:
        fail(str(error))


def web(args: argparse.Namespace) -> int:
    try:
        from .ui.web import WebError, serve
    except ImportError as error:
        fail(f"rt-mer web needs the [web] extra ({error.name} is missing): pip install 'rt-mer[web]'")
    from .publish import PublishError
    try:
        return serve(getattr(args, "from"), host=args.host, port=args.port, token=args.token,
                     no_token=args.no_token, max_streams=args.max_streams)
    except (WebError, PublishError) as error:
        fail(str(error))


def plot(args: argparse.Namespace) -> int:
    from .ui.plot import PlotError, plot as draw
    if args.output is None:         # not argparse's required=: a --config file may give it
        fail("plot needs -o/--output FILE.png, .svg or .pdf (see rt-mer plot --help)")
    try:
        written = draw(args.inputs, args.output)
    except PlotError as error:
        fail(str(error))
    for path, pages, titles in written:
        on_pages = f" on {pages} pages" if pages > 1 else ""
        print(printable(f"{path}: {len(titles)} panel(s){on_pages}: {', '.join(titles)}"))
    return 0


BENCH_SECTIONS = ["analyze", "latency", "streams", "gpu", "cpu"]
ASKED_ONLY = ["hub", "cluster"]     # run only when named: they start processes of their own


def bench_cluster(args: argparse.Namespace) -> None:
    try:
        from .stream.cluster_bench import bench_cluster as run
    except ImportError:
        fail("bench cluster needs Ray: pip install 'rt-mer[cluster]'")
    run(lambda line: print(line, flush=True), threads=args.threads or 1, hop=args.hop)


def bench(args: argparse.Namespace) -> int:
    from .bench import is_gpu_engine, run_benchmarks
    from .engines import EngineError, open_engine
    unknown = set(args.sections) - set(BENCH_SECTIONS + ASKED_ONLY)
    if unknown:
        fail(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(BENCH_SECTIONS + ASKED_ONLY)}")
    asked = [section for section in args.sections if section in ASKED_ONLY]
    if "hub" in asked:
        bench_hub()
    if "cluster" in asked:
        bench_cluster(args)
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
        close_engine(engine)
    return 0


def bench_hub() -> None:
    from .bench_hub import bench_hub as measure, hub_lines
    print("hub: 3 publisher processes -> one subscriber process on loopback TCP, real emotion payloads",
          flush=True)
    for line in hub_lines(measure()):
        print(line, flush=True)


def build_engine(args: argparse.Namespace) -> int:
    from .engines import EngineError, default_model
    from .engines.plans import Portability
    from .engines.tensorrt import TensorRTEngine
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
    close_engine(engine)
    return 0


def hub(args: argparse.Namespace) -> int:
    import threading

    from .publish import PublishError
    from .publish.hub import serve
    from .signals import StopOnSignal
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    try:
        serve(getattr(args, "in"), args.out, args.every, args.quiet, stop, sys.stderr)
    except PublishError as error:
        fail(str(error))
    return stopped.exit_status


def add_hub_parser(commands) -> None:
    from .publish.hub import DEFAULT_IN, DEFAULT_OUT
    parser = commands.add_parser(
        "hub", help="one endpoint for the streams of many machines (a ZeroMQ XSUB/XPUB proxy)",
        description="Runs with --hub connect their publishers to --in; listen, dash, osc, web and your own "
                    "subscribers connect to --out as to a single run, and filter by topic prefix "
                    "(e.g. --stream-prefix shop-17/). Prints messages/s, streams, publishers and subscribers "
                    "every --every seconds. Loopback by default: bind wider only on a private network.")
    parser.add_argument("--in", default=DEFAULT_IN, metavar="ENDPOINT",
                        help="where publishers connect (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="ENDPOINT",
                        help="where subscribers connect (default: %(default)s)")
    parser.add_argument("--every", type=positive_float, default=5.0, help="seconds between stats lines")
    parser.add_argument("--quiet", action="store_true", help="no stats lines")
    parser.set_defaults(handler=hub)


def add_prefix_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream-prefix", default="", metavar="PREFIX",
                        help="only streams whose name starts with PREFIX, e.g. shop-17/ for one machine "
                             "through a hub")


# ------------------------------------------------------------------ main

def add_live_options(parser: argparse.ArgumentParser, inputs: bool = True) -> None:
    if inputs:
        group = parser.add_argument_group("input")
        group.add_argument("--device", action="append",
                           help="input device, by index or name substring (repeat for several streams) (default: the "
                                "system's default input, else the built-in demo music)")
        group.add_argument("--channels", type=parse_channels, default=None,
                           help="channel count, or a selection like 1,2 (downmixed to mono) (default: the device's "
                                "first two)")
        group.add_argument("--rate", type=sample_rate, default=None, help="sample rate, Hz (default: the device's)")
        group.add_argument("--blocksize", type=blocksize, default=0,
                           help="frames per audio callback (default: 0, PortAudio's choice)")
        group.add_argument("--file", type=Path, action="append", help="a file, paced at real time (repeatable)")
        group.add_argument("--stdin", action="store_true", help="raw PCM on standard input")
        group.add_argument("--format", default="f32le", choices=["f32le", "s16le", "s24le"],
                           help="--stdin sample format (default: %(default)s)")
    group = parser.add_argument_group("analysis")
    group.add_argument("--hop", type=hop_seconds, default=DEFAULT_HOP,
                       help=f"seconds between windows, a multiple of {1 / FRAMES_PER_SECOND:g} "
                            f"(default: %(default)s)")
    group.add_argument("--smooth", default="ema", choices=["off", "ema", "one-euro"],
                       help="smoothing of published valence/arousal (raw values are published too) "
                            "(default: %(default)s)")
    group.add_argument("--smooth-time", type=smooth_time, default=2.0,
                       help="smoothing time constant, s (default: %(default)s)")
    group.add_argument("--explain", action="store_true",
                       help="publish what drives each prediction (drivers, harmony map) and show it on the dashboard")
    group.add_argument("--no-realtime", action="store_true",
                       help="keep the analysis and capture threads at normal priority (default: they ask for "
                            "real-time scheduling, below the audio servers', where the system allows it)")
    add_moods_option(group)
    add_engine_options(parser)
    group = parser.add_argument_group("output")
    group.add_argument("--pub", default=DEFAULT_ENDPOINT, help="ZeroMQ PUB endpoint (default: %(default)s)")
    group.add_argument("--hub", default=None, metavar="ENDPOINT",
                       help="connect to an `rt-mer hub`'s input (e.g. tcp://HOST:5557) instead of binding --pub")
    group.add_argument("--name", type=machine_name, default=None, metavar="PREFIX",
                       help="prefix of this run's stream names, PREFIX/input (default with --hub: the host name)")
    group.add_argument("--codec", default="json", choices=["json", "msgpack"],
                       help="payload encoding (default: %(default)s)")
    group.add_argument("--no-dash", action="store_true", help="no dashboard (headless)")
    group.add_argument("--refresh", type=refresh_rate, default=10.0,
                       help=f"dashboard redraws per second, {MIN_REFRESH_HZ:g} to {MAX_REFRESH_HZ:g} "
                            f"(default: %(default)s)")
    group.add_argument("--record", type=Path, default=None, help="also write every message to this JSONL file")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = Parser(prog="rt-mer", description="Real-time music emotion analyser.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML file of option defaults: the long option names as keys, e.g. hop = 0.25; "
                             "keys of other sub-commands are ignored")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze_parser = commands.add_parser(
        "analyze", help="analyse audio files offline",
        description=f"Valence and arousal of audio files, one row per analysis window: windows of "
                    f"{WINDOW_SECONDS:g} s (the model's), every --hop seconds. Reads any format libsndfile "
                    f"reads (WAV, FLAC, OGG, MP3, ...), any rate and channel count (downmixed, resampled to "
                    f"{SAMPLE_RATE} Hz). Values are per window, unsmoothed.")
    analyze_parser.add_argument("inputs", nargs="+", type=Path, help="audio files or directories")
    analyze_parser.add_argument("--out", type=Path, default=None,
                                help="per-window CSV: file,t_start,t_end,valence,arousal,quadrant,mood "
                                     "(default: stdout)")
    analyze_parser.add_argument("--summary", type=Path, default=None,
                                help="per-file CSV: file,valence,arousal,quadrant,mood")
    analyze_parser.add_argument("--hop", type=hop_seconds, default=DEFAULT_HOP,
                                help=f"seconds between windows, a multiple of {1 / FRAMES_PER_SECOND:g} "
                                     f"(default: %(default)s)")
    analyze_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    analyze_parser.add_argument("--resume", action="store_true",
                                help="go on with a stopped run: skip the files already in --out and append "
                                     "(each file's rows written whole and flushed as it is done)")
    group = analyze_parser.add_argument_group("cluster (pip install 'rt-mer[cluster]')")
    group.add_argument("--cluster", default=None, metavar="ADDRESS",
                       help="run on a Ray cluster: auto, HOST:PORT or ray://HOST:10001 (what ray.init takes), or "
                            "local[:N] to start Ray here with N workers; the files must be readable by the "
                            "workers at the same paths")
    group.add_argument("--workers", type=positive_int, default=None,
                       help="--cluster: how many workers (default: local:N's N, else one per GPU for TensorRT, "
                            "else the cluster's CPUs / --threads); each opens one engine, on --threads threads "
                            "(default 1 on a cluster)")
    add_moods_option(analyze_parser)
    add_engine_options(analyze_parser)
    analyze_parser.set_defaults(handler=analyze)

    run_parser = commands.add_parser(
        "run", help="analyse live input, publish and show it",
        description=f"Live analysis: a {WINDOW_SECONDS:g} s window (the model's; algorithmic latency "
                    f"{WINDOW_SECONDS / 2:g} s) every --hop seconds, published over ZeroMQ and drawn on a "
                    f"dashboard. Input: the default microphone unless --device, --file or --stdin (`rt-mer demo` "
                    f"plays the built-in music).")
    add_live_options(run_parser)
    run_parser.set_defaults(handler=app.run, demo=False)

    demo_parser = commands.add_parser("demo", help="run on built-in music: no microphone needed",
                                      description="`rt-mer run` on the built-in demo music, looping.")
    add_live_options(demo_parser, inputs=False)
    demo_parser.set_defaults(handler=app.run, demo=True, device=None, file=None, stdin=False, rate=None,
                             channels=None, blocksize=0, format="f32le")

    commands.add_parser("devices", help="list audio inputs").set_defaults(handler=devices)
    add_hub_parser(commands)

    listen_parser = commands.add_parser("listen", help="print published messages as JSON lines")
    listen_parser.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT,
                               help="the rt-mer publisher to listen to (default: %(default)s)")
    listen_parser.add_argument("--topic", action="append", choices=["emotion", "status"],
                               help="message kinds (default: both)")
    listen_parser.add_argument("--stream", action="append", help="only these streams")
    add_prefix_option(listen_parser)
    listen_parser.add_argument("--count", type=positive_int, default=None,
                               help="stop after N messages (default: no limit)")
    listen_parser.add_argument("--timeout", type=positive_float, default=None,
                               help="stop after this many seconds without a message (default: wait for ever)")
    listen_parser.set_defaults(handler=listen)

    dash_parser = commands.add_parser("dash", help="the dashboard, as a remote subscriber")
    dash_parser.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT,
                             help="the rt-mer publisher to show (default: %(default)s)")
    add_prefix_option(dash_parser)
    dash_parser.add_argument("--refresh", type=refresh_rate, default=10.0,
                             help=f"redraws per second, {MIN_REFRESH_HZ:g} to {MAX_REFRESH_HZ:g} "
                                  f"(default: %(default)s)")
    dash_parser.set_defaults(handler=dash)

    osc_parser = commands.add_parser(
        "osc", help="forward every emotion message as OSC over UDP (lighting desks, VJ software)",
        description="Subscribes like `rt-mer listen` and sends each emotion message as OSC to HOST:PORT: "
                    "/rt-mer/<stream>/valence, /arousal (float -1..1), /quadrant (int 1..4), /mood (string), "
                    "/level (float dBFS), one bundle per message (--normalize: floats 0..1). Runs until Ctrl-C.")
    osc_parser.add_argument("target", metavar="HOST:PORT", help="the OSC receiver, e.g. 127.0.0.1:9000")
    osc_parser.add_argument("--from", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                            help="the rt-mer publisher (default: %(default)s)")
    add_prefix_option(osc_parser)
    osc_parser.add_argument("--no-bundle", action="store_true",
                            help="one datagram per address instead of one bundle per message")
    osc_parser.add_argument("--normalize", action="store_true",
                            help="valence, arousal as 0..1 ((x + 1) / 2), level as 0..1 over -60..0 dBFS: "
                                 "for programs that read a float as a fader (QLC+, Resolume)")
    osc_parser.set_defaults(handler=osc)

    web_parser = commands.add_parser(
        "web", help="a live wall of every stream in the browser, a page per stream, an OBS overlay",
        description="Subscribes like `rt-mer listen` and serves http://HOST:PORT/: the wall of every stream, "
                    "/stream/NAME (trajectory, drivers, CSV) and /overlay/NAME (transparent, for an OBS browser "
                    "source). Loopback only unless --host says otherwise, which needs --token or --no-token. "
                    "Needs the [web] extra: pip install 'rt-mer[web]'. Runs until Ctrl-C.")
    web_parser.add_argument("--from", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                            help="the rt-mer publisher or hub (default: %(default)s)")
    web_parser.add_argument("--host", default="127.0.0.1",
                            help="address to serve on (default: %(default)s, this machine only)")
    web_parser.add_argument("--port", type=tcp_port, default=8080,
                            help="TCP port (default: %(default)s; 0 picks a free one)")
    web_parser.add_argument("--token", default=None,
                            help="pages then need ?token=T in the URL (or an X-RT-Mer-Token header); required "
                                 "with a --host other than loopback unless --no-token")
    web_parser.add_argument("--no-token", action="store_true",
                            help="serve a non-loopback --host without a token: anyone who reaches it can watch")
    web_parser.add_argument("--max-streams", type=positive_int, default=256,
                            help="streams kept; past it the least recently heard is dropped (default: %(default)s)")
    web_parser.set_defaults(handler=web)

    plot_parser = commands.add_parser(
        "plot", help="draw valence and arousal over time and the path through the plane",
        description="Draws the trajectory of an `rt-mer analyze --out` CSV or a `--record` JSONL recording: "
                    "one panel per analysed file or live stream, several inputs into one image (or one PDF "
                    "page per four panels). Needs matplotlib: pip install 'rt-mer[plot]'.")
    plot_parser.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help="CSV or JSONL files")
    plot_parser.add_argument("-o", "--output", type=Path, default=None, help="the image: .png, .svg or .pdf")
    plot_parser.set_defaults(handler=plot)

    bench_parser = commands.add_parser("bench", help="speed figures against in-process baselines")
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

    build_engine_parser = commands.add_parser(
        "build-engine", help="build the TensorRT plan for this GPU (or find it in the cache)",
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
    return parser


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None):
    """Re-parse with the TOML file's values as defaults: the command line
    wins. Keys of other sub-commands are ignored; keys of none are an error."""
    values = read_config(args.config)
    commands = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices
    command = commands[args.command]
    known = {action.dest for sub in commands.values() for action in config_actions(sub)}
    unknown = sorted(key for key in values if key not in known)
    if unknown:
        fail(f"{args.config}: unknown option(s): {', '.join(unknown)}")
    defaults, repeated = {}, {}
    for action in config_actions(command):
        if action.dest in values:
            value = config_value(command, action, values[action.dest], args.config)
            (repeated if isinstance(action, argparse._AppendAction) else defaults)[action.dest] = value
    command.set_defaults(**defaults)
    args = parser.parse_args(argv)
    for dest, value in repeated.items():       # a default list would be extended; the command line replaces it
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    return args


def read_config(path: Path) -> dict:
    """The TOML file's keys as option destinations (hop, smooth_time, ...)."""
    import tomllib

    from .paths import require_regular_file
    require_regular_file(path, UserError)           # a FIFO's read would wait for a writer
    try:
        values = tomllib.loads(path.read_text())
    except OSError as error:
        fail(f"{path}: cannot read ({error.strerror})")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        fail(f"{path}: not valid TOML ({error})")
    return {key.replace("-", "_"): value for key, value in values.items()}


def config_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options a config file may set: every long option but --help."""
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def config_value(parser: argparse.ArgumentParser, action: argparse.Action, value, path: Path):
    """A TOML value through its option's own type and choices, as if typed
    on the command line; a repeatable option takes a string or a list."""
    name = action.option_strings[-1]
    if action.nargs == 0:                       # a flag
        if not isinstance(value, bool):
            fail(f"{path}: {name} must be true or false, got {value!r}")
        return value
    repeatable = isinstance(action, argparse._AppendAction)
    items = value if repeatable and isinstance(value, list) else [value]
    converted = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            wanted = "a value or a list of values" if repeatable else "one value"
            fail(f"{path}: {name} takes {wanted}, got {item!r}")
        try:
            converted.append(parser._get_values(action, [str(item)]))
        except argparse.ArgumentError as error:
            fail(f"{path}: {name}: {error.message}")
    return converted if repeatable else converted[0]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.config:
            args = apply_config(parser, args, argv)
        rounded_hop(args)
        status = args.handler(args)
        sys.stdout.flush()              # here, where a reader that left is caught, rather than at the exit
        return status
    except RtMerError as error:         # UserError and every other error of rt-mer's own: one line
        fail(str(error))
    except KeyboardInterrupt:
        return 130
    except OSError as error:                # the terminal closed, or a pipe's reader left: end quietly
        from .signals import lost_output_signal, output_gone, silence
        if not output_gone(error):
            raise
        silence(sys.stdout, sys.stderr)
        return 128 + lost_output_signal(error)


if __name__ == "__main__":
    sys.exit(main())
