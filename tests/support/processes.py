"""rt-mer as a user runs it: the command line in a subprocess, its one-line
errors, and waiting on a condition without depending on the machine's load."""
from __future__ import annotations

import subprocess
import sys
import time

CLI = [sys.executable, "-m", "rt_mer.cli"]


def rt_mer(*args, timeout=60, **kwargs):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def one_error_line(result, code=2):
    """The run ended with `code` and a single 'rt-mer: error:' line; returns it."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, result.stderr
    assert lines[0].startswith("rt-mer: error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


PATIENCE_S = 60          # generous: the machine may be loaded; every wait polls a condition


def until(condition, what, timeout=PATIENCE_S):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
