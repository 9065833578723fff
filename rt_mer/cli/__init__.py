"""`rt-mer` sub-commands. User errors end in one line on stderr and a
non-zero exit, never a traceback.

The parser is built here from each command group's module: analyze (and
plot), live (run, demo, devices), subscribers (hub, listen, dash, osc, web)
and bench (bench, build-engine); options.py holds the option types and the
shared option groups, config.py the --config loader."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import RtMerError
from . import analyze, bench, live, subscribers
from .config import apply_config
from .options import Parser, fail, rounded_hop

__all__ = ["build_parser", "fail", "main"]


def build_parser() -> Parser:
    from .. import __version__
    parser = Parser(prog="rt-mer", description="Real-time music emotion analyser.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML file of option defaults: the long option names as keys, e.g. hop = 0.25; "
                             "keys of other sub-commands are ignored")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    analyze.add_parsers(parser, commands)
    live.add_parsers(parser, commands)
    subscribers.add_parsers(parser, commands)
    analyze.add_plot_parser(parser, commands)
    bench.add_parsers(parser, commands)
    return parser


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
        from ..signals import lost_output_signal, output_gone, silence
        if not output_gone(error):
            raise
        silence(sys.stdout, sys.stderr)
        return 128 + lost_output_signal(error)
