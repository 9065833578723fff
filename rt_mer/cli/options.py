"""The parser, the option types and the option groups several commands share.

Every number an option takes is checked here, where the command line and
a --config file both pass, before anything computes with it: a value far
out of range is one line, not an overflow, a hang or gigabytes allocated."""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..dsp.frontend import FRAMES_PER_SECOND, WINDOW_FRAMES, WINDOW_SECONDS
from ..errors import UserError
from ..text import say
from ..ui.dashboard import MAX_REFRESH_HZ, MIN_REFRESH_HZ

EXIT_USER_ERROR = 2
EXIT_SOME_FAILED = 1

THREADS_PER_CORE = 4                # ONNX Runtime gains nothing from more threads than cores
MAX_BATCH = 4096                    # 4096 windows are 1.6 GB of input alone on the GPU
MAX_BLOCKSIZE = 65536               # frames: over a second a callback at any common rate
MAX_STREAMS = 4096                  # bench: each stream holds its own ring and front-end
MAX_SMOOTH_TIME = 3600.0            # seconds: longer would freeze the published values
MAX_NAME_CHARS = 40


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    """End the command: `message` on one line of stderr, exit status `code`."""
    say(f"error: {message}")
    raise SystemExit(code)


# ---------------------------------------------------------------- parser

@dataclass(frozen=True)
class Option:
    """What an add_argument call asked for, as a --config file needs it."""
    name: str                       # the last option string, e.g. --smooth-time
    dest: str
    kind: str                       # "flag", "repeat" (action="append") or "value"
    type: Callable | None
    choices: tuple | None


class RecordedGroup:
    """An argument group whose add_argument also records the option in `options`."""

    def __init__(self, container, options: list[Option]) -> None:
        self.container, self.options = container, options

    def add_argument(self, *names: str, **kwargs):
        action = self.container.add_argument(*names, **kwargs)
        record(self.options, action, names, kwargs)
        return action


def record(options: list[Option], action: argparse.Action, names: tuple[str, ...], kwargs: dict) -> None:
    how = kwargs.get("action", "store")
    if not names[0].startswith("-") or how in ("help", "version"):
        return                      # positionals and --help are the command line's only
    kind = {"store_true": "flag", "store_false": "flag", "append": "repeat"}.get(how, "value")
    choices = kwargs.get("choices")
    options.append(Option(names[-1], action.dest, kind, kwargs.get("type"),
                          None if choices is None else tuple(choices)))


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line like every other user error,
    and a record of its options (`options`) for --config."""

    def __init__(self, *args, **kwargs) -> None:
        self.options: list[Option] = []
        self.commands: dict[str, Parser] = {}
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        fail(f"{message} (see {self.prog} --help)")

    def add_argument(self, *names: str, **kwargs):
        action = super().add_argument(*names, **kwargs)
        record(self.options, action, names, kwargs)
        return action

    def option_group(self, title: str) -> RecordedGroup:
        """An argument group whose options are recorded like the parser's."""
        return RecordedGroup(self.add_argument_group(title), self.options)

    def command(self, subparsers, name: str, **kwargs) -> Parser:
        """A sub-command's parser, from `subparsers` (this parser's
        add_subparsers()), kept in `commands` by name."""
        parser = subparsers.add_parser(name, **kwargs)
        self.commands[name] = parser
        return parser


# ------------------------------------------------------------------ types

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
    from ..stream.windows import hop_frames
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
    from ..stream.windows import hop_frames
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


def check_name(text: str) -> str:
    """--name: letters, digits, '-', '_' and '.', 1 to MAX_NAME_CHARS of them
    (it becomes part of every topic); raises ValueError otherwise."""
    if not 0 < len(text) <= MAX_NAME_CHARS or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in text):
        raise ValueError(f"--name {text[:60]!r} must be 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'")
    return text


def name_prefix(text: str) -> str:
    """--name, checked by `check_name`."""
    try:
        return check_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def thread_count(text: str) -> int:
    cores = os.cpu_count() or 1
    return whole_number(text, 1, THREADS_PER_CORE * cores, f" ({THREADS_PER_CORE} x the {cores} cores here)")


def max_batch(text: str) -> int:
    return whole_number(text, 1, MAX_BATCH)


def sample_rate(text: str) -> int:
    from ..audio.sources import MAX_RATE, MIN_RATE
    return whole_number(text, MIN_RATE, MAX_RATE, " Hz")


def blocksize(text: str) -> int:
    return whole_number(text, 0, MAX_BLOCKSIZE, " frames")


def stream_counts(text: str) -> list[int]:
    return positive_ints(text, MAX_STREAMS)


def tcp_port(text: str) -> int:
    return whole_number(text, 0, 65535, " (a TCP port)")


def parse_channels(text: str) -> int | list[int]:
    """"2" -> a count; "1,2" -> a selection of 1-based channel numbers."""
    from ..audio.sources import MAX_CHANNELS
    values = positive_ints(text, MAX_CHANNELS)
    return values if "," in text else values[0]


# ----------------------------------------------------------------- groups

def add_moods_option(parser) -> None:
    parser.add_argument("--moods", type=Path, default=None, metavar="FILE.toml",
                        help="mood words of your own, word = [valence, arousal] (default: English words "
                             "placed by published affective norms)")


def add_engine_options(parser: Parser, engine: bool = True) -> None:
    from ..inference import DEFAULT_MAX_BATCH, ENGINES, PRECISIONS
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


def add_prefix_option(parser: Parser) -> None:
    parser.add_argument("--stream-prefix", default="", metavar="PREFIX",
                        help="only streams whose name starts with PREFIX, e.g. shop-17/ for one machine "
                             "through a hub")


# ------------------------------------------------ what the options name

def open_engine_from(args: argparse.Namespace):
    """The engine the options ask for; its `reason` says why it is the one."""
    from ..inference import EngineError, open_engine
    try:
        return open_engine(args.engine, args.model, args.threads, args.precision, args.max_batch)
    except EngineError as error:
        raise UserError(str(error)) from None


def moods_from(args: argparse.Namespace):
    """The mood vocabulary --moods names, else the shipped one."""
    from ..stream.moods import MoodError, load_moods
    try:
        return load_moods(getattr(args, "moods", None))
    except MoodError as error:
        raise UserError(str(error)) from None


def option_inputs(args: argparse.Namespace) -> list[tuple[str, object]]:
    """The files the options name for reading (--config, --moods, --model),
    as (option, path): what no output of the command may overwrite."""
    return [(option, getattr(args, option[2:], None)) for option in ("--config", "--moods", "--model")]
