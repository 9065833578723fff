"""`rt-mer` sub-commands. User errors end in one line on stderr and a
non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import csv
import math
import sys
from contextlib import ExitStack
from pathlib import Path

from . import app
from .app import EXIT_SOME_FAILED, EXIT_USER_ERROR, UserError, close_engine, moods_from, open_engine_from
from .dsp.frontend import FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SECONDS
from .publish import DEFAULT_ENDPOINT
from .stream.windows import DEFAULT_HOP


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    print(f"rt-mer: error: {message}", file=sys.stderr)
    raise SystemExit(code)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line like every other user error."""

    def error(self, message: str):
        fail(f"{message} (see {self.prog} --help)")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def hop_seconds(text: str) -> float:
    """--hop: from one spectrogram frame to one window (a longer hop would
    leave audio unanalysed); `rounded_hop` later makes it whole frames."""
    from .stream.windows import hop_frames
    value = positive_float(text)
    try:
        frames = hop_frames(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if frames > WINDOW_FRAMES:
        raise argparse.ArgumentTypeError(f"hop must be at most the {WINDOW_SECONDS:g} s window, got {text}")
    return value


def rounded_hop(args: argparse.Namespace) -> None:
    """The hop as whole frames, as the analysis will use it; says so on
    stderr where that changed what was asked for."""
    from .stream.windows import hop_frames
    if getattr(args, "hop", None) is None:
        return
    rounded = hop_frames(args.hop) / FRAMES_PER_SECOND
    if rounded != args.hop:
        print(f"rt-mer: hop {args.hop:g} s rounded to {rounded:g} s, a whole number of "
              f"{1 / FRAMES_PER_SECOND:g} s frames", file=sys.stderr)
    args.hop = rounded


def whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {text}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return whole_number(text, 0)


def tcp_port(text: str) -> int:
    port = whole_number(text, 0)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is at most 65535, got {text}")
    return port


def positive_ints(text: str) -> list[int]:
    """"1,64,1024" -> [1, 64, 1024], each at least 1."""
    return [positive_int(part) for part in text.split(",")]


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
        parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads for inference (default: all)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="TensorRT precision; auto: fp16 where the GPU and TensorRT do it fast (default: auto)")
    parser.add_argument("--max-batch", type=positive_int, default=DEFAULT_MAX_BATCH,
                        help="TensorRT: the largest batch the plan and its GPU buffers are sized for; larger "
                             "batches run in chunks (default: %(default)s)")


# --------------------------------------------------------------- analyze

