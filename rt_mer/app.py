"""The application behind `rt-mer run` and `rt-mer demo`: sources, engine,
publisher, recorder, dashboard thread, signals and the closing summary.

cli.py parses the command line and calls `run`; user errors are raised as
`UserError` (one line, exit status 2) for cli.py to print.
"""
from __future__ import annotations

import argparse
import threading

from .dsp.frontend import WINDOW_SECONDS
from .errors import RtMerError
from .signals import StopOnSignal, lost_output_signal, output_gone
from .text import say

EXIT_USER_ERROR = 2
EXIT_SOME_FAILED = 1


class UserError(RtMerError):
    """Ends the command with its message on one line."""


def open_engine_from(args: argparse.Namespace):
    """The engine the options ask for; its `reason` says why it is the one."""
    from .engines import EngineError, open_engine
    try:
        return open_engine(args.engine, args.model, args.threads, args.precision, args.max_batch)
    except EngineError as error:
        raise UserError(str(error)) from None


def moods_from(args: argparse.Namespace):
    """The mood vocabulary --moods names, else the shipped one."""
    from .stream.moods import MoodError, load_moods
    try:
        return load_moods(getattr(args, "moods", None))
    except MoodError as error:
        raise UserError(str(error)) from None


def close_engine(engine) -> None:
    """GPU engines hand their memory back; ONNX Runtime needs nothing."""
    if hasattr(engine, "close"):
        engine.close()


def option_inputs(args: argparse.Namespace) -> list[tuple[str, object]]:
    """The files the options name for reading (--config, --moods, --model),
    as (option, path): what no output of the command may overwrite."""
    return [(option, getattr(args, option[2:], None)) for option in ("--config", "--moods", "--model")]


def stream_name(text: str) -> str:
    """A name fit for a ZeroMQ topic: letters, digits, - and _."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40] or "stream"


MAX_NAME_CHARS = 40


def machine_name(args: argparse.Namespace) -> str | None:
    """The prefix of this run's stream names: --name, else with --hub this
    host's name (its first label), else none."""
    import socket
    name = getattr(args, "name", None)
    if name is None and getattr(args, "hub", None):
        name = stream_name(socket.gethostname().split(".")[0])
    return name


def check_name(text: str) -> str:
    """--name: letters, digits, '-', '_' and '.', 1 to MAX_NAME_CHARS of them
    (it becomes part of every topic); raises ValueError otherwise."""
    if not 0 < len(text) <= MAX_NAME_CHARS or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in text):
        raise ValueError(f"--name {text[:60]!r} must be 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'")
    return text


def default_input(args: argparse.Namespace):
    """The default microphone, or the built-in demo music where there is none."""
    from .audio import AudioError, DemoSource, MicSource
    try:
        return MicSource(None, rate=args.rate, channels=args.channels, blocksize=args.blocksize)
    except AudioError as error:
        say(f"no microphone ({error}); playing the built-in demo music instead")
        return DemoSource()


def build_sources(args: argparse.Namespace) -> list:
    from .audio import DemoSource, FileSource, MicSource, StdinSource
    sources = [FileSource(path, name=stream_name(path.stem)) for path in args.file or []]
    if args.stdin:
        if not args.rate or not isinstance(args.channels, int):
            raise UserError("--stdin needs --rate HZ and --channels COUNT (raw PCM has no header)")
        sources.append(StdinSource(args.rate, args.channels, args.format))
    if args.demo:
        sources.append(DemoSource())
    if not sources and not args.device:
        sources.append(default_input(args))
    for i, device in enumerate(args.device or []):
        name = "mic" if len(args.device) == 1 else f"mic{i + 1}"
        sources.append(MicSource(device, rate=args.rate, channels=args.channels, blocksize=args.blocksize,
                                 name=name))
    names = [source.name for source in sources]
    for i, source in enumerate(sources):          # two files with one stem still get two topics
        if names.count(source.name) > 1:
            source.name = f"{source.name}-{names[:i].count(source.name) + 1}"
    prefix = machine_name(args)
    for source in sources if prefix else []:      # machines sharing a hub: "shop-17/line-in"
        source.name = f"{prefix}/{source.name}"
    return sources


def run(args: argparse.Namespace) -> int:
    from .audio import AudioError
    from .publish import PublishError, Publisher, parse_endpoint
    from .stream.loop import AnalysisLoop, LoopOptions
    from .paths import STDIN, refuse_overwriting
    from .stream.record import Recorder

    refuse_overwriting([("--record", args.record)],
                       [("--file", path) for path in args.file or []] + ([("--stdin", STDIN)] if args.stdin else [])
                       + option_inputs(args), UserError)
    moods = moods_from(args)
    try:
        endpoint = args.hub or args.pub
        parse_endpoint(endpoint)
        sources = build_sources(args)
        engine = open_engine_from(args)
        options = LoopOptions(hop=args.hop, smoothing=args.smooth, smoothing_time=args.smooth_time,
                              explain=args.explain, engine_reason=engine.reason, moods=moods,
                              realtime=not args.no_realtime)
        publisher = Publisher(endpoint, codec=args.codec, connect=bool(args.hub))
        loop = AnalysisLoop(sources, engine, [publisher.send], options)
    except (AudioError, PublishError, ValueError) as error:
        raise UserError(str(error)) from None
    recorder = None
    if args.record:
        try:
            recorder = Recorder(args.record, on_error=loop.stop.set)     # a recording that fails stops the run
        except OSError as error:
            publisher.close()
            raise UserError(f"{args.record}: cannot write ({error.strerror})") from None
        loop.sinks.append(recorder)
    stopped = StopOnSignal(loop.stop)
    say(f"{', '.join(s.description for s in sources)} -> {engine.name} ({engine.reason}), "
        f"window {WINDOW_SECONDS:g} s, hop {loop.hop_seconds:g} s; "
        f"{'publishing to the hub at' if args.hub else 'publishing on'} {endpoint}")
    dashboard = None
    if not args.no_dash:
        from .ui import DashboardState, run_dashboard
        state = DashboardState()
        loop.sinks.append(state.update)
        stop_dashboard = threading.Event()

        def draw() -> None:
            try:
                run_dashboard(state, stop_dashboard, args.refresh)
            except OSError as error:       # the terminal went away: end as on its hang-up
                if not output_gone(error):
                    raise
                stopped.stop_for(lost_output_signal(error))

        dashboard = threading.Thread(target=draw, name="dashboard", daemon=True)
        dashboard.start()
    try:
        loop.run()
    except AudioError as error:
        say(f"error: {error}")
        return EXIT_SOME_FAILED
    finally:
        if dashboard:
            stop_dashboard.set()
            dashboard.join()
        if recorder:
            recorder.close()
        publisher.close()
        close_engine(engine)
    for error in loop.failures:             # each ended its own stream; the others went on
        say(f"error: {error}")
    if recorder and recorder.error:
        say(f"error: {args.record}: cannot write ({recorder.error.strerror or recorder.error})")
        return EXIT_SOME_FAILED
    say(f"stopped; {summary(loop)}")
    return EXIT_SOME_FAILED if loop.failures else stopped.exit_status


def summary(loop) -> str:
    """Per stream: windows published and every counter, for the last line."""
    return ", ".join(f"{s.source.name}: {s.seq['emotion']} windows, " + ", ".join(
        f"{k} {v}" for k, v in {**s.source.counters, "late_windows": s.late_windows}.items()) for s in loop.streams)
