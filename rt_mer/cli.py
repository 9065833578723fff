"""`rt-mer` sub-commands. User errors end in one line on stderr and a
non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import csv
import sys
from contextlib import ExitStack
from pathlib import Path

from .dsp.frontend import FRAMES_PER_SECOND, SAMPLE_RATE
from .stream.windows import WINDOW_SECONDS

EXIT_USER_ERROR = 2
EXIT_SOME_FAILED = 1


class UserError(Exception):
    """Ends the command with its message on one line."""


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    print(f"rt-mer: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="onnxruntime", choices=["onnxruntime"],
                        help="inference back-end (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all)")


def open_engine_or_fail(args: argparse.Namespace):
    from .engines import EngineError, open_engine
    try:
        return open_engine(args.engine, args.model, args.threads)
    except EngineError as error:
        fail(str(error))


# --------------------------------------------------------------- analyze

def analyze(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .audio.io import AudioError
    from .engines import EngineError
    from .stream.offline import analyze_file, audio_files
    from .stream.windows import hop_frames

    try:
        hop_frames(args.hop)
    except ValueError as error:
        fail(str(error))
    files = audio_files(args.inputs)
    if not files:
        fail("no audio files found in " + ", ".join(map(str, args.inputs)))
    engine = open_engine_or_fail(args)
    failed = 0
    with ExitStack() as stack:
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
                trajectory = analyze_file(path, engine, args.hop, progress=lambda s: _advance(progress, task, s))
            except (AudioError, EngineError) as error:
                print(f"rt-mer: error: {error}", file=sys.stderr)
                failed += 1
                continue
            for row in zip(trajectory.t_start, trajectory.t_end, trajectory.valence, trajectory.arousal,
                           trajectory.quadrants, trajectory.moods):
                out.writerow([str(path), f"{row[0]:.3f}", f"{row[1]:.3f}", f"{row[2]:.4f}", f"{row[3]:.4f}",
                              row[4], row[5]])
            if songs:
                valence, arousal, quadrant, mood = trajectory.summary()
                songs.writerow([str(path), f"{valence:.4f}", f"{arousal:.4f}", quadrant, mood])
    if failed:
        print(f"rt-mer: {failed} of {len(files)} files failed", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0


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
    total = 0.0
    for path in files:
        try:
            total += soundfile.info(path).duration
        except Exception:       # unreadable files are reported when analysed
            pass
    return total


def _advance(progress, task, seconds: float) -> None:
    progress.advance(task, seconds)
    state = progress.tasks[task]
    if state.elapsed:
        progress.update(task, speed=f"{state.completed / state.elapsed:,.0f}x real time")


# ------------------------------------------------------------------ main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rt-mer", description="Real-time music emotion analyser.")
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
    analyze_parser.add_argument("--hop", type=positive_float, default=0.5,
                                help=f"seconds between windows, a multiple of {1 / FRAMES_PER_SECOND:g} "
                                     f"(default: %(default)s)")
    analyze_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_options(analyze_parser)
    analyze_parser.set_defaults(handler=analyze)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        fail(str(error))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
