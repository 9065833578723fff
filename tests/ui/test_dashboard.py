"""The Rich dashboard (rt_mer.ui.dashboard): state bookkeeping, what a render
shows at 80x24 and with several streams, bounded tables, the remote loop."""
from __future__ import annotations

import io
import re
import threading
import time

import pytest
from rich.console import Console

from rt_mer.publish import Publisher, Subscriber
from rt_mer.ui import DashboardState, dash, render
from rt_mer.ui.dashboard import MAX_STREAMS
from rt_mer.ui.panels import plane

from support import wire
from support.dash import emotion, mood, screen, status
from support.wire import free_endpoint, handshake, raw_publisher, send

HAPPY = " ".join(mood(0.42, 0.31).upper())     # the big spaced capitals of scripted()'s last point


def scripted(stream="mic", last=(0.42, 0.31), seq_gap=0):
    """A status, then 30 s of emotion messages circling to `last`."""
    state = DashboardState()
    state.update(status(stream, 0))
    for i in range(60):
        v, a = (0.6 - 0.02 * i, -0.5 + 0.015 * i) if i < 59 else last
        state.update(emotion(stream, i + (seq_gap if i >= 30 else 0), 3.0 + 0.5 * i, v, a))
    return state


def marker(text):
    """(row, column) of the current point, the only '●' on screen."""
    [(row, col)] = [(r, line.index("●")) for r, line in enumerate(text.splitlines()) if "●" in line]
    return row, col


def test_one_stream_shows_its_values_at_80x24():
    text = screen(scripted(seq_gap=3))
    lines = text.splitlines()
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    assert lines[0].startswith("╭─ mic · running · t 32.5 s")
    assert lines[-1].startswith("╰") and lines[-1].endswith("╯")         # the bottom border is not cut
    assert HAPPY in text and "Q1  +valence +arousal" in text
    assert "valence +0.42" in text and "arousal +0.31" in text
    for name in ("tense", "happy", "sad", "calm", "arousal ↑", "valence →", "last 60 s", "input"):
        assert name in text, name
    assert "engine onnxruntime (no CUDA device)" in text
    assert "window 3 s / hop 0.5 s · latency p50 12.3 ms · p99 25.7 ms" in text
    assert "overflows 3 · dropped 2 · nonfinite 0 · late 1 · missed 3" in text
    assert "RMS   -20.0 dBFS" in text and "peak   -4.0 dBFS" in text and "CLIP" not in text
    # the plane's quadrant names sit in their corners: Q2 top-left, Q1 top-right, Q3/Q4 below
    top = next(line for line in lines if "tense" in line)
    bottom = next(line for line in lines if "sad" in line)
    assert top.index("tense") < top.index("happy") and bottom.index("sad") < bottom.index("calm")
    assert lines.index(top) < lines.index(bottom)


def test_marker_moves_with_valence_and_arousal():
    state = DashboardState()
    state.update(emotion("mic", 0, 3.0, 0.5, 0.5))
    row1, col1 = marker(screen(state))
    state.update(emotion("mic", 1, 3.5, -0.6, -0.5))
    text = screen(state)
    row2, col2 = marker(text)
    assert row2 > row1 and col2 < col1                 # down and left: towards "sad"
    assert " ".join(mood(-0.6, -0.5).upper()) in text


def test_trail_fades_with_age():
    state = DashboardState()
    points = [(-0.9 + 0.15 * i, -0.8 + 0.13 * i) for i in range(12)]
    for i, (v, a) in enumerate(points):
        state.update(emotion("mic", i, 3.0 + i, v, a))
    text = plane(state.snapshot()[0], 35, 17)
    trail = []                                            # (row, grey) of each trail glyph
    for span in text.spans:
        match = re.fullmatch(r"rgb\((\d+),\d+,\d+\)", str(span.style))
        if text.plain[span.start:span.end] in "•·" and match:
            trail.append((text.plain[:span.start].count("\n"), int(match.group(1))))
    greys = [grey for _, grey in sorted(trail, reverse=True)]   # points climb: the oldest is lowest
    assert len(greys) == 11 and greys == sorted(greys) and greys[0] < greys[-1]   # oldest dimmest
    assert text.plain.count("●") == 1


