"""`rt-mer plot` end to end: real `rt-mer analyze` CSVs and `rt-mer run
--record` recordings, drawn as PNG, SVG and PDF, and the images checked
(size, not blank, panels); bad inputs are one line."""
import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from music import chord_music, windows_in, write
from test_cli import one_error_line, rt_mer
from test_live import free_endpoint

pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")
from PIL import Image  # noqa: E402 (matplotlib's own dependency)

from rt_mer.dsp.frontend import WINDOW_SECONDS  # noqa: E402
from rt_mer.ui import plot  # noqa: E402


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plot")
    return (write(folder / "first.wav", chord_music(12, 22050, 1, seed=31), 22050),
            write(folder / "second.flac", chord_music(10, 16000, 2, seed=32), 16000))


@pytest.fixture(scope="module")
def analysis(music):
    """`rt-mer analyze` of both files into one CSV."""
    out = music[0].parent / "va.csv"
    result = rt_mer("analyze", "--quiet", *music, "--out", out, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def recording(music):
    """A live run of both files, every message recorded: two streams."""
    record = music[0].parent / "live.jsonl"
    result = subprocess.run([sys.executable, "-m", "rt_mer.cli", "run", "--no-dash", "--hop", "1",
                             *(arg for path in music for arg in ("--file", str(path))),
                             "--pub", free_endpoint(), "--record", str(record)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return record


def image(path):
    """The PNG as greyscale pixels, 0-255."""
    with Image.open(path) as picture:
        return np.asarray(picture.convert("L"), dtype=float)


def panel_rows(pixels):
    """The plane panels found in the image: runs of rows where a long dark
    horizontal frame line crosses the right third (each plane's top and
    bottom edge), two per panel."""
    right = pixels[:, pixels.shape[1] * 2 // 3:]
    dark_rows = np.flatnonzero((right < 80).sum(axis=1) > right.shape[1] * 0.5)
    runs = np.split(dark_rows, np.flatnonzero(np.diff(dark_rows) > 1) + 1) if len(dark_rows) else []
    return len(runs) // 2


def test_an_analyze_csv_becomes_one_panel_per_file(analysis, music, tmp_path):
    out = tmp_path / "set.png"
    result = rt_mer("plot", analysis, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{out}: 2 panel(s): first.wav (va.csv), second.flac (va.csv)"
    pixels = image(out)
    inches = plot.PAGE_WIDTH, plot.LEGEND_HEIGHT + 2 * plot.SECTION_HEIGHT
    assert pixels.shape == (round(inches[1] * plot.DPI), round(inches[0] * plot.DPI))
    assert inches[1] <= 11.0                                       # fits A4 and Letter
    assert pixels.std() > 30 and (pixels < 50).mean() > 0.01       # drawn, not blank
    assert panel_rows(pixels) == 2
    # what is drawn is the CSV: window centres, the values as written
    rows = [r for r in csv.DictReader(analysis.open()) if r["file"] == str(music[0])]
    first = plot.read_trajectories(analysis)[0]
    assert first.time == pytest.approx([(float(r["t_start"]) + float(r["t_end"])) / 2 for r in rows])
    assert first.valence == pytest.approx([float(r["valence"]) for r in rows])
    assert list(first.quadrant) == [int(r["quadrant"]) for r in rows]


@pytest.mark.slow
def test_a_recording_becomes_one_panel_per_stream(recording, tmp_path):
    out = tmp_path / "live.svg"
    result = rt_mer("plot", recording, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{out}: 2 panel(s): first (live.jsonl), second (live.jsonl)"
    assert ElementTree.parse(out).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    messages = [json.loads(line) for line in recording.read_text().splitlines()]
    emotions = [m for m in messages if m["type"] == "emotion" and m["stream"] == "second"]
    assert len(emotions) == windows_in(10, 1.0) and len(messages) > len(emotions) * 2     # status skipped
    second = plot.read_trajectories(recording)[1]
    assert second.valence == pytest.approx([m["valence"] for m in emotions])      # the smoothed values
    assert second.time == pytest.approx([m["t"] - WINDOW_SECONDS / 2 for m in emotions])   # window centres
    assert second.window == WINDOW_SECONDS


@pytest.mark.slow
def test_a_recording_from_another_window_length_is_placed_by_its_own(recording, tmp_path):
    """The window comes from the recording's status messages, not from the
    model installed now: an older 8 s recording keeps its times."""
    older = tmp_path / "older.jsonl"
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    older.write_text("".join(json.dumps({**m, "window_s": 8.0} if m["type"] == "status" else m) + "\n"
                             for m in lines))
    emotions = [m for m in lines if m["type"] == "emotion" and m["stream"] == "first"]
    first = plot.read_trajectories(older)[0]
    assert first.window == 8.0 and first.time[-1] == pytest.approx(emotions[-1]["t"] - 4.0)


def test_black_and_white_cues_and_the_layout_of_a_section(analysis):
    figure, = plot.figures(plot.read_trajectories(analysis))
    sections = figure.subfigs
    assert len(sections) == 2 and sections[0]._suptitle.get_text() == "first.wav (va.csv)"
    series, band, plane, colourbar = sections[1].axes
    valence, arousal = series.get_lines()[:2]
    assert valence.get_linestyle() != arousal.get_linestyle()                   # not colour alone
    assert {text.get_text() for text in plane.texts} == {"1 happy", "2 tense", "3 sad", "4 calm"}
    assert colourbar.get_ylabel() == "time"
    hatches = [hatch for _, _, hatch in plot.QUADRANTS.values()]
    assert len(set(hatches)) == 4                                               # every quadrant its own pattern
    shown = set(plot.read_trajectories(analysis)[1].quadrant)
    assert {collection.get_hatch() or "" for collection in band.collections} == \
        {plot.QUADRANTS[number][2] for number in shown}


def test_a_path_through_every_corner_covers_no_quadrant_name(tmp_path):
    """The quadrant names sit outside the plane, clear of the frame, the
    path, the start and end markers (which may overhang the frame) and the
    tick labels, even for a path that visits all four corners."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox
    corners = [(0.99, 0.99), (-1, 1), (-0.99, -0.99), (1, -1), (0.98, 0.99)]
    csv_path = tmp_path / "corners.csv"
    csv_path.write_text("file,t_start,t_end,valence,arousal,quadrant,mood\n" + "".join(
        f"c.wav,{i},{i + 4},{v},{a},{1 if v >= 0 <= a else 2 if a >= 0 else 3 if v < 0 else 4},x\n"
        for i, (v, a) in enumerate(corners)))
    figure, = plot.figures(plot.read_trajectories(csv_path))
    renderer = FigureCanvasAgg(figure).get_renderer()
    plane = figure.subfigs[0].axes[2]
    reach = plot.MARKER_REACH * figure.dpi / 72                     # points to pixels
    frame = plane.get_window_extent(renderer)
    covered = Bbox.from_extents(frame.x0 - reach, frame.y0 - reach, frame.x1 + reach, frame.y1 + reach)
    ticks = [label.get_window_extent(renderer) for label in plane.get_xticklabels() + plane.get_yticklabels()]
    names = {text.get_text(): text.get_window_extent(renderer) for text in plane.texts}
    assert set(names) == {"1 happy", "2 tense", "3 sad", "4 calm"}
    whole = figure.bbox
    for name, box in names.items():
        assert not box.overlaps(covered), name
        assert not any(box.overlaps(tick) for tick in ticks), name
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, name


@pytest.mark.slow
def test_several_inputs_fill_pages(analysis, recording, tmp_path):
    inputs = (analysis, recording, analysis)                          # 6 sections: 4 on a page
    out = tmp_path / "all.pdf"
    result = rt_mer("plot", *inputs, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{out}: 6 panel(s) on 2 pages: first.wav (va.csv), ")
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page ") == 2
    result = rt_mer("plot", *inputs, "-o", tmp_path / "all.png")
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == \
        [str(tmp_path / "all-1.png"), str(tmp_path / "all-2.png")]
    assert [panel_rows(image(tmp_path / name)) for name in ("all-1.png", "all-2.png")] == [4, 2]
    assert image(tmp_path / "all-1.png").shape[0] / plot.DPI <= 11.0


@pytest.mark.slow
def test_a_recording_cut_off_mid_line_is_still_drawn(recording, tmp_path):
    cut = tmp_path / "cut.jsonl"
    cut.write_text(recording.read_text() + recording.read_text()[:60])    # a killed writer's half line
    result = rt_mer("plot", cut, "-o", tmp_path / "cut.png")
    assert result.returncode == 0 and "2 panel(s)" in result.stdout, result.stderr


@pytest.mark.slow
def test_bad_inputs_and_outputs_are_one_line(analysis, recording, tmp_path):
    header = "file,t_start,t_end,valence,arousal,quadrant,mood\n"
    lines = recording.read_text().splitlines()
    files = {
        "empty.csv": "",
        "summary.csv": "file,valence,arousal,quadrant,mood\nsong.flac,0.1,0.2,1,happy\n",
        "range.csv": header + "song.flac,0,8,1.5,0.2,1,happy\n",
        "word.csv": header + "song.flac,0,8,0.1,loud,1,happy\n",
        "short.csv": header + "song.flac,0,8\n",
        "status.jsonl": "\n".join(line for line in lines if '"status"' in line) + "\n",
        "bad.jsonl": "\n".join([lines[0], '{"v": 1, "type": "emotion"}', *lines[1:]]) + "\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "song.wav").write_bytes(open(analysis.parent / "first.wav", "rb").read())
    (tmp_path / "data.png").write_text(analysis.read_text())         # a CSV named like the image asked for
    (tmp_path / "link.png").symlink_to(tmp_path / "data.png")
    os.mkfifo(tmp_path / "pipe.csv")
    cases = [
        (["data.png"], "data.png", "-o data.png would overwrite the input data.png"),
        (["data.png"], "link.png", "-o link.png would overwrite the input data.png"),
        (["pipe.csv"], "x.png", "pipe.csv: a FIFO (named pipe), not a regular file"),
        (["missing.csv"], "x.png", "missing.csv: no such file"),
        (["empty.csv"], "x.png", "empty.csv: empty"),
        (["song.wav"], "x.png", "song.wav: not an rt-mer CSV (rt-mer analyze --out) or JSONL recording"),
        (["summary.csv"], "x.png", "summary.csv: not an rt-mer CSV (rt-mer analyze --out) or JSONL recording "
                                   "(rt-mer run --record): no column t_start, t_end"),
        (["range.csv"], "x.png", "range.csv line 2: CSV field 'valence' is 1.5, outside [-1, 1]"),
        (["word.csv"], "x.png", "word.csv line 2: arousal is not a number: 'loud'"),
        (["short.csv"], "x.png", "short.csv line 2: valence is missing"),
        (["status.jsonl"], "x.png", "status.jsonl: no emotion messages"),
        (["bad.jsonl"], "x.png", "bad.jsonl line 2: emotion field 'stream' missing or not str"),
        ([str(analysis)], "x.jpg", "x.jpg: unknown image type '.jpg'; name it .png, .svg or .pdf"),
        ([str(analysis)], "x", "x: no image type"),
        ([str(analysis)], "no/such/folder/x.png", "no/such/folder/x.png: cannot write (No such file or directory)"),
    ]
    for inputs, out, message in cases:
        line = one_error_line(rt_mer("plot", *inputs, "-o", out, cwd=tmp_path))
        assert line.startswith(f"rt-mer: error: {message}"), (inputs, line)
    assert not (tmp_path / "x.png").exists()
    assert (tmp_path / "data.png").read_text() == analysis.read_text()
    line = one_error_line(rt_mer("plot", analysis))
    assert line == "rt-mer: error: plot needs -o/--output FILE.png, .svg or .pdf (see rt-mer plot --help)"


def test_without_matplotlib_it_says_how_to_install_it(analysis, tmp_path):
    hidden = tmp_path / "hidden"                     # shadows the installed package, as if absent
    (hidden / "matplotlib").mkdir(parents=True)
    (hidden / "matplotlib" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'matplotlib'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    line = one_error_line(rt_mer("plot", analysis, "-o", tmp_path / "x.png", env=env))
    assert line == "rt-mer: error: rt-mer plot needs matplotlib: pip install 'rt-mer[plot]'"
