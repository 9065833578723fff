"""The live terminal dashboard: a thread-safe state fed with schema messages,
and Rich renderables drawn from snapshots of it.

The analysis thread only calls `DashboardState.update` (O(1), a short lock);
all rendering happens in `run_dashboard`'s own thread at its own refresh rate.
Each panel is a small function of one stream's snapshot, in the style of Rich.

In process::

    state, stop = DashboardState(), threading.Event()
    threading.Thread(target=run_dashboard, args=(state, stop), daemon=True).start()
    ...                                   # analysis thread, every hop:
    state.update(message)                 # the same dicts the publisher sends
    stop.set()                            # then join the thread to restore the terminal
"""
from __future__ import annotations

import errno
import math
import threading
import time
from collections import deque
from typing import Any, Protocol

from rich.align import Align
from rich.console import Console
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from ..messages import (EmotionMessage, Message, StatusMessage)
from ..publish.loop import receive_until
from ..publish.seqs import Mark, mark, seq_gap
from ..signals import output_gone, silence
from .overview import Selection, overview, read_keys
from .panels import FULL_H, FULL_W, HISTORY_S, MIN_H, MIN_W, QUADRANTS, STALE_S, SizedPanel, StreamView

HISTORY_MAX = 1024          # hard bound whatever a peer sends: 60 s at the shortest hop (1/16 s)
# Streams kept at once: a hub's channels fit (the table scrolls). A peer may
# invent stream names without end; the least recently seen stream is forgotten
# first, and counted. Each keeps at most HISTORY_MAX points of history (about
# 150 KB): 512 streams hold at most about 75 MB, 8 MB at the default hop.
MAX_STREAMS = 512
TRAIL_POINTS = 12
MIN_REFRESH_HZ, MAX_REFRESH_HZ = 0.1, 15.0
RECEIVE_POLL_SECONDS = 0.1  # how soon the remote dashboard's receiving notices its stop


class _Stream:
    """Mutable per-stream record; touched only under DashboardState's lock."""

    def __init__(self, trail: int):
        self.emotion: dict = {}
        self.status: dict = {}
        self.level: tuple[Any, Any] = (None, None)
        self.history: deque[tuple[float, float, float]] = deque(maxlen=HISTORY_MAX)
        self.trail: deque[tuple[float, float]] = deque(maxlen=trail)
        self.last: dict[str, Mark] = {}            # of the latest message of each kind with a seq, for gaps
        self.missed = 0
        self.arrived = 0.0


