"""`rt-mer analyze`: audio files to CSV rows, here or on a Ray cluster, and
`rt-mer plot`, which draws what analyze (or a live --record) wrote."""
from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from ..dsp.frontend import FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_SECONDS
from ..stream.windows import DEFAULT_HOP
from ..text import printable, say
from .options import (EXIT_SOME_FAILED, Parser, add_engine_options, add_moods_option, fail,
                      hop_seconds, moods_from, open_engine_from, option_inputs, positive_int)


def add_parsers(parser: Parser, commands) -> None:
    analyze_parser = parser.command(
        commands, "analyze", help="analyse audio files offline",
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
    group = analyze_parser.option_group("cluster (pip install 'rt-mer[cluster]')")
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


def add_plot_parser(parser: Parser, commands) -> None:
    plot_parser = parser.command(
        commands, "plot", help="draw valence and arousal over time and the path through the plane",
        description="Draws the trajectory of an `rt-mer analyze --out` CSV or a `--record` JSONL recording: "
                    "one panel per analysed file or live stream, several inputs into one image (or one PDF "
                    "page per four panels). Needs matplotlib: pip install 'rt-mer[plot]'.")
    plot_parser.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help="CSV or JSONL files")
    plot_parser.add_argument("-o", "--output", type=Path, default=None, help="the image: .png, .svg or .pdf")
    plot_parser.set_defaults(handler=plot)


def analyze(args: argparse.Namespace) -> int:
    """Rows in input order, local or on a cluster; outputs refused if they
    name an input, written whole by rename, or journaled with --resume
    (rt_mer.stream.table says how)."""
    from ..stream.offline import audio_files
    from ..paths import refuse_overwriting
    from ..stream.table import HEADER, SUMMARY_HEADER, OutputError, Table, resume

    if args.workers and not args.cluster:
        fail("--workers is for --cluster runs")
    files = audio_files(args.inputs)
    if not files:
        fail("no audio files found in " + ", ".join(map(str, args.inputs)))
    if args.summary is not None and str(args.summary) == "-" and str(args.out or "-") == "-":
        fail("--out and --summary both go to standard output; give one of them a file")
    try:            # before anything is opened for writing
        refuse_overwriting([("--out", args.out), ("--summary", args.summary)],
                           [("", path) for path in [*args.inputs, *files]] + option_inputs(args), OutputError)
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

    from ..stream.table import analyze_to_result
    engine = open_engine_from(args)     # a UserError: one line, from main
    stack.callback(engine.close)
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
        from ..stream.cluster import Cluster, ClusterError
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

    from ..audio.io import quiet_native_stderr
    from ..paths import irregular_kind
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


def plot(args: argparse.Namespace) -> int:
    from ..ui import plot as plotting
    if args.output is None:         # not argparse's required=: a --config file may give it
        fail("plot needs -o/--output FILE.png, .svg or .pdf (see rt-mer plot --help)")
    try:
        written = plotting.plot(args.inputs, args.output)
    except plotting.PlotError as error:
        fail(str(error))
    for path, pages, titles in written:
        on_pages = f" on {pages} pages" if pages > 1 else ""
        print(printable(f"{path}: {len(titles)} panel(s){on_pages}: {', '.join(titles)}"))
    return 0