def test_two_streams_get_a_panel_each():
    state = scripted("mic")
    state.update(status("line-in", 0, clipped=4, engine="tensorrt", engine_reason=None))
    state.update(emotion("line-in", 0, 3.0, -0.55, -0.45))
    text = screen(state)
    lines = text.splitlines()
    assert len(lines) == 24
    titles = [line for line in lines if line.startswith("╭─ ")]
    assert [t.split()[1] for t in titles] == ["mic", "line-in"]
    mic, line_in = text.split(titles[1])
    assert mood(0.42, 0.31).upper() in mic and "valence +0.42" in mic and "arousal +0.31" in mic
    assert "engine onnxruntime" in mic
    assert mood(-0.55, -0.45).upper() in line_in and "valence -0.55" in line_in and "arousal -0.45" in line_in
    assert "engine tensorrt" in line_in and "CLIP" in line_in and "CLIP" not in mic
    for panel in (mic, line_in):
        for name in ("tense", "happy", "sad", "calm", "p50 12.3 ms", "p99 25.7 ms", "missed 0"):
            assert name in panel, name


def test_wide_terminal_puts_full_panels_side_by_side():
    state = scripted("a")
    state.update(emotion("b", 0, 3.0, -0.3, 0.7))
    lines = screen(state, 160, 24).splitlines()
    assert lines[0].startswith("╭─ a ") and "╭─ b " in lines[0][80:]
    assert lines[1].count("arousal ↑") == 2 and len(lines) == 24 and all(len(line) == 160 for line in lines)


def test_waiting_warming_and_clip():
    state = DashboardState(source="tcp://127.0.0.1:5556")
    assert "waiting for messages from tcp://127.0.0.1:5556" in screen(state)
    state.update(status("mic", 0, state="warming", peak_dbfs=-0.05))
    text = screen(state)
    assert "warming up" in text and "CLIP" in text and "valence --" in text
    state.update(status("mic", 1, peak_dbfs=-6.0))
    assert "warming up" in screen(state)              # no emotion yet
    state.update(emotion("mic", 0, 3.0, -0.5, 0.6, peak_dbfs=-6.0))
    text = screen(state)
    assert "warming up" not in text and "CLIP" not in text and "Q2  -valence +arousal" in text


def test_history_window_trail_and_missed_messages():
    state = DashboardState()
    for i in range(300):                                  # 150 s at a 0.5 s hop
        state.update(emotion("mic", i + (5 if i >= 100 else 0), 0.5 * i, 0.0, 0.0))
    [view] = state.snapshot()
    assert view.history[-1][0] - view.history[0][0] == 60.0 and len(view.history) == 121
    assert len(view.trail) == 12 and view.missed == 5
    state.update(emotion("mic", 0, 1.0, 0.1, 0.1))        # publisher restarted: not a loss, fresh history
    [view] = state.snapshot()
    assert view.missed == 5 and len(view.history) == 1
    state.update({"type": "emotion"})                      # no stream: ignored, not raised
    state.update(dict(status("mic", 1), latency_ms="junk", window_s=None, overflows="x"))
    assert "p50 --" in screen(state)


def test_rare_counters_show_only_once_they_happen():
    state = DashboardState()
    state.update(status("mic", 0))
    assert "out of range" not in screen(state) and "truncated" not in screen(state)
    state.update(status("mic", 1, out_of_range=2, truncated=1, state="ended"))
    assert "out of range 2" in screen(state) and "truncated 1" in screen(state)


