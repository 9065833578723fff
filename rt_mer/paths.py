"""The files a command reads and writes, checked before any is opened.

An input must be a regular file: opening a FIFO with no writer waits for
ever, and a directory or a device holds no audio. No output may be one of
the inputs: opening it for writing would empty the input first. Each check
raises the caller's own error class, so that it ends in the caller's one
line (UserError for a command, AudioError for one file of many).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

# What a path is where it is not a regular file, in the user's words.
KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))

STDIN = 0       # an input that is standard input (a file redirected to it can be overwritten too)


def irregular_kind(path: str | Path) -> str | None:
    """What `path` is where it exists and is not a regular file (links
    followed): "a FIFO (named pipe)", "a directory", ...; None for a regular
    file, or for none at all (the open that follows says it is missing)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in KINDS if test(mode)), "not a file")


def require_regular_file(path: str | Path, error: type[Exception]) -> None:
    """Raise `error` with one line where `path` exists and is no regular file."""
    kind = irregular_kind(path)
    if kind:
        raise error(f"{path}: {kind}, not a regular file")


def refuse_overwriting(outputs: Iterable[tuple[str, str | Path | None]],
                       inputs: Iterable[tuple[str, str | Path | int | None]], error: type[Exception]) -> None:
    """Raise `error` with one line where an output is one of the inputs
    (the same file after links: os.path.samefile's test, so a hard link or a
    symbolic one is caught too), a directory, or the file another output
    names. Each is (option, path), the option "" for a positional input; a
    None path or "-" (standard output) is skipped, an input may be STDIN."""
    named = [(option, path) for option, path in outputs if path is not None and str(path) != "-"]
    for i, (option, output) in enumerate(named):
        if os.path.isdir(output):
            raise error(f"{option} {output}: a directory, not a file to write")
        for other, path in named[:i]:
            if os.path.realpath(output) == os.path.realpath(path) or _same(_stat(output), _stat(path)):
                raise error(f"{other} and {option} name the same file {output}; give each its own")
    existing = [(option, output, _stat(output)) for option, output in named if _stat(output)]
    if not existing:        # nothing can be overwritten: no need to look at every input
        return
    for input_option, path in inputs:
        read = _stat(path)
        for option, output, written in existing:
            if _same(written, read):
                what = "standard input" if path == STDIN else \
                    f"the {input_option} input {path}" if input_option else f"the input {path}"
                raise error(f"{option} {output} would overwrite {what}; write it to another file")


def _same(a: os.stat_result | None, b: os.stat_result | None) -> bool:
    return a is not None and b is not None and os.path.samestat(a, b)


def _stat(path: str | Path | int | None) -> os.stat_result | None:
    if path is None or str(path) == "-":
        return None
    try:
        return os.fstat(path) if isinstance(path, int) else os.stat(path)
    except (OSError, ValueError):
        return None
