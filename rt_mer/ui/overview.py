"""Many streams on one screen (a hub's, or one run with several inputs): a
compact table of every stream above the full panel of the selected one.

`render` in dashboard.py switches to it when the streams no longer fit as
panels of their own. The selection is a stream's name, moved by keys in
`rt-mer dash` (up/down, j/k, Tab); until a key is pressed it follows the
stream that appeared last, so a machine joining the hub shows itself.
"""
from __future__ import annotations

import os
import select
import sys
import threading
from contextlib import suppress

from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

TABLE_CHROME = 4            # the table panel's two borders, the header row and a "more" line
KEYS = {"j": 1, "n": 1, "\t": 1, "\x1b[B": 1, "k": -1, "p": -1, "\x1b[A": -1, "\x1b[Z": -1}


class Selection:
    """Which stream the overview shows in full; safe to move from a key
    thread while the drawing thread resolves it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.name: str | None = None          # None: follow the newest stream
        self._steps = 0
        self.version = 0                      # bumped by each key: the screen redraws

    def move(self, step: int) -> None:
        with self._lock:
            self._steps += step
            self.version += 1

    def resolve(self, names: list[str]) -> int:
        """The index in `names` (non-empty, in order of first appearance) to show."""
        with self._lock:
            index = names.index(self.name) if self.name in names else len(names) - 1
            if self._steps:
                index = (index + self._steps) % len(names)
                self.name, self._steps = names[index], 0
            return index


def key_steps(typed: str) -> list[int]:
    """The selection steps in what one read returned: several keys may come
    at once (a fast typist, a loaded machine), arrows as 3-character escapes."""
    steps, i = [], 0
    while i < len(typed):
        size = 3 if typed.startswith("\x1b[", i) else 1
        step = KEYS.get(typed[i:i + size], 0)
        if step:
            steps.append(step)
        i += size
    return steps


def read_keys(selection: Selection, stop: threading.Event, stream=None) -> None:
    """Move `selection` by the keys typed on `stream` (default stdin) until
    `stop`; returns at once unless it is a terminal. The terminal is put in
    cbreak mode (keys without Enter, no echo) and restored."""
    stream = stream or sys.stdin
    try:
        import termios
        import tty
        fd = stream.fileno()
        if not os.isatty(fd):
            return
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        return
    try:
        tty.setcbreak(fd)
        while not stop.is_set():
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            for step in key_steps(os.read(fd, 64).decode(errors="replace")):
                selection.move(step)
    except OSError:
        return                                    # the terminal went away (SIGHUP): nothing to read
    finally:
        with suppress(termios.error, OSError):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _number(value, spec: str) -> str:
    return f"{value:{spec}}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "--"


def _row(view, selected: bool, stale_s: float, colours: dict) -> list[Text]:
    emotion, status = view.emotion, view.status
    colour = colours.get(emotion.get("quadrant"), "white")
    late = status.get("late_windows")
    level = view.level[0] if view.level[0] is not None else emotion.get("level_dbfs")
    stale = view.age > stale_s and status.get("state") != "ended"
    word = "ended" if status.get("state") == "ended" else str(emotion.get("mood", "warming up"))
    return [Text(("▶ " if selected else "  ") + view.name, style="bold" if selected else "",
                 no_wrap=True, overflow="ellipsis"),
            Text(word, style=colour, no_wrap=True, overflow="ellipsis"),
            Text(_number(emotion.get("valence"), "+.2f"), style="cyan"),
            Text(_number(emotion.get("arousal"), "+.2f"), style="magenta"),
            Text(_number(level, ".0f")),
            Text(_number(late, "d"), style="bold red" if isinstance(late, int) and late > 0 else ""),
            Text(_number(view.missed, "d"), style="bold red" if view.missed else ""),
            Text(f"{view.age:.1f} s" if view.age < 100 else f"{view.age / 60:.0f} min",
                 style="bold red" if stale else "")]


def stream_table(views: list, index: int, rows: int, stale_s: float, colours: dict) -> RenderableType:
    """Every stream in one line each (a window of `rows` lines around the
    selected one when there are more), and how many are out of view."""
    first = min(max(0, index - rows // 2), max(0, len(views) - rows))
    shown = views[first:first + rows]
    table = Table(box=None, padding=(0, 1), expand=True, header_style="bold")
    table.add_column("stream", ratio=1, no_wrap=True, overflow="ellipsis", min_width=12)
    table.add_column("mood", max_width=14, no_wrap=True, overflow="ellipsis")
    for name in ("val", "aro", "dBFS", "late", "missed", "age"):
        table.add_column(name, justify="right", no_wrap=True)
    for offset, view in enumerate(shown):
        table.add_row(*_row(view, first + offset == index, stale_s, colours),
                      style="reverse" if first + offset == index else "")
    hidden = len(views) - len(shown)
    hint = f" {first} above, {hidden - first} below · ↑/↓ selects" if hidden else " ↑/↓ (j/k, Tab) selects"
    more = Text(hint, style="grey50", no_wrap=True, overflow="ellipsis")
    return Group(table, more)


def overview(views: list, height: int, selection: Selection | None, panel, least_panel_h: int,
             stale_s: float, colours: dict, subtitle: str | None) -> Layout:
    """The table of all `views` above `panel(view)`, the selected stream in
    full, drawn to the rest of the screen (at least `least_panel_h` rows)."""
    index = (selection or Selection()).resolve([view.name for view in views])
    table_h = max(TABLE_CHROME + 1, min(len(views) + TABLE_CHROME, height - least_panel_h))
    rows = max(1, table_h - TABLE_CHROME)
    table = Panel(stream_table(views, index, rows, stale_s, colours), title=f"{len(views)} streams",
                  title_align="left", subtitle=Text(subtitle) if subtitle else None, subtitle_align="right",
                  height=table_h, padding=(0, 0))
    layout = Layout()
    layout.split_column(Layout(table, size=table_h), Layout(panel(views[index])))
    return layout