def analyze(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .audio.io import AudioError
    from .engines import EngineError
    from .stream.offline import analyze_file, audio_files

    files = audio_files(args.inputs)
    if not files:
        fail("no audio files found in " + ", ".join(map(str, args.inputs)))
    moods = moods_from(args)            # a UserError: one line, from main
    engine = open_engine_from(args)
    print(f"rt-mer: engine {engine.name} ({engine.reason})", file=sys.stderr)
    failed = 0
    with ExitStack() as stack:
        stack.callback(close_engine, engine)
        out = _open_csv(stack, args.out, ["file", "t_start", "t_end", "valence", "arousal", "quadrant", "mood"])
        songs = _open_csv(stack, args.summary, ["file", "valence", "arousal", "quadrant", "mood"]) \
            if args.summary else None
        progress = stack.enter_context(Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(), console=_stderr_console(), transient=True, disable=args.quiet))
        task = progress.add_task("analysing", total=_total_seconds(files), speed="")
        for path in files:
            progress.update(task, description=f"{path.name[:30]:30}")
            try:
                trajectory = analyze_file(path, engine, args.hop, progress=lambda s: _advance(progress, task, s),
                                          moods=moods)
            except (AudioError, EngineError) as error:
                print(f"rt-mer: error: {error}", file=sys.stderr)
                failed += 1
                if getattr(error, "trajectory", None) is not None:     # truncated: what decoded is written
                    _write_windows(out, path, error.trajectory)
                continue
            _write_windows(out, path, trajectory)
            if songs:
                valence, arousal, quadrant, mood = trajectory.summary()
                songs.writerow([str(path), f"{valence:.4f}", f"{arousal:.4f}", quadrant, mood])
    if failed:
        print(f"rt-mer: {failed} of {len(files)} files failed", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0


def _write_windows(out, path: Path, trajectory) -> None:
    for row in zip(trajectory.t_start, trajectory.t_end, trajectory.valence, trajectory.arousal,
                   trajectory.quadrants, trajectory.moods):
        out.writerow([str(path), f"{row[0]:.3f}", f"{row[1]:.3f}", f"{row[2]:.4f}", f"{row[3]:.4f}", row[4], row[5]])


def _stderr_console():
    from rich.console import Console
    return Console(stderr=True)


def _open_csv(stack: ExitStack, path: Path | None, header: list[str]):
    try:
        handle = sys.stdout if path in (None, Path("-")) else stack.enter_context(open(path, "w", newline=""))
    except OSError as error:
        fail(f"{path}: cannot write ({error.strerror})")
    writer = csv.writer(handle)
    writer.writerow(header)
    return writer


def _total_seconds(files: list[Path]) -> float:
    import soundfile

    from .audio.io import quiet_native_stderr
    total = 0.0
    for path in files:
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
    values = positive_ints(text)
    return values if "," in text else values[0]


def devices(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .audio import AudioError, list_devices
    try:
        found = list_devices()
    except AudioError as error:
        fail(str(error))
    table = Table("index", "name", "input channels", "default rate", "host API", title="Audio inputs")
    for device in found:
        table.add_row(str(device["index"]), device["name"], str(device["channels"]),
                      f"{device['default_rate']:.0f}", device["hostapi"])
    Console().print(table)
    return 0


def listen(args: argparse.Namespace) -> int:
    import os
    import threading

    from .publish import PublishError, listen as listen_to
    from .signals import StopOnSignal
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    try:
        listen_to(args.endpoint, topics=args.topic or ("emotion", "status"), streams=args.stream, count=args.count,
                  timeout_s=args.timeout, stop=stop)
    except PublishError as error:
        fail(str(error))
    except BrokenPipeError:                 # e.g. | head: the reader has gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return stopped.exit_status


def dash(args: argparse.Namespace) -> int:
    import threading

    from .signals import StopOnSignal
    from .publish import PublishError, Subscriber
    from .ui import dash as remote_dashboard
    try:
        subscriber = Subscriber(args.endpoint)
    except PublishError as error:
        fail(str(error))
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    print(f"rt-mer: dashboard of {args.endpoint}; Ctrl-C stops it", file=sys.stderr)
    remote_dashboard(subscriber, stop, args.refresh, title=args.endpoint)
    return stopped.exit_status


def osc(args: argparse.Namespace) -> int:
    from .publish import PublishError
    from .publish.osc import serve
    try:
        return serve(args.target, getattr(args, "from"), bundle=not args.no_bundle, normalize=args.normalize)
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
        print(f"{path}: {len(titles)} panel(s){on_pages}: {', '.join(titles)}")
    return 0


BENCH_SECTIONS = ["analyze", "latency", "streams", "gpu", "cpu"]


def bench(args: argparse.Namespace) -> int:
    from .bench import is_gpu_engine, run_benchmarks
    from .engines import EngineError, open_engine
    unknown = set(args.sections) - set(BENCH_SECTIONS)
    if unknown:
        fail(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(BENCH_SECTIONS)}")
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


def build_engine(args: argparse.Namespace) -> int:
    from .engines import EngineError, default_model
    from .engines.tensorrt import TensorRTEngine
    model = args.model or default_model()
    if not model.is_file():
        fail(f"{model}: no such model file")
    try:
        engine = TensorRTEngine(model, args.precision, args.max_batch, force_build=args.force)
    except EngineError as error:
        fail(str(error))
    how = "built" if engine.built else "found in the cache"
    print(f"{engine.plan_path}: {how}; {engine.key.describe()}")
    close_engine(engine)
    return 0


# ------------------------------------------------------------------ main

def add_live_options(parser: argparse.ArgumentParser, inputs: bool = True) -> None:
    if inputs:
        group = parser.add_argument_group("input")
        group.add_argument("--device", action="append",
                           help="input device, by index or name substring (repeat for several streams)")
        group.add_argument("--channels", type=parse_channels, default=None,
                           help="channel count, or a selection like 1,2 (downmixed to mono)")
        group.add_argument("--rate", type=positive_int, default=None, help="sample rate (default: the device's)")
        group.add_argument("--blocksize", type=non_negative_int, default=0, help="frames per audio callback (default: auto)")
        group.add_argument("--file", type=Path, action="append", help="a file, paced at real time (repeatable)")
        group.add_argument("--stdin", action="store_true", help="raw PCM on standard input")
        group.add_argument("--format", default="f32le", choices=["f32le", "s16le", "s24le"],
                           help="--stdin sample format (default: %(default)s)")
    group = parser.add_argument_group("analysis")
    group.add_argument("--hop", type=hop_seconds, default=DEFAULT_HOP,
                       help=f"seconds between windows, a multiple of {1 / FRAMES_PER_SECOND:g} "
                            f"(default: %(default)s)")
    group.add_argument("--smooth", default="ema", choices=["off", "ema", "one-euro"],
                       help="smoothing of published valence/arousal (raw values are published too)")
    group.add_argument("--smooth-time", type=positive_float, default=2.0, help="smoothing time constant, s")
    group.add_argument("--explain", action="store_true",
                       help="publish what drives each prediction (drivers, harmony map) and show it on the dashboard")
    group.add_argument("--no-realtime", action="store_true",
                       help="keep the analysis and capture threads at normal priority (default: they ask for "
                            "real-time scheduling, below the audio servers', where the system allows it)")
    add_moods_option(group)
    add_engine_options(parser)
    group = parser.add_argument_group("output")
    group.add_argument("--pub", default=DEFAULT_ENDPOINT, help="ZeroMQ PUB endpoint (default: %(default)s)")
    group.add_argument("--codec", default="json", choices=["json", "msgpack"], help="payload encoding")
    group.add_argument("--no-dash", action="store_true", help="no dashboard (headless)")
    group.add_argument("--refresh", type=positive_float, default=10.0, help="dashboard redraws per second (max 15)")
    group.add_argument("--record", type=Path, default=None, help="also write every message to this JSONL file")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rt-mer", description="Real-time music emotion analyser.")
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
    add_moods_option(analyze_parser)
    add_engine_options(analyze_parser)
    analyze_parser.set_defaults(handler=analyze)

    run_parser = commands.add_parser(
        "run", help="analyse live input, publish and show it",
        description=f"Live analysis: a {WINDOW_SECONDS:g} s window (the model's; algorithmic latency "
                    f"{WINDOW_SECONDS / 2:g} s) every --hop seconds, published over ZeroMQ and drawn on a "
                    f"dashboard. Input: the default microphone unless --device, --file, --stdin or --demo.")
    add_live_options(run_parser)
    run_parser.set_defaults(handler=app.run, demo=False)

    demo_parser = commands.add_parser("demo", help="run on built-in music: no microphone needed",
                                      description="`rt-mer run` on the built-in demo music, looping.")
    add_live_options(demo_parser, inputs=False)
    demo_parser.set_defaults(handler=app.run, demo=True, device=None, file=None, stdin=False, rate=None,
                             channels=None, blocksize=0, format="f32le")

    commands.add_parser("devices", help="list audio inputs").set_defaults(handler=devices)

    listen_parser = commands.add_parser("listen", help="print published messages as JSON lines")
    listen_parser.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT)
    listen_parser.add_argument("--topic", action="append", choices=["emotion", "status"],
                               help="message kinds (default: both)")
    listen_parser.add_argument("--stream", action="append", help="only these streams")
    listen_parser.add_argument("--count", type=positive_int, default=None, help="stop after N messages")
    listen_parser.add_argument("--timeout", type=positive_float, default=None,
                               help="stop after this many seconds without a message")
    listen_parser.set_defaults(handler=listen)

    dash_parser = commands.add_parser("dash", help="the dashboard, as a remote subscriber")
    dash_parser.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT)
    dash_parser.add_argument("--refresh", type=positive_float, default=10.0, help="redraws per second (max 15)")
    dash_parser.set_defaults(handler=dash)

    osc_parser = commands.add_parser(
        "osc", help="forward every emotion message as OSC over UDP (lighting desks, VJ software)",
        description="Subscribes like `rt-mer listen` and sends each emotion message as OSC to HOST:PORT: "
                    "/rt-mer/<stream>/valence, /arousal (float -1..1), /quadrant (int 1..4), /mood (string), "
                    "/level (float dBFS), one bundle per message (--normalize: floats 0..1). Runs until Ctrl-C.")
    osc_parser.add_argument("target", metavar="HOST:PORT", help="the OSC receiver, e.g. 127.0.0.1:9000")
    osc_parser.add_argument("--from", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                            help="the rt-mer publisher (default: %(default)s)")
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
                              help=f"which of {', '.join(BENCH_SECTIONS)} (default: all)")
    bench_parser.add_argument("--hop", type=hop_seconds, default=DEFAULT_HOP)
    bench_parser.add_argument("--streams", type=positive_ints, default=None,
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
    if args.config:
        args = apply_config(parser, args, argv)
    rounded_hop(args)
    try:
        return args.handler(args)
    except UserError as error:
        fail(str(error))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
