"""`rt-mer analyze`'s CSV outputs: what a row says, and how the files are
written so that an input is never overwritten and an output is never torn.

- `rt_mer.paths.refuse_overwriting` runs before anything is opened for writing.
- Without --resume, `Table` writes beside the target (a hidden `.NAME.PID.part`
  in the same directory) and renames it over the target only when the run
  is complete: an interrupted run leaves any earlier file as it was.
- With --resume, `Table` is a journal: it appends to the target itself,
  each input file's rows in one write, flushed, in input order. `resume`
  reads what is there: every file with rows is done except the last one,
  whose rows may be cut short (it is analysed again), and a torn last line
  goes with it. So a stop (Ctrl-C, kill, a lost cluster) costs at most the
  files in flight plus that one file.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..audio.io import AudioError
from ..inference import EngineError
from ..errors import RtMerError

HEADER = ["file", "t_start", "t_end", "valence", "arousal", "quadrant", "mood"]
SUMMARY_HEADER = ["file", "valence", "arousal", "quadrant", "mood"]
ENCODING = dict(encoding="utf-8", errors="surrogateescape")     # any file name the system gave us


class OutputError(RtMerError):
    """An output that cannot or must not be written; one line for the user."""


@dataclass
class FileResult:
    """One input file's analysis as `analyze` writes it: rows already
    formatted, so a local run and a cluster worker write the same bytes."""
    path: str
    rows: list[list[str]] = field(default_factory=list)      # per window (HEADER)
    summary: list[str] | None = None                           # per file (SUMMARY_HEADER); none for a failed file
    error: str | None = None                                   # the one-line reason it failed
    seconds: float = 0.0                                       # audio analysed


def analyze_to_result(path: Path, engine, hop: float, moods=None, progress=None) -> FileResult:
    """`analyze_file`, its errors caught and its trajectory formatted. A
    truncated file keeps the rows of what decoded, but no summary."""
    from .offline import analyze_file
    try:
        trajectory = analyze_file(path, engine, hop, progress=progress, moods=moods)
    except (AudioError, EngineError) as error:
        partial = getattr(error, "trajectory", None)
        return FileResult(str(path), _rows(path, partial) if partial is not None else [], None, str(error),
                          _seconds(partial))
    valence, arousal, quadrant, mood = trajectory.summary()
    summary = [str(path), f"{valence:.4f}", f"{arousal:.4f}", str(quadrant), mood]
    return FileResult(str(path), _rows(path, trajectory), summary, None, _seconds(trajectory))


def _rows(path: Path, trajectory) -> list[list[str]]:
    return [[str(path), f"{t0:.3f}", f"{t1:.3f}", f"{v:.4f}", f"{a:.4f}", str(q), mood]
            for t0, t1, v, a, q, mood in zip(trajectory.t_start, trajectory.t_end, trajectory.valence,
                                             trajectory.arousal, trajectory.quadrants, trajectory.moods)]


def _seconds(trajectory) -> float:
    return float(trajectory.t_end[-1]) if trajectory is not None and len(trajectory.t_end) else 0.0


# ------------------------------------------------------------- writing

class Table:
    """One CSV output (see the module's docstring): standard output, a file
    written whole by rename (`journal=False`), or a journal appended to
    (`journal=True`, for --resume, after `resume` has read and trimmed it).
    `write(rows)` takes one input file's rows; `close(complete)` renames
    the finished file into place, or drops an unfinished one."""

    def __init__(self, path: Path | None, header: list[str], journal: bool = False) -> None:
        self.target = None if path is None or str(path) == "-" else Path(os.path.realpath(path))
        self.part = None
        try:
            if self.target is None:
                self.handle = sys.stdout
            elif journal:
                self.handle = open(self.target, "a", newline="", **ENCODING)
            else:       # beside the target, so the rename stays on one file system and is atomic
                self.part = self.target.with_name(f".{self.target.name}.{os.getpid()}.part")
                self.handle = open(self.part, "w", newline="", **ENCODING)
        except OSError as error:
            raise OutputError(f"{path}: cannot write ({error.strerror})") from None
        if self.target is None or not journal or self.handle.tell() == 0:
            self.write([header])

    def write(self, rows: list[list[str]]) -> None:
        """Rows in one write, flushed: a journal never holds half a file's rows
        except after a stop inside this call (`resume` redoes that file)."""
        if not rows:
            return
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        self.handle.write(text.getvalue())      # BrokenPipeError (| head): the CLI ends quietly
        self.handle.flush()

    def close(self, complete: bool) -> None:
        if self.handle is sys.stdout:
            return
        self.handle.close()
        if self.part is None:
            return
        if complete:
            os.replace(self.part, self.target)
        else:
            self.part.unlink(missing_ok=True)


def resume(out: Path, summary: Path | None) -> set[str]:
    """The files `out` (a journal of an earlier run) holds as done, trimming
    `out` and `summary` to exactly those files' rows. Every file with rows is
    done but the last, whose rows may be incomplete; a torn line goes with
    it. A file that failed with no rows is not done and is tried again.
    Both files are read as a stream: an archive's journal may be gigabytes."""
    done, last, cut = set(), None, None
    position = start = _header_end(out, HEADER)
    for name, end in _records(out, HEADER):
        if name != last:
            if last is not None:
                done.add(last)
            last, cut = name, position
        position = end
    _truncate(out, cut if cut is not None else start)
    if summary is not None:
        kept = _header_end(summary, SUMMARY_HEADER)
        for name, end in _records(summary, SUMMARY_HEADER):
            if name not in done:
                break
            kept = end
        _truncate(summary, kept)
    return done


def _records(path: Path, header: list[str]) -> Iterator[tuple[str, int]]:
    """(file column, byte offset of its end) of each whole record of a CSV
    we wrote, up to the first torn one; OutputError for anything else."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    except OSError as error:
        raise OutputError(f"{path}: cannot read it to resume ({error.strerror})") from None
    with handle:
        state = {"end": _header_end(path, header), "whole": True}

        def lines():
            for raw in handle:
                state["end"] += len(raw)
                state["whole"] = raw.endswith(b"\n")
                yield raw.decode(**ENCODING)
        handle.seek(state["end"])
        try:
            for row in csv.reader(lines()):
                if not state["whole"] or len(row) != len(header):   # torn: the run stopped inside it
                    return
                yield row[0], state["end"]
        except csv.Error:       # a field cut inside its quotes
            return


def _header_end(path: Path, header: list[str]) -> int:
    """Where the header of our CSV ends: 0 for an empty file or a torn
    header (which is dropped); OutputError for a file with another header."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline()
    except FileNotFoundError:
        return 0
    except OSError as error:
        raise OutputError(f"{path}: cannot read it to resume ({error.strerror})") from None
    expected = _header_line(header).encode()
    if first.rstrip(b"\r\n") == expected.rstrip(b"\r\n") and first.endswith(b"\n"):
        return len(first)
    if expected.startswith(first):          # empty, or a torn header
        _truncate(path, 0)
        return 0
    raise OutputError(f"{path}: not a CSV of rt-mer analyze (its header is not {','.join(header)}); "
                      f"refusing to resume into it")


def _header_line(header: list[str]) -> str:
    text = io.StringIO()
    csv.writer(text).writerow(header)
    return text.getvalue()


def _size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0


def _truncate(path: Path, length: int) -> None:
    if _size(path) > length:
        with open(path, "r+b") as handle:
            handle.truncate(length)
