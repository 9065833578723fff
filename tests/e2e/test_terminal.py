"""The dashboards in a real terminal under tmux: `rt-mer run`'s, `rt-mer
dash`, the explanation panel, a user's mood words, the overview's keys."""
from __future__ import annotations

import os
import pty
import re
import shlex
import shutil
import subprocess
import sys
import termios
import threading
import time

import pytest

from rt_mer.contract import DRIVERS
from rt_mer.stream.moods import default_moods
from rt_mer.ui.overview import Selection, read_keys

from support import TESTS
from support.files import vocabulary
from support.processes import CLI
from support.wire import free_endpoint


class Terminal:
    """A private tmux server (the user's tmux is untouched) with one 80x24
    window; the command's stderr goes to a file, and the pane outlives a
    crash so that the test sees it."""

    def __init__(self, folder):
        self.tmux = ["tmux", "-S", str(folder / "tmux.sock")]
        self.errors = folder / "stderr.txt"

    def start(self, command, env=None):
        shell = f"{shlex.join(map(str, command))} 2>{shlex.quote(str(self.errors))}; sleep 30"
        environment = {**os.environ, "TERM": "xterm-256color", **(env or {})}
        subprocess.run([*self.tmux, "new-session", "-d", "-s", "rt", "-x", "80", "-y", "24", shell], check=True,
                       env=environment)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", "rt"], capture_output=True, text=True).stdout

    def wait(self, shown, timeout=60, interval=0.3) -> str:
        """The screen once `shown(screen)` holds (a capture can land while
        the terminal is mid-redraw), or the last one at the timeout."""
        deadline = time.monotonic() + timeout
        text = self.screen()
        while not shown(text) and time.monotonic() < deadline:
            time.sleep(interval)
            text = self.screen()
        return text

    def what_went_wrong(self, text) -> str:
        return f"on screen:\n{text}\nstderr:\n{self.errors.read_text() if self.errors.exists() else ''}"


@pytest.fixture
def terminal(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: no real terminal to draw in")
    terminal = Terminal(tmp_path)
    yield terminal
    subprocess.run([*terminal.tmux, "kill-server"], capture_output=True)


FED_DASHBOARD = '''
import math, sys, threading, time
from rt_mer.ui import DashboardState, run_dashboard
from support.dash import emotion, status

state, stop = DashboardState(), threading.Event()


def feed():
    state.update(status("mic", 0))
    i = 0
    while not stop.is_set():
        state.update(emotion("mic", i, 3.0 + 0.1 * i, 0.8 * math.cos(i / 8), 0.8 * math.sin(i / 8)))
        i += 1
        time.sleep(0.1)


threading.Thread(target=feed, daemon=True).start()
threading.Timer(float(sys.argv[1]), stop.set).start()
run_dashboard(state, stop, refresh_hz=10.0)
'''


def valence(text):
    found = re.search(r"valence ([+-]\d\.\d\d)", text)
    return found and found.group(1)


def test_live_dashboard_in_a_real_terminal(terminal, tmp_path):
    script = tmp_path / "live.py"
    script.write_text(FED_DASHBOARD)
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))   # for support.dash
    terminal.start([sys.executable, script, "20"], env={"PYTHONPATH": path})
    names = ("tense", "happy", "sad", "calm", "┼", "●", "engine onnxruntime", "p50 12.3 ms")
    first = terminal.wait(lambda text: valence(text) and all(name in text for name in names), timeout=20)
    assert valence(first), terminal.what_went_wrong(first)
    for name in names:
        assert name in first, name
    second = terminal.wait(lambda text: valence(text) != valence(first), timeout=20)
    assert valence(second) != valence(first), second
    assert len(second.rstrip("\n").splitlines()) <= 24


PANEL_ROWS = ("drives", *DRIVERS, "notes")


def panel(text):
    """The lines of the explanation panel on a captured screen."""
    return [line for line in text.splitlines() if any(f"{name} " in line for name in PANEL_ROWS[1:-1])]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["in process", "remote"])
def test_explanation_in_a_real_terminal(terminal, where):
    """`rt-mer demo --explain` draws the panel at 80x24; so does `rt-mer
    dash` subscribed to a headless `rt-mer demo --explain`; it changes as
    the music goes on."""
    endpoint = free_endpoint()
    demo = [*CLI, "demo", "--explain", "--hop", "0.25", "--pub", endpoint]
    publisher = None
    if where == "remote":
        publisher = subprocess.Popen([*demo, "--no-dash"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        demo = [*CLI, "dash", endpoint]
    try:
        terminal.start(demo)
        first = terminal.wait(lambda text: len(panel(text)) >= len(DRIVERS), interval=0.5)
        assert len(panel(first)) == len(DRIVERS), terminal.what_went_wrong(first)
        for name in ("drives", "valence", "arousal", "notes    A  A# B  C  C# D  D# E  F  F# G  G#", "●"):
            assert name in first, name
        assert len(first.rstrip("\n").splitlines()) <= 24 and max(map(len, first.splitlines())) <= 80
        second = terminal.wait(lambda text: panel(text) != panel(first), interval=0.5)
        assert panel(second) != panel(first), second                    # updated as the music goes on
    finally:
        if publisher:
            publisher.terminate()
            assert publisher.wait(10) is not None


@pytest.mark.slow
def test_demo_dashboard_in_a_real_terminal(terminal):
    terminal.start([*CLI, "demo", "--hop", "0.25", "--pub", free_endpoint()])
    first = terminal.wait(lambda text: "valence +" in text or "valence -" in text, interval=0.5)
    for name in ("tense", "happy", "sad", "calm", "valence", "arousal", "dBFS"):
        assert name in first, terminal.what_went_wrong(first)
    assert ("real-time" in first) != ("normal priority" in first), first     # what the latency ran under
    second = terminal.wait(lambda text: valence(text) != valence(first), timeout=30)
    assert valence(second) != valence(first), second


@pytest.mark.slow
def test_the_dashboard_shows_the_users_word(terminal, tmp_path):
    linger = vocabulary('linger = [0.0, 0.0]\ndistance = 3.0\n', tmp_path, "linger.toml")   # always this word
    terminal.start([*CLI, "demo", "--hop", "0.25", "--moods", linger, "--pub", free_endpoint()])
    text = terminal.wait(lambda text: "L I N G E R" in text, interval=0.5)
    assert "L I N G E R" in text, terminal.what_went_wrong(text)
    assert not any(" ".join(word.upper()) in text for word in default_moods().words)


def test_keys_move_the_selection_in_a_real_terminal():
    controller, terminal = pty.openpty()
    before = termios.tcgetattr(terminal)
    selection, stop = Selection(), threading.Event()
    with os.fdopen(terminal, "rb", buffering=0) as stream:
        reader = threading.Thread(target=read_keys, args=(selection, stop, stream))
        reader.start()
        try:
            deadline = time.monotonic() + 30
            while termios.tcgetattr(terminal)[3] & termios.ICANON and time.monotonic() < deadline:
                time.sleep(0.05)                          # until the reader put it in cbreak mode
            for keys in (b"j", b"\x1b[B", b"\tkx"):          # one read may bring several keys
                os.write(controller, keys)
            deadline = time.monotonic() + 30
            while selection.version < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert selection.version == 4                 # three down, one up; "x" is no key of ours
            assert selection.resolve(["a", "b", "c", "d"]) == (3 + 2) % 4
        finally:
            stop.set()
            reader.join()
        assert termios.tcgetattr(terminal) == before      # the terminal's mode restored
    os.close(controller)
