"""The "what drives it" panel (rt_mer.ui.panels): signed bars, the heat
strip, a legend without colour, narrow terminals, the same in process and
remote."""
from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from rt_mer.contract import DRIVERS, WINDOW_SHAPE
from rt_mer.dsp.frontend import bin_frequencies
from rt_mer.inference import open_engine
from rt_mer.publish import decode, encode
from rt_mer.stream.analyzer import StreamAnalyzer
from rt_mer.ui import DashboardState
from rt_mer.ui.panels import BAR_GAP, BAR_HALF, EXPLAIN_W, LABEL_W, PITCH_NAMES, explanation

from support.dash import emotion, screen, status
from support.music import chord_music

PANEL_ROWS = ("drives", *DRIVERS, "notes")


def explained(drivers, shares, steps=16):
    """The message fields: drivers {axis: (five terms)}, and a harmony map
    whose time mean over 12 gives each pitch class `shares[axis]`."""
    return {"drivers": {axis: dict(zip(DRIVERS, terms)) for axis, terms in drivers.items()},
            "explanation": {axis: [[12 * share] * steps for share in shares[axis]] for axis in shares}}


def test_pitch_class_0_is_the_front_ends_lowest_note_a():
    assert bin_frequencies()[0] == 55.0                       # A1
    assert PITCH_NAMES == ("A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#")


def test_panel_draws_signed_bars_and_the_heat_strip_at_80x24():
    state = DashboardState()
    state.update(status("mic", 0))
    shares = {"valence": [0.0] * 12, "arousal": [0.0] * 12}
    shares["valence"][3], shares["valence"][7], shares["arousal"][0] = 0.3, -0.1, -0.3    # C ++, E -, A --
    state.update(emotion("mic", 0, 8.0, 0.4, -0.2, **explained(
        {"valence": (1.0, -0.5, 0.125, 2.5, -3.0), "arousal": (0.0, 0.0, -0.125, 0.0, 0.0)}, shares)))
    text = screen(state)
    lines = text.splitlines()
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    assert "drives   -2   valence   +2    -2   arousal   +2" in text
    # label, valence bar (8 cells, centre, 8 cells), gap, arousal bar: right pushes up, left down
    zero, gap = "        │        ", " " * BAR_GAP
    expected = {"harmony": "        │████    " + gap + zero,           # +1: half the scale
                "key": "      ██│        " + gap + zero,               # -0.5
                "register": "        │▌       " + gap + "       ▐│        ",   # +-0.125: half a cell
                "timbre": "        │███████>" + gap + zero,             # past +2: clipped, marked
                "rhythm": "<███████│        " + gap + zero}             # past -2
    for name in DRIVERS:
        assert f"{name:9}{expected[name]}" in text, name
    assert "notes    A  A# B  C  C# D  D# E  F  F# G  G#" in text
    assert "valence  ·  ·  ·  ++ ·  ·  ·  -  ·  ·  ·  ·" in text
    assert "arousal  -- ·  ·  ·  ·  ·  ·  ·  ·  ·  ·  ·" in text
    assert "drives" not in screen(DashboardState())                           # only with an explanation


def test_panel_without_colour_has_a_legend_and_bars_apart():
    """NO_COLOR or a terminal without colour: the glyphs alone must read.
    The heat strip's cells are explained under it, and a valence bar full
    to the right stays clear of an arousal bar full to the left."""
    state = DashboardState()
    shares = {"valence": [0.3, 0.1, 0.0] * 4, "arousal": [-0.3, -0.1, 0.0] * 4}
    state.update(emotion("mic", 0, 8.0, 0.4, -0.2, **explained(
        {"valence": (2.0, 3.0, 0, 0, 0), "arousal": (-2.0, -3.0, 0, 0, 0)}, shares)))
    console = Console(record=True, no_color=True, width=EXPLAIN_W, file=io.StringIO())
    console.print(explanation(state.snapshot()[0]))
    lines = console.export_text().splitlines()
    assert all(len(line.rstrip()) <= EXPLAIN_W for line in lines)      # nothing cropped at the panel's width
    legend = lines[lines.index(next(line for line in lines if line.startswith("arousal  --"))) + 1]
    for glyph, meaning in (("++ +", "raise"), ("-- -", "lower"), ("·", "little")):
        assert glyph in legend and meaning in legend, legend
    assert BAR_GAP >= 3                  # two spaces read as one bar with a hole in it
    for name, valence_end, arousal_start in (("harmony", "█", "█"), ("key", ">", "<")):
        row = next(line for line in lines if line.startswith(name))
        between = row[LABEL_W + 2 * BAR_HALF:][:BAR_GAP + 2]     # the last valence cell to the first arousal one
        assert between == valence_end + " " * BAR_GAP + arousal_start, (name, row)


def test_panel_steps_back_where_it_does_not_fit_and_skips_malformed_fields():
    state = DashboardState()
    fields = explained({"valence": (1,) * 5, "arousal": (1,) * 5}, {"valence": [0.1] * 12, "arousal": [0.1] * 12})
    state.update(emotion("mic", 0, 8.0, 0.4, 0.2, **fields))
    assert "--explain: enlarge the terminal" in screen(state, 60, 16)
    state.update(status("mic", 1, out_of_range=2))
    smallest = screen(state, 56, 10)                       # MIN_W x MIN_H: the counters win over the notice
    assert all(counter in smallest for counter in ("out of range 2", "overflows 3", "dropped 2", "late 1", "missed 0"))
    full = screen(state, 100, 34).splitlines()
    assert len(full) == 34 and any("╭─" in line and "what drives it" in line for line in full)   # framed
    state.update(emotion("mic", 1, 8.5, 0.4, 0.2, drivers="junk", explanation={"valence": [[1, "x"]] * 12}))
    text = screen(state)                                   # in process nothing was validated: no panel, no crash
    assert "drives" not in text and "valence +0.40" in text


@pytest.fixture(scope="module")
def engine():
    return open_engine("onnxruntime")


def test_panel_is_the_same_in_process_and_remote(engine):
    """In process the dashboard takes the typed message; remote, what a
    subscriber decodes: one screen, for both codecs."""
    analyzer = StreamAnalyzer("mic", 16000)
    due = analyzer.push(chord_music(10, 16000, seed=3)[:, 0])
    windows = np.empty((len(due), *WINDOW_SHAPE), np.float32)
    for i, window in enumerate(due):
        analyzer.window(window, windows[i])
    prediction = engine.infer(windows)
    message = analyzer.emit(due[-1], float(prediction.valence[-1]), float(prediction.arousal[-1]),
                            prediction.explanation[-1], drivers=prediction.drivers[-1])
    screens = []
    for received in (message, decode(encode(message.to_dict(), "json"), "json"),
                     decode(encode(message.to_dict(), "msgpack"), "msgpack")):
        state = DashboardState()
        state.update(received)
        screens.append(screen(state))
    assert screens[0] == screens[1] == screens[2]
    assert all(name in screens[0] for name in PANEL_ROWS)
