"""The programs that read a stream: `rt-mer listen`, `dash`, `osc` and
`web`, and `rt-mer hub`, which passes streams on. Each runs the one
subscriber loop (rt_mer.publish.loop) with a handler of its own."""
from __future__ import annotations

import argparse
import sys
import threading
from typing import IO, Iterable

from ..publish import DEFAULT_ENDPOINT, PublishError, Subscriber, encode
from ..publish.loop import CountReport, receive_until
from ..signals import StopOnSignal, lost_output_signal, output_gone, silence
from ..text import say
from ..ui.dashboard import MAX_REFRESH_HZ, MIN_REFRESH_HZ
from .options import Parser, add_prefix_option, fail, positive_float, positive_int, refresh_rate, tcp_port


def add_parsers(parser: Parser, commands) -> None:
    add_hub_parser(parser, commands)

    listen_parser = parser.command(commands, "listen", help="print published messages as JSON lines")
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

    dash_parser = parser.command(commands, "dash", help="the dashboard, as a remote subscriber")
    dash_parser.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT,
                             help="the rt-mer publisher to show (default: %(default)s)")
    add_prefix_option(dash_parser)
    dash_parser.add_argument("--refresh", type=refresh_rate, default=10.0,
                             help=f"redraws per second, {MIN_REFRESH_HZ:g} to {MAX_REFRESH_HZ:g} "
                                  f"(default: %(default)s)")
    dash_parser.set_defaults(handler=dash)

    osc_parser = parser.command(
        commands, "osc", help="forward every emotion message as OSC over UDP (lighting desks, VJ software)",
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

    web_parser = parser.command(
        commands, "web", help="a live wall of every stream in the browser, a page per stream, an OBS overlay",
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


def add_hub_parser(top: Parser, commands) -> None:
    from ..publish.hub import DEFAULT_IN, DEFAULT_OUT
    parser = top.command(
        commands, "hub", help="one endpoint for the streams of many machines (a ZeroMQ XSUB/XPUB proxy)",
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


# ---------------------------------------------------------------- listen

def listen(args: argparse.Namespace) -> int:
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    try:
        print_messages(args.endpoint, topics=args.topic or ("emotion", "status"), streams=args.stream,
                       count=args.count, timeout_s=args.timeout, stop=stop, prefix=args.stream_prefix)
    except PublishError as error:
        fail(str(error))
    except BrokenPipeError:                 # e.g. | head: the reader has what it wanted, which is fine
        silence(sys.stdout)
    return stopped.exit_status


def print_messages(endpoint: str, out: IO[str] | None = None, topics: Iterable[str] = ("emotion", "status"),
                   streams: Iterable[str] | None = None, codec: str = "auto", count: int | None = None,
                   timeout_s: float | None = None, errors: IO[str] | None = None,
                   stop: threading.Event | None = None, prefix: str = "") -> int:
    """Write each received message as one compact JSON line to `out`
    (default sys.stdout), flushed per line: `rt-mer listen`.

    Malformed messages are skipped and reported on `errors` (default
    sys.stderr): one line with the count and the last reason, at most every
    REPORT_SECONDS and once more at the end, as the dashboard shows them;
    so are topics forgotten (see Subscriber). Stops after `count` messages,
    when none arrives for `timeout_s` seconds (None: run for ever), or soon
    after `stop` is set; returns the number of lines written.
    BrokenPipeError propagates after the socket is closed. Raises
    PublishError for a bad endpoint or codec.
    """
    out = sys.stdout if out is None else out
    errors = sys.stderr if errors is None else errors
    written = 0

    def write(message: dict) -> bool:
        nonlocal written
        out.write(encode(message).decode() + "\n")      # decode guarantees strict JSON
        out.flush()
        written += 1
        return count is None or written < count

    with Subscriber(endpoint, topics=topics, streams=streams, codec=codec, prefix=prefix) as subscriber:
        receive_until(subscriber, write, stop or threading.Event(), timeout_s, CountReport(subscriber, errors))
    return written


# ------------------------------------------------------------------ dash

def dash(args: argparse.Namespace) -> int:
    from ..ui import dashboard
    try:
        subscriber = Subscriber(args.endpoint, prefix=args.stream_prefix)
    except PublishError as error:
        fail(str(error))
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    say(f"dashboard of {args.endpoint}; Ctrl-C stops it")
    try:
        dashboard.dash(subscriber, stop, args.refresh, title=args.endpoint)
    except OSError as error:                # the terminal went away, maybe before its hang-up signal came
        if not output_gone(error):
            raise
        return stopped.exit_status or 128 + lost_output_signal(error)
    return stopped.exit_status


# ------------------------------------------------------------------- osc

def osc(args: argparse.Namespace) -> int:
    """Forward until SIGINT, SIGTERM or SIGHUP, then close and return 128 +
    the signal's number, as `rt-mer run` does."""
    from ..publish.osc import PREFIX, OscSender
    endpoint, bundle = getattr(args, "from"), not args.no_bundle
    try:
        sender = OscSender(args.target, bundle, args.normalize)
    except PublishError as error:
        fail(str(error))
    try:
        subscriber = Subscriber(endpoint, topics=("emotion",), prefix=args.stream_prefix)
    except PublishError as error:
        sender.close()
        fail(str(error))
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    resolved = f" ({sender.address})" if sender.address != sender.host else ""
    say(f"emotion messages from {endpoint} -> OSC {'bundles' if bundle else 'messages'} to "
        f"{sender.target}{resolved}, addresses {PREFIX}/<stream>/...")
    with subscriber:
        try:
            receive_until(subscriber, sender.send, stop, report=OscReport(subscriber, sender, sys.stderr))
        finally:
            sender.close()
    say(f"stopped; {sender.forwarded} messages forwarded, {sender.failed} failed sends, "
        f"{subscriber.rejected} rejected, {subscriber.missed} missed, {subscriber.forgotten} topics forgotten")
    return stopped.exit_status


class OscReport(CountReport):
    """The subscriber's counts, and the sends that failed."""

    def __init__(self, subscriber: Subscriber, sender, errors: IO[str]) -> None:
        super().__init__(subscriber, errors)
        self.sender, self.failed = sender, 0

    def __call__(self) -> None:
        if self.sender.failed > self.failed:
            self.errors.write(f"rt-mer: {self.sender.failed} OSC send(s) to {self.sender.target} failed so far "
                              f"(last: {self.sender.last_failure})\n")
            self.errors.flush()
        self.failed = self.sender.failed
        super().__call__()


# ------------------------------------------------------------ web and hub

def web(args: argparse.Namespace) -> int:
    try:
        from ..ui.web import WebError, serve
    except ImportError as error:
        fail(f"rt-mer web needs the [web] extra ({error.name} is missing): pip install 'rt-mer[web]'")
    try:
        return serve(getattr(args, "from"), host=args.host, port=args.port, token=args.token,
                     no_token=args.no_token, max_streams=args.max_streams)
    except (WebError, PublishError) as error:
        fail(str(error))


def hub(args: argparse.Namespace) -> int:
    from ..publish.hub import serve
    stop = threading.Event()
    stopped = StopOnSignal(stop)
    try:
        serve(getattr(args, "in"), args.out, args.every, args.quiet, stop, sys.stderr)
    except PublishError as error:
        fail(str(error))
    return stopped.exit_status