class DashboardState:
    """Latest state per stream, fed `emotion` and `status` message dicts.

    `update` is safe to call from the real-time analysis thread: constant
    work under a short lock, no rendering, no I/O. `source` names where the
    messages come from (an endpoint) for the "waiting" screen. At most
    `max_streams` streams are kept: a new one past that replaces the least
    recently seen, counted in `forgotten`.
    """

    def __init__(self, source: str | None = None, trail: int = TRAIL_POINTS, max_streams: int = MAX_STREAMS):
        self.source = source
        self._trail = trail
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}     # in order of first appearance: the panels' order
        self.max_streams = max_streams
        self.forgotten = 0
        self.rejected = 0                          # malformed messages the source skipped: shown, never silent
        self.version = 0                           # bumped by every update: the drawing skips unchanged frames

    def update(self, message: dict | Message) -> None:
        """Take a message: a decoded payload, or a typed one in process."""
        if isinstance(message, (EmotionMessage, StatusMessage)):
            message = message.to_dict()
        kind, name = message.get("type"), message.get("stream")
        if kind not in ("emotion", "status") or not isinstance(name, str):
            return
        message = dict(message)                    # the caller may reuse its dict
        now = time.monotonic()
        with self._lock:
            self.version += 1
            stream = self._streams.get(name)
            if stream is None:
                if len(self._streams) >= self.max_streams:     # a scan of max_streams, only for a new name
                    del self._streams[min(self._streams, key=lambda known: self._streams[known].arrived)]
                    self.forgotten += 1
                stream = self._streams[name] = _Stream(self._trail)
            stream.arrived = now
            if isinstance(message.get("seq"), int):
                stream.missed += seq_gap(stream.last.get(kind), message)
                stream.last[kind] = mark(message)
            # Emotion messages carry the level of their hop; a status's covers
            # a second, so it fills the meter only while no window comes.
            if ("level_dbfs" in message or "peak_dbfs" in message) and (
                    kind == "emotion" or message.get("state") == "warming" or "level_dbfs" not in stream.emotion):
                stream.level = (message.get("level_dbfs"), message.get("peak_dbfs"))
            if kind == "status":
                stream.status = message
                return
            stream.emotion = message
            t, v, a = message.get("t"), message.get("valence"), message.get("arousal")
            if not all(isinstance(x, (int, float)) for x in (t, v, a)):
                return
            history = stream.history
            if history and t < history[-1][0]:
                history.clear()                    # stream time went back: a new run of the stream
            history.append((t, v, a))
            while t - history[0][0] > HISTORY_S:
                history.popleft()                  # amortised O(1): each sample leaves once
            stream.trail.append((v, a))

    def snapshot(self) -> list[StreamView]:
        """Copies of every stream's state, in order of first appearance."""
        now = time.monotonic()
        with self._lock:
            return [StreamView(name, s.emotion, s.status, s.level, list(s.history), list(s.trail), s.missed,
                               now - s.arrived) for name, s in self._streams.items()]


