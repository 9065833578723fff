"""`--explain`: the drivers and the harmony map in the messages of a live
run, and the dashboard's "what drives it" panel: what it draws from a
message, the same in process and remote, and in a real terminal under tmux
from `rt-mer demo --explain` and from `rt-mer dash` on a live publisher."""
import io
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from rich.console import Console

from music import chord_music, write
from rt_mer.dsp.frontend import bin_frequencies
from rt_mer.inference import open_engine
from rt_mer.contract import DRIVERS, WINDOW_SHAPE
from rt_mer.publish import decode, encode
from rt_mer.stream.analyzer import StreamAnalyzer
from rt_mer.stream.offline import analyze_file
from rt_mer.ui import DashboardState
from rt_mer.ui.panels import BAR_GAP, BAR_HALF, EXPLAIN_W, LABEL_W, PITCH_NAMES, explanation
from test_dashboard import emotion, screen, status
from test_live import free_endpoint, read_jsonl

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


def logit(value):
    return np.log((1 + value) / (1 - value))


@pytest.mark.slow
def test_live_run_publishes_drivers_that_add_up_to_its_prediction(tmp_path):
    """`rt-mer run --explain`: every emotion message carries the drivers and
    the harmony map; they equal offline analysis, the drivers sum to the
    prediction's logit (the same bias in every window) and the map's mean
    is the harmony and key terms. Without --explain, neither is sent."""
    song = write(tmp_path / "song.wav", chord_music(12, 16000, 1, seed=5), 16000)
    records = {}
    for flag in ("--explain", None):
        records[flag] = tmp_path / f"{flag or 'plain'}.jsonl"
        result = subprocess.run([sys.executable, "-m", "rt_mer.cli", "run", "--no-dash", "--file", str(song),
                                 "--pub", free_endpoint(), "--record", str(records[flag]), *[flag] * bool(flag)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    live = [m for m in read_jsonl(records["--explain"]) if m["type"] == "emotion"]
    offline = analyze_file(song)
    assert len(live) == len(offline.valence) > 3
    drivers = np.array([[list(m["drivers"][axis].values()) for axis in ("valence", "arousal")] for m in live])
    assert all(list(m["drivers"]["arousal"]) == list(DRIVERS) for m in live)
    np.testing.assert_allclose(drivers, offline.drivers, atol=2e-3)
    raw = np.array([[m["valence_raw"], m["arousal_raw"]] for m in live])
    bias = logit(raw) - drivers.sum(axis=2)
    assert np.ptp(bias, axis=0).max() < 0.01, bias                     # a constant: the heads' bias
    maps = np.array([[m["explanation"][axis] for axis in ("valence", "arousal")] for m in live])
    assert maps.shape[1:3] == (2, 12) and maps.shape[3] == offline.explanation.shape[3]
    np.testing.assert_allclose(maps.mean(axis=(2, 3)), drivers[:, :, 0] + drivers[:, :, 1], atol=2e-3)
    plain = [m for m in read_jsonl(records[None]) if m["type"] == "emotion"]
    assert plain and not any("drivers" in m or "explanation" in m for m in plain)


def panel(text):
    """The lines of the explanation panel on a captured screen."""
    return [line for line in text.splitlines() if any(f"{name} " in line for name in PANEL_ROWS[1:-1])]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed: no real terminal to draw in")
@pytest.mark.parametrize("where", ["in process", "remote"])
def test_explanation_in_a_real_terminal(tmp_path, where):
    """`rt-mer demo --explain` draws the panel at 80x24; so does `rt-mer
    dash` subscribed to a headless `rt-mer demo --explain`; it changes as
    the music goes on."""
    endpoint = free_endpoint()
    demo = [sys.executable, "-m", "rt_mer.cli", "demo", "--explain", "--hop", "0.25", "--pub", endpoint]
    publisher = None
    if where == "remote":
        publisher = subprocess.Popen([*demo, "--no-dash"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        command = [sys.executable, "-m", "rt_mer.cli", "dash", endpoint]
    else:
        command = demo
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]                # a private server
    errors = tmp_path / "stderr.txt"
    shell = f"{shlex.join(command)} 2>{shlex.quote(str(errors))}; sleep 30"      # the pane outlives a crash

    def capture():
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "explain"], capture_output=True, text=True).stdout

    try:
        subprocess.run([*tmux, "new-session", "-d", "-s", "explain", "-x", "80", "-y", "24", shell], check=True,
                       env={**os.environ, "TERM": "xterm-256color"})
        deadline = time.monotonic() + 60
        first = capture()
        while len(panel(first)) < len(DRIVERS) and time.monotonic() < deadline:
            time.sleep(0.5)
            first = capture()
        assert len(panel(first)) == len(DRIVERS), f"no panel on screen:\n{first}\n{errors.read_text()}"
        for name in ("drives", "valence", "arousal", "notes    A  A# B  C  C# D  D# E  F  F# G  G#", "●"):
            assert name in first, name
        assert len(first.rstrip("\n").splitlines()) <= 24 and max(map(len, first.splitlines())) <= 80
        second = first
        while panel(second) == panel(first) and time.monotonic() < deadline:
            time.sleep(0.5)
            second = capture()
        assert panel(second) != panel(first), second                    # updated as the music goes on
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        if publisher:
            publisher.terminate()
            assert publisher.wait(10) is not None
