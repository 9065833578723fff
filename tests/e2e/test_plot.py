"""`rt-mer plot` end to end on `rt-mer run --record` recordings and
analyze CSVs: PNG, SVG and PDF checked (size, not blank, panels); bad inputs
are one line."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import xml.etree.ElementTree as ElementTree

import pytest

from support.files import image, panel_rows
from support.music import windows_in
from support.processes import CLI, one_error_line, rt_mer
from support.wire import free_endpoint

pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")

from rt_mer.dsp.frontend import WINDOW_SECONDS  # noqa: E402
from rt_mer.ui import plot  # noqa: E402


@pytest.fixture(scope="module")
def recording(music):
    """A live run of both files, every message recorded: two streams."""
    record = music[0].parent / "live.jsonl"
    result = subprocess.run([*CLI, "run", "--no-dash", "--hop", "1",
                             *(arg for path in music for arg in ("--file", str(path))),
                             "--pub", free_endpoint(), "--record", str(record)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return record


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


def test_without_matplotlib_it_says_how_to_install_it(analysis, tmp_path):
    hidden = tmp_path / "hidden"                     # shadows the installed package, as if absent
    (hidden / "matplotlib").mkdir(parents=True)
    (hidden / "matplotlib" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'matplotlib'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    line = one_error_line(rt_mer("plot", analysis, "-o", tmp_path / "x.png", env=env))
    assert line == "rt-mer: error: rt-mer plot needs matplotlib: pip install 'rt-mer[plot]'"
