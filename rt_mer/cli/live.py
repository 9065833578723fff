"""`rt-mer run` and `rt-mer demo`, the live analysis: sources, engine,
publisher, recorder, dashboard thread, signals and the closing summary; and
`rt-mer devices`, the inputs it can take."""
from __future__ import annotations

import argparse
import threading
from pathlib import Path

from ..dsp.frontend import FRAMES_PER_SECOND, WINDOW_SECONDS
from ..errors import UserError
from ..publish import DEFAULT_ENDPOINT
from ..signals import StopOnSignal, lost_output_signal, output_gone
from ..stream.windows import DEFAULT_HOP
from ..text import say
from ..ui.dashboard import MAX_REFRESH_HZ, MIN_REFRESH_HZ
from .options import (EXIT_SOME_FAILED, Parser, add_engine_options, add_moods_option, blocksize, fail,
                      hop_seconds, moods_from, name_prefix, open_engine_from, option_inputs, parse_channels,
                      refresh_rate, sample_rate, smooth_time)


def add_parsers(parser: Parser, commands) -> None:
    run_parser = parser.command(
        commands, "run", help="analyse live input, publish and show it",
        description=f"Live analysis: a {WINDOW_SECONDS:g} s window (the model's; algorithmic latency "
                    f"{WINDOW_SECONDS / 2:g} s) every --hop seconds, published over ZeroMQ and drawn on a "
                    f"dashboard. Input: the default microphone unless --device, --file or --stdin (`rt-mer demo` "
                    f"plays the built-in music).")
    add_live_options(run_parser)
    run_parser.set_defaults(handler=run, demo=False)

    demo_parser = parser.command(commands, "demo", help="run on built-in music: no microphone needed",
                                 description="`rt-mer run` on the built-in demo music, looping.")
    add_live_options(demo_parser, inputs=False)
    demo_parser.set_defaults(handler=run, demo=True, device=None, file=None, stdin=False, rate=None,
                             channels=None, blocksize=0, format="f32le")

    parser.command(commands, "devices", help="list audio inputs").set_defaults(handler=devices)


def add_live_options(parser: Parser, inputs: bool = True) -> None:
    if inputs:
        group = parser.option_group("input")
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
    group = parser.option_group("analysis")
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
    group = parser.option_group("output")
    group.add_argument("--pub", default=DEFAULT_ENDPOINT, help="ZeroMQ PUB endpoint (default: %(default)s)")
    group.add_argument("--hub", default=None, metavar="ENDPOINT",
                       help="connect to an `rt-mer hub`'s input (e.g. tcp://HOST:5557) instead of binding --pub")
    group.add_argument("--name", type=name_prefix, default=None, metavar="PREFIX",
                       help="prefix of this run's stream names, PREFIX/input (default with --hub: the host name)")
    group.add_argument("--codec", default="json", choices=["json", "msgpack"],
                       help="payload encoding (default: %(default)s)")
    group.add_argument("--no-dash", action="store_true", help="no dashboard (headless)")
    group.add_argument("--refresh", type=refresh_rate, default=10.0,
                       help=f"dashboard redraws per second, {MIN_REFRESH_HZ:g} to {MAX_REFRESH_HZ:g} "
                            f"(default: %(default)s)")
    group.add_argument("--record", type=Path, default=None, help="also write every message to this JSONL file")


def stream_name(text: str) -> str:
    """A name fit for a ZeroMQ topic: letters, digits, - and _."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40] or "stream"


def machine_name(args: argparse.Namespace) -> str | None:
    """The prefix of this run's stream names: --name, else with --hub this
    host's name (its first label), else none."""
    import socket
    name = getattr(args, "name", None)
    if name is None and getattr(args, "hub", None):
        name = stream_name(socket.gethostname().split(".")[0])
    return name


def default_input(args: argparse.Namespace):
    """The default microphone, or the built-in demo music where there is none."""
    from ..audio import AudioError, DemoSource, MicSource
    try:
        return MicSource(None, rate=args.rate, channels=args.channels, blocksize=args.blocksize)
    except AudioError as error:
        say(f"no microphone ({error}); playing the built-in demo music instead")
        return DemoSource()


def build_sources(args: argparse.Namespace) -> list:
    from ..audio import DemoSource, FileSource, MicSource, StdinSource
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
    from ..audio import AudioError
    from ..publish import PublishError, Publisher, parse_endpoint
    from ..stream.loop import AnalysisLoop, LoopOptions
    from ..paths import STDIN, refuse_overwriting
    from ..stream.record import Recorder

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
        from ..ui import DashboardState, run_dashboard
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
        engine.close()
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


def devices(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..audio import AudioError, list_devices
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
