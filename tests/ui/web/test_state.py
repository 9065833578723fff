"""The web wall's state (rt_mer.ui.web.state): bounded streams and points,
history thinned, what browsers get checked and short."""
from __future__ import annotations

import json
import math

import pytest

from support.wire import mood, web_emotion as emotion, web_status as status

pytest.importorskip("starlette", reason="rt-mer web needs the [web] extra")
pytest.importorskip("uvicorn", reason="rt-mer web needs the [web] extra")


from rt_mer.ui.web import WallState  # noqa: E402
from rt_mer.ui.web.state import History  # noqa: E402


def test_wall_state_keeps_at_most_max_streams_and_points():
    state = WallState(max_streams=3, history_points=5)
    gone = []
    for i in range(5):
        for seq in range(8):
            update = state.update(emotion(f"s{i}", seq, 0.1 * seq, -0.2, wall=1000.0 + seq))
            gone += update[2]
    assert list(state.streams) == ["s2", "s3", "s4"] and gone == ["s0", "s1"] and state.evicted == 2
    snapshot = state.snapshot("s4")["streams"][0]
    assert [row[0] for row in snapshot["history"]] == [1003.0, 1004.0, 1005.0, 1006.0, 1007.0]   # the newest 5
    assert snapshot["history"][-1][-1] == mood(0.7, -0.2)
    # a status heard refreshes a stream: it is no longer the next to go
    state.update(status("s2", 0))
    state.update(emotion("s5", 0, 0.0, 0.0))
    assert list(state.streams) == ["s4", "s2", "s5"]


def test_history_thins_to_the_newest_and_oldest_points():
    history = History(10)
    for i in range(25):
        history.append((float(i), i, 0.0, 0.0, 1, math.nan), "calm")
    rows = history.points()
    assert [row[0] for row in rows] == list(range(15, 25)) and rows[0][5] is None     # NaN -> null for JSON
    thinned = history.points(most=4)
    assert len(thinned) == 4 and thinned[0][0] == 15 and thinned[-1][0] == 24
    assert [row[0] for row in history.points(since_wall=22)] == [22, 23, 24]


def test_what_browsers_get_is_checked_and_short():
    state = WallState()
    compact, detail, _ = state.update(emotion("a", 0, 0.5, 0.5, explain=True))
    assert "drivers" not in json.loads(compact) and set(json.loads(detail)["drivers"]) == {"valence", "arousal"}
    assert len(json.loads(detail)["shares"]["valence"]) == 12                          # 12 pitch classes, not 12x16
    wire = json.loads(state.update(status("a", 0, overflows="many", late_windows=True, engine="x" * 1000,
                                          latency_ms={"p50": [1], "p99": {"total": 7.5}},
                                          scheduling=5))[0])
    assert wire["overflows"] is None and wire["late_windows"] is None and len(wire["engine"]) == 160
    assert wire["p50_ms"] is None and wire["p99_ms"] == 7.5 and wire["real_time"] is None and wire["scheduling"] is None
