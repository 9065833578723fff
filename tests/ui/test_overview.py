"""The overview of many streams (rt_mer.ui.overview): rows, scrolling, stale
and ended streams."""
from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from rt_mer.ui import DashboardState, render
from rt_mer.ui.overview import Selection

from support.dash import emotion, mood, status


def shops(count):
    state = DashboardState()
    for i in range(count):
        name = f"shop-{i}/line-in"
        state.update(status(name, 0, late_windows=i % 3))
        state.update(emotion(name, 0, 3.0, -0.9 + 0.04 * i, 0.5 - 0.03 * i))
    return state


def screen(state, width=80, height=24, selection=None):
    console = Console(record=True, width=width, height=height, force_terminal=True, color_system=None,
                      file=io.StringIO())
    console.print(render(state, width, height, selection))
    return console.export_text()


def table_rows(text):
    return [line for line in text.splitlines() if "/line-in " in line and "╭─" not in line]


@pytest.mark.parametrize("width,height", [(80, 24), (120, 40), (200, 60)])
def test_every_stream_gets_a_row_and_the_newest_is_shown_in_full(width, height):
    state = shops(5 if height == 24 else 9 if height == 40 else 30)
    count = len(state.snapshot())
    text = screen(state, width, height)
    lines = text.splitlines()
    assert len(lines) == height and all(len(line) == width for line in lines)
    rows = table_rows(text)
    assert [row.split()[1 if "▶" not in row else 2] for row in rows] == [f"shop-{i}/line-in" for i in range(count)]
    newest = count - 1
    v, a = -0.9 + 0.04 * newest, 0.5 - 0.03 * newest
    selected = [row for row in rows if "▶" in row]
    assert len(selected) == 1 and f"shop-{newest}/line-in" in selected[0]
    assert f"{v:+.2f}" in selected[0] and f"{a:+.2f}" in selected[0] and mood(v, a) in selected[0]
    assert f"╭─ shop-{newest}/line-in · running" in text              # its full panel, below the table
    assert f"valence {v:+.2f}" in text and "missed 0" in text
    late = [row.split()[-5] for row in rows]                          # the late windows column
    assert late == [str(i % 3) for i in range(count)]


def test_more_streams_than_rows_scroll_around_the_selection():
    state = shops(40)
    selection = Selection()
    text = screen(state, selection=selection)
    assert len(table_rows(text)) == 10 and "30 above, 0 below" in text
    selection.move(-20)                                               # from the newest (39) to 19
    text = screen(state, selection=selection)
    rows = table_rows(text)
    assert "▶ shop-19/line-in" in text and "╭─ shop-19/line-in" in text
    assert any("shop-19/" in row for row in rows) and "14 above, 16 below" in text
    state.update(emotion("shop-40/line-in", 0, 3.0, 0.1, 0.1))        # a newcomer does not steal a chosen view
    assert "╭─ shop-19/line-in" in screen(state, selection=selection)


def test_two_streams_keep_their_panels():
    text = screen(shops(2))
    assert "streams ─" not in text and text.count("╭─ shop-") == 2


def test_stale_and_ended_streams_are_flagged(monkeypatch):
    state = shops(4)
    state.update(status("shop-1/line-in", 1, state="ended"))
    future = time.monotonic() + 30
    monkeypatch.setattr(time, "monotonic", lambda: future)
    rows = table_rows(screen(state))
    assert "ended" in rows[1] and rows[0].split()[-3:-1] == ["30.0", "s"]