@pytest.mark.parametrize("width, height", [(56, 10), (56, 12), (60, 20), (80, 24)])
def test_a_narrow_terminal_wraps_the_counters_instead_of_hiding_them(width, height):
    state = scripted(seq_gap=3)
    state.update(status("mic", 1, out_of_range=2, truncated=1))
    text = screen(state, width, height)
    lines = text.splitlines()
    assert len(lines) == height and lines[-1].startswith("╰") and lines[-1].endswith("╯")
    for shown in ("out of range 2", "truncated 1", "overflows 3", "dropped 2", "nonfinite 0", "late 1", "missed 3",
                  "p50 12.3 ms", "p99 25.7 ms"):
        assert shown in text, (shown, text)
    assert "…" not in text


def test_the_meter_shows_each_windows_hop_once_windows_come():
    state = DashboardState()
    state.update(status("mic", 0))                     # warming up: the status's second is all there is
    assert "RMS   -18.2 dBFS" in screen(state)
    state.update(emotion("mic", 0, 4.0, 0.1, 0.1))
    assert "RMS   -20.0 dBFS" in screen(state)
    state.update(status("mic", 1, level_dbfs=-30.0, peak_dbfs=-12.0))   # a second's mean would lag the hops
    assert "RMS   -20.0 dBFS" in screen(state) and "peak   -4.0 dBFS" in screen(state)


def test_a_seq_far_ahead_is_a_restart_not_missed_messages():
    state = DashboardState()
    state.update(status("mic", 0))
    for i in range(10):
        state.update(emotion("mic", i, 3.0 + 0.5 * i, 0.1, 0.1))
    state.update(emotion("mic", 10 ** 6, 8.0, 0.1, 0.1))           # valid, but no publisher sent that many
    state.update(emotion("mic", 10 ** 6 + 3, 9.5, 0.1, 0.1))       # then two lost on the way
    [view] = state.snapshot()
    assert view.missed == 2
    assert "missed 2" in screen(state) and "999" not in screen(state)


def test_dash_draws_what_a_real_subscriber_receives():
    endpoint, stop = "inproc://rt-mer-dash-test", threading.Event()
    console = Console(record=True, width=80, height=24, force_terminal=True, color_system=None, file=io.StringIO())

    def shown(text, timeout=60.0):
        deadline = time.monotonic() + timeout
        while text not in console.export_text(clear=False) and time.monotonic() < deadline:
            time.sleep(0.05)
        return text in console.export_text(clear=False)

    with Publisher(endpoint) as publisher, Subscriber(endpoint) as subscriber:
        thread = threading.Thread(target=dash, args=(subscriber, stop, 15.0), kwargs={"console": console})
        thread.start()
        try:
            assert shown(f"waiting for messages from {endpoint}")
            for seq in range(5):                          # a few, in case the subscription is still on its way
                publisher.publish("status", "mic", status("mic", seq))
                publisher.publish("emotion", "mic", dict(emotion("mic", seq, 3.0 + seq, 0.9, 0.9), v=99))
                publisher.publish("emotion", "mic", emotion("mic", seq, 3.0 + seq, 0.42, 0.31))
                time.sleep(0.05)
            assert shown(HAPPY) and shown("valence +0.42") and shown("p99 25.7 ms")
            time.sleep(0.2)                               # everything sent has arrived by now
            assert subscriber.rejected >= 1 and shown(f"{endpoint} · {subscriber.rejected} rejected")
            frames = console.export_text(clear=False)
            assert "valence +0.90" not in frames          # the bad-version message never reached the state
        finally:
            stop.set()
            thread.join(5)
    assert not thread.is_alive()


