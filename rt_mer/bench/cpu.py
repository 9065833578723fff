"""CPU use of `rt-mer demo` with its dashboard in a pseudo-terminal."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path


def bench_cpu(seconds: float = 20.0, warmup: float = 10.0) -> dict:
    """CPU use of `rt-mer demo` (dashboard on, in a pseudo-terminal) after
    warm-up, from the kernel's accounting of the process."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "rt_mer.cli", "demo", "--pub", "inproc://bench-cpu"],
                               stdin=terminal, stdout=terminal, stderr=terminal,
                               env={**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"})
    os.close(terminal)

    def cpu_seconds() -> float:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def drain(until: float) -> None:
        while time.monotonic() < until:
            try:
                os.read(controller, 65536)
            except OSError:
                return
            time.sleep(0.01)
    try:
        drain(time.monotonic() + warmup)
        start_cpu, start = cpu_seconds(), time.monotonic()
        drain(start + seconds)
        used = cpu_seconds() - start_cpu
        return {"cpu_percent_of_one_core": 100 * used / (time.monotonic() - start)}
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.close(controller)