def render(state: DashboardState, width: int, height: int, selection: Selection | None = None) -> Layout:
    """The whole screen: one panel per stream, stacked while each gets
    MIN_H rows, then in columns; when they no longer fit, a table of every
    stream above the panel of the one `selection` names (overview.py)."""
    views = state.snapshot()
    notes = [state.source or ""] + ([f"{state.rejected} rejected"] if state.rejected else []) + \
        ([f"{state.forgotten} streams forgotten"] if state.forgotten else [])
    if not views:
        where = f" from {state.source}" if state.source else ""
        return Layout(Align.center(Panel(Text(f"waiting for messages{where}", justify="center", style="bold"),
                                         title="rt-mer", width=min(width, 72)), vertical="middle"))
    # Full-size cells where the screen allows, else stacked compact ones;
    # when even MIN_W x MIN_H cells run out, the rest are counted, not squeezed.
    fits = [(r, math.ceil(len(views) / r)) for r in range(1, len(views) + 1)]
    fits = [(r, c) for r, c in fits if width // c >= MIN_W and height // r >= MIN_H]
    if fits:
        n_rows, n_cols = max(fits, key=lambda rc: (width // rc[1] >= FULL_W and height // rc[0] >= FULL_H, -rc[1]))
    elif len(views) > 1:
        return overview(views, height, selection, lambda view: SizedPanel(view, None), MIN_H, STALE_S,
                        {q: colour for q, (_, colour, _) in QUADRANTS.items()}, " · ".join(n for n in notes if n))
    else:
        n_rows, n_cols = max(1, height // MIN_H), max(1, width // MIN_W)
    shown = views[:n_rows * n_cols]
    if len(shown) < len(views):
        notes.append(f"{len(views) - len(shown)} more not shown: enlarge the terminal")
    n_rows = math.ceil(len(shown) / n_cols)
    subtitle = " · ".join(n for n in notes if n) or None
    layout = Layout()
    row_layouts = [Layout() for _ in range(n_rows)]
    layout.split_column(*row_layouts)
    for r, row in enumerate(row_layouts):
        cells = shown[r * n_cols:(r + 1) * n_cols]
        row.split_row(*(Layout(SizedPanel(v, subtitle)) for v in cells),
                      *(Layout(Text("")) for _ in range(n_cols - len(cells))))
    return layout


# -------------------------------------------------------------------- loops

def run_dashboard(state: DashboardState, stop: threading.Event, refresh_hz: float = 10.0,
                  console: Console | None = None, selection: Selection | None = None) -> None:
    """Draw `state` until `stop` is set, at most MAX_REFRESH_HZ times a second.

    Run it in its own thread; it only reads snapshots, so the analysis thread
    never waits on drawing. Full screen on a terminal. stdout and stderr are
    left alone: redirecting them is process-wide and would reach other sinks.
    A frame is drawn only when a message arrived, the terminal was resized
    or a second passed (the staleness note counts seconds): messages come
    every hop, so redrawing in between would only spend CPU.

    A terminal that went away (EIO after a hang-up; EPIPE for a pipe) ends
    the drawing: the console's output is silenced and the OSError raised,
    for the caller to end as on the hang-up (rt_mer.signals).
    """
    console = console or Console()
    period = 1.0 / min(max(refresh_hz, MIN_REFRESH_HZ), MAX_REFRESH_HZ)
    drawn, terminal = None, console.is_terminal
    selection = selection or Selection()
    try:
        with Live(render(state, console.width, console.height, selection), console=console, screen=terminal,
                  auto_refresh=False, redirect_stdout=False, redirect_stderr=False,
                  vertical_overflow="crop") as live:
            while not stop.wait(period):
                if terminal and not console.is_terminal:     # hung up: Rich would go on drawing to nothing
                    raise OSError(errno.EIO, "the terminal went away")
                frame = (state.version, state.rejected, console.size, int(time.monotonic()), selection.version)
                if frame != drawn:
                    live.update(render(state, console.width, console.height, selection), refresh=True)
                    drawn = frame
    except OSError as error:
        if output_gone(error):
            silence(console.file)          # Live's own exit wrote to it too; Python's exit will again
        raise


class MessageSource(Protocol):
    def receive(self, timeout_ms: int) -> dict | None: ...


def dash(subscriber: MessageSource, stop: threading.Event, refresh_hz: float = 10.0,
         title: str | None = None, console: Console | None = None, state: DashboardState | None = None) -> None:
    """The remote dashboard: a thread receives from `subscriber` (e.g.
    rt_mer.publish.Subscriber) into a DashboardState while this thread draws
    it; returns once `stop` is set. The subscriber belongs to that thread
    until then.

    `title` names the source on the waiting screen (default: the
    subscriber's `endpoint`); its `rejected` count, if any, is shown. A
    receive error stops the dashboard and is raised here. `state`: one of
    the caller's to fill (default: a new one).
    """
    state = state or DashboardState()
    state.source = state.source or title or getattr(subscriber, "endpoint", None)
    errors: list[BaseException] = []

    def show_rejected() -> None:
        state.rejected = getattr(subscriber, "rejected", 0)

    def handle(message: dict) -> None:
        show_rejected()
        state.update(message)

    def receive() -> None:
        try:
            receive_until(subscriber, handle, stop, report=show_rejected, poll_s=RECEIVE_POLL_SECONDS)
        except BaseException as error:            # noqa: BLE001 (handed to the drawing thread)
            errors.append(error)
            stop.set()

    receiver = threading.Thread(target=receive, name="rt-mer-dash-receive", daemon=True)
    receiver.start()
    selection = Selection()                        # keys select a stream where there are many (overview.py)
    keys = threading.Thread(target=read_keys, args=(selection, stop), name="rt-mer-dash-keys", daemon=True)
    if console is None:                            # our own terminal: its keys are ours
        keys.start()
    try:
        run_dashboard(state, stop, refresh_hz, console, selection)
    finally:
        stop.set()                                 # the drawing ended, so must the receiving
        receiver.join()
        if keys.is_alive():
            keys.join()                            # restores the terminal's mode
    if errors:
        raise errors[0]