def test_redraws_only_when_something_changed(monkeypatch):
    """Frames cost CPU: an idle screen is redrawn once a second (its
    staleness note), a busy one on each new message, up to the refresh rate.
    Counted against what happened, not against wall-clock luck: a slow
    machine draws fewer idle frames, never more, and each message is waited
    for until its frame is drawn."""
    from rt_mer.ui import dashboard
    renders = []
    monkeypatch.setattr(dashboard, "render", lambda *args: renders.append(time.monotonic()) or render(*args))
    state, stop = scripted(), threading.Event()
    console = Console(width=80, height=24, force_terminal=True, file=io.StringIO())
    thread = threading.Thread(target=dashboard.run_dashboard, args=(state, stop, 15.0), kwargs={"console": console})
    thread.start()
    try:
        idle_from = time.monotonic()
        time.sleep(1.5)
        idle_seconds = time.monotonic() - idle_from
        idle = sum(t >= idle_from for t in renders)
        for seq in range(100, 115):
            drawn = len(renders)
            state.update(emotion("mic", seq, 0.5 * seq, 0.2, 0.2))
            deadline = time.monotonic() + 10
            while len(renders) == drawn and time.monotonic() < deadline:
                time.sleep(0.005)
            assert len(renders) > drawn, f"message {seq} was never drawn"
    finally:
        stop.set()
        thread.join(5)
    # at most one frame per second boundary crossed (the staleness note), where 15 Hz would have drawn 22
    assert idle <= int(idle_seconds) + 2, idle


class BrokenSubscriber:
    """A subscriber whose socket fails, which a live one cannot be made to do safely."""

    def receive(self, timeout_ms):
        raise ConnectionError("socket closed")


def test_dash_raises_a_broken_subscriber():
    stop = threading.Event()
    console = Console(width=80, height=24, file=io.StringIO())
    with pytest.raises(ConnectionError):
        dash(BrokenSubscriber(), stop, console=console)
    assert stop.is_set()


@pytest.mark.parametrize("scheduling, capture, shown", [
    ("real-time (SCHED_FIFO 1)", "real-time (SCHED_FIFO 2)", "real-time"),
    ("real-time (SCHED_FIFO 1)", "", "real-time"),                      # an input that can wait has no producer
    ("normal: real-time scheduling refused (Operation not permitted)", "", "normal priority"),
    ("real-time (SCHED_FIFO 1)", "normal: real-time scheduling refused (Operation not permitted)", "normal priority")])
def test_the_scheduling_the_latency_ran_under_is_shown(scheduling, capture, shown):
    state = DashboardState()
    state.update(status("mic", 0, scheduling=scheduling, capture_scheduling=capture))
    text = screen(state, width=120)
    assert f"p99 25.7 ms · {shown}" in text and ("normal" in text) == (shown == "normal priority")
    assert "real-time" not in screen(scripted()) and "normal" not in screen(scripted())   # an older publisher: nothing


def test_dashboard_holds_at_most_max_streams_and_says_how_many_it_forgot():
    endpoint, stop = free_endpoint(), threading.Event()
    console = Console(record=True, width=100, height=30, force_terminal=True, color_system=None, file=io.StringIO())
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(pub.send_multipart, sub, stream="first")
        state = DashboardState()
        thread = threading.Thread(target=dash, args=(sub, stop, 15.0), kwargs={"console": console, "state": state})
        thread.start()
        try:
            names = 20 * MAX_STREAMS
            for i in range(names):
                send(pub, wire.status(f"deck{i}", 0))
                if i % 100 == 0:
                    time.sleep(0.02)
            note = f"{names - MAX_STREAMS} streams forgotten"
            deadline = time.monotonic() + 20
            while note not in console.export_text(clear=False) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert note in console.export_text(clear=False)
            assert state.forgotten == names - MAX_STREAMS and len(state.snapshot()) == MAX_STREAMS
            assert [v.name for v in state.snapshot()][-1] == f"deck{names - 1}"
        finally:
            stop.set()
            thread.join(10)


def test_dashboard_keeps_panel_order_and_forgets_the_least_recently_seen():
    state = DashboardState(max_streams=3)
    for name in ("a", "b", "c"):
        state.update(wire.status(name, 0))
    state.update(wire.status("a", 1))                 # "b" is now the least recently seen
    state.update(wire.status("d", 0))
    assert [v.name for v in state.snapshot()] == ["a", "c", "d"] and state.forgotten == 1
    state.update(wire.emotion("a", 0))
    state.update(wire.emotion("a", 3, t=1.5))
    assert state.snapshot()[0].missed == 2        # the seq check works on a kept stream
