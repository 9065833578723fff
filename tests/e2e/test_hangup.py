"""Closing the terminal for real: each command runs in a pseudo-terminal
whose master side the test closes, so the kernel hangs the terminal up
(SIGHUP, then EIO on every write). The command ends quietly with status 129,
stderr (a file) without a traceback; a pipe whose reader left ends `listen`
quietly too."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from support.processes import CLI
from support.wire import deck_publisher, free_endpoint


class Terminal:
    """`rt-mer ARGS` as the only process of a new session on a new pty
    (100 x 30), stderr to `errors` (a file) unless to_terminal."""

    def __init__(self, args, errors, to_terminal=False, ignore_hangup=False):
        self.pid, self.master = pty.fork()
        if self.pid == 0:                                  # the child: exec at once, touch nothing else
            if not to_terminal:
                os.dup2(os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            if ignore_hangup:
                signal.signal(signal.SIGHUP, signal.SIG_IGN)      # as nohup leaves it
            os.execv(sys.executable, [*CLI, *map(str, args)])
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.errors, self.shown = errors, b""

    def wait_for(self, text, timeout=120):
        """Read the screen until `text` was drawn (the command is running)."""
        deadline = time.monotonic() + timeout
        while text not in self.shown and time.monotonic() < deadline:
            if select.select([self.master], [], [], 0.1)[0]:
                self.shown += os.read(self.master, 65536)
        assert text in self.shown, self.shown[-2000:]

    def close(self):
        """Close the master side: the kernel hangs up the terminal."""
        os.close(self.master)

    def exit_status(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, raw = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(raw)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"still running {timeout} s after the hang-up")


@pytest.fixture
def publishing():
    """A publisher sending an emotion and a status message every 10 ms: a
    subscriber always has something to write when its terminal goes."""
    endpoint = free_endpoint()
    with deck_publisher(endpoint, 0.01):
        yield endpoint


@pytest.mark.parametrize("command, drawn", [("listen", b'"stream":"deck"'), ("dash", b"deck")])
@pytest.mark.parametrize("to_terminal, ignore_hangup", [(False, False), (True, False), (False, True)])
def test_subscribers_end_quietly_with_129_when_the_terminal_closes(publishing, tmp_path, command, drawn,
                                                                   to_terminal, ignore_hangup):
    """Whether the signal or the failed write comes first is the kernel's
    timing; with the signal ignored, the write always fails first."""
    errors = tmp_path / "stderr.txt"
    terminal = Terminal([command, publishing], errors, to_terminal, ignore_hangup)
    terminal.wait_for(drawn)
    terminal.close()
    assert terminal.exit_status() == 128 + signal.SIGHUP
    if not to_terminal:
        text = errors.read_text()
        assert "Traceback" not in text and "Errno" not in text, text


@pytest.mark.slow
def test_the_dashboard_of_run_ends_the_run_cleanly_when_the_terminal_closes(tmp_path):
    errors, record = tmp_path / "stderr.txt", tmp_path / "demo.jsonl"
    terminal = Terminal(["demo", "--pub", free_endpoint(), "--record", record], errors)
    terminal.wait_for(b"demo")                             # the stream's panel
    terminal.close()
    assert terminal.exit_status() == 128 + signal.SIGHUP
    text = errors.read_text()
    assert "Traceback" not in text and "Errno" not in text, text
    assert text.splitlines()[-1].startswith("rt-mer: stopped; demo: ")
    last = json.loads(record.read_text().splitlines()[-1])
    assert (last["type"], last["state"]) == ("status", "ended")      # a complete recording


@pytest.mark.slow
def test_nohup_keeps_a_headless_run_going_after_the_terminal_closes(tmp_path):
    errors, record = tmp_path / "stderr.txt", tmp_path / "demo.jsonl"
    terminal = Terminal(["demo", "--no-dash", "--pub", free_endpoint(), "--record", record], errors,
                        ignore_hangup=True)
    deadline = time.monotonic() + 120
    while not (record.exists() and '"emotion"' in record.read_text()):
        assert time.monotonic() < deadline, errors.read_text()
        time.sleep(0.1)
    terminal.close()
    windows = record.read_text().count('"emotion"')
    while record.read_text().count('"emotion"') < windows + 2:    # it goes on analysing
        assert time.monotonic() < deadline + 60, errors.read_text()
        time.sleep(0.1)
    os.kill(terminal.pid, signal.SIGTERM)
    assert terminal.exit_status() == 128 + signal.SIGTERM
    assert "Traceback" not in errors.read_text()


def test_listen_into_a_pipe_whose_reader_left_ends_quietly(publishing):
    process = subprocess.Popen([*CLI, "listen", publishing], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert b'"stream":"deck"' in process.stdout.readline()     # as `| head -1` reads one line
        process.stdout.close()                                    # and leaves
        assert process.wait(30) == 0
        assert process.stderr.read() == b""
    finally:
        process.kill()
