"""`rt-mer analyze` end to end: formats, rates, channel counts, bad inputs,
outputs that never overwrite inputs, resume after a stop."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from rt_mer import TruncatedAudio
from rt_mer.dsp.frontend import WINDOW_FRAMES, WINDOW_SECONDS
from rt_mer.inference import EngineError, default_model, open_engine
from rt_mer.stream.offline import analyze_file

from support.files import HEADER, read_csv
from support.music import chord_music, cut_short, windows_in, write
from support.processes import CLI, one_error_line, rt_mer


def run_analyze(*args):
    return rt_mer("analyze", "--quiet", *args, timeout=300)


def test_formats_rates_and_channels(good_files, tmp_path):
    out, summary = tmp_path / "va.csv", tmp_path / "songs.csv"
    result = run_analyze(*good_files, "--out", out, "--summary", summary)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert list(rows[0]) == HEADER
    assert [r["file"] for r in read_csv(summary)] == [str(f) for f in good_files]
    assert list(read_csv(summary)[0]) == ["file", "valence", "arousal", "quadrant", "mood"]
    for path, seconds in zip(good_files, (12, 10, 9, 11, 10, 10)):
        mine = [r for r in rows if r["file"] == str(path)]
        # one window every 0.5 s
        assert len(mine) == windows_in(seconds, 0.5), path
        assert float(mine[0]["t_start"]) == 0.0 and float(mine[0]["t_end"]) == WINDOW_SECONDS
        for r in mine:
            v, a = float(r["valence"]), float(r["arousal"])
            assert -1 <= v <= 1 and -1 <= a <= 1
            assert int(r["quadrant"]) == (1 if v >= 0 and a >= 0 else 2 if a >= 0 else 3 if v < 0 else 4)
            assert r["mood"].isalpha()


def test_directory_argument_and_hop(good_files, tmp_path):
    out = tmp_path / "va.csv"
    result = run_analyze(good_files[0].parent, "--hop", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    files = {r["file"] for r in read_csv(out)}
    assert files == {str(f) for f in good_files}
    ends = [float(r["t_end"]) for r in read_csv(out) if r["file"] == str(good_files[0])]
    assert ends == [float(end) for end in range(int(WINDOW_SECONDS), 13)]       # the first file is 12 s long


def bad_files(folder):
    rate = 22050
    nan = chord_music(10, rate, 1)
    nan[rate * 3:rate * 3 + 5] = np.nan
    truncated = write(folder / "truncated.wav", chord_music(20, rate, 1), rate)
    truncated.write_bytes(truncated.read_bytes()[: len(truncated.read_bytes()) // 2])
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.mp3").write_text("this is not audio\n" * 100)
    return {
        "missing.wav": "no such file",
        "empty.wav": "not a readable audio file",
        "text.mp3": "not a readable audio file",
        truncated.name: "truncated",
        write(folder / "short.wav", chord_music(WINDOW_SECONDS - 1, rate, 1), rate).name:
            f"shorter than one {WINDOW_SECONDS:g} s",
        write(folder / "nan.wav", nan, rate, subtype="FLOAT").name: "NaN or infinite samples at 3.0 s",
        write(folder / "inf.wav", np.full(rate * 9, np.inf, np.float32), rate, subtype="FLOAT").name: "NaN",
        write(folder / "huge.wav", chord_music(10, rate, 1) * 1e30, rate, subtype="FLOAT").name:
            "times full scale at 0.0 s: not audio",
    }


def test_bad_inputs_fail_alone_with_one_line_each(good_files, tmp_path):
    expected = bad_files(tmp_path)
    out, summary = tmp_path / "va.csv", tmp_path / "songs.csv"
    result = run_analyze(good_files[0], *(tmp_path / name for name in expected), good_files[1],
                         "--out", out, "--summary", summary)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("rt-mer: error:")]
    assert len(errors) == len(expected), result.stderr
    for name, reason in expected.items():
        assert any(name in line and reason in line for line in errors), (name, result.stderr)
    assert "Traceback" not in result.stderr
    assert f"{len(expected)} of {len(expected) + 2} files failed" in result.stderr
    # the good files on either side were still analysed and written
    assert {r["file"] for r in read_csv(summary)} == {str(good_files[0]), str(good_files[1])}
    assert {r["file"] for r in read_csv(out)} == {str(good_files[0]), str(good_files[1])}


def decodable_seconds(path):
    """How much of a damaged file decodes: read in small pieces until the decoder gives up."""
    frames = 0
    with soundfile.SoundFile(path) as f:
        try:
            while len(block := f.read(f.samplerate // 10)):
                frames += len(block)
        except (soundfile.LibsndfileError, RuntimeError):
            pass
        return frames / f.samplerate


def test_truncated_files_say_so_and_keep_the_windows_that_decoded(good_files, tmp_path):
    rate = 22050
    music = chord_music(24, rate, 2, seed=6)
    cut = [cut_short(write(tmp_path / f"long{suffix}", music, rate), 0.6) for suffix in (".flac", ".mp3")]
    out, summary = tmp_path / "va.csv", tmp_path / "songs.csv"
    result = run_analyze(cut[0], good_files[0], cut[1], "--out", out, "--summary", summary)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("rt-mer: error:")]
    assert len(errors) == 2 and "2 of 3 files failed" in result.stderr, result.stderr
    rows = read_csv(out)
    for path, error in zip(cut, errors):
        assert str(path) in error and "truncated" in error and "of the 24.0 s its header says" in error
        ends = [float(r["t_end"]) for r in rows if r["file"] == str(path)]
        decoded = decodable_seconds(path)
        assert 8 < decoded < 20 and decoded - 0.5 - 0.1 < max(ends) <= decoded, (decoded, ends)
    assert [r["file"] for r in read_csv(summary)] == [str(good_files[0])]     # a part is no song's summary
    with pytest.raises(TruncatedAudio) as raised:       # public, as the README says
        analyze_file(cut[0])
    assert [f"{t:.3f}" for t in raised.value.trajectory.t_end] == \
        [r["t_end"] for r in rows if r["file"] == str(cut[0])]


def test_corrupt_and_mismatched_models(good_files, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    result = run_analyze(good_files[0], "--model", corrupt)
    assert result.returncode == 2 and "not a usable ONNX model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["spectrogram"], ["valence"])], "other",
                              [helper.make_tensor_value_info("spectrogram", TensorProto.FLOAT, ["batch", 10])],
                              [helper.make_tensor_value_info("valence", TensorProto.FLOAT, ["batch", 10])])
    mismatched = tmp_path / "mismatched.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), mismatched)
    result = run_analyze(good_files[0], "--model", mismatched)
    expected = f"but the front-end makes spectrogram[batch, 6, 252, {WINDOW_FRAMES}]"
    assert result.returncode == 2 and expected in result.stderr

    result = run_analyze(good_files[0], "--model", tmp_path / "absent.onnx")
    assert result.returncode == 2 and "no such model file" in result.stderr


def test_a_fifo_is_refused_not_waited_on(good_files, tmp_path):
    """A named pipe with no writer would block the read for ever: it fails
    alone, saying what it is, and the other files are analysed."""
    os.mkfifo(tmp_path / "pipe.wav")
    result = subprocess.run([*CLI, "analyze", "--quiet", tmp_path / "pipe.wav",
                             good_files[0]], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert f"rt-mer: error: {tmp_path / 'pipe.wav'}: a FIFO (named pipe), not a regular file" in result.stderr
    assert {row.split(",")[0] for row in result.stdout.splitlines()[1:]} == {str(good_files[0])}


def test_bad_options():
    result = run_analyze("x.wav", "--hop", "0.01")
    assert result.returncode == 2 and "hop must be at least" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_output_naming_an_input_is_refused_before_anything_is_written(good_files, tmp_path):
    """--out or --summary that is an input (by name, through a symbolic or
    a hard link), the model or the moods file: one line, exit 2, the input
    untouched."""
    audio = good_files[0]
    before = audio.read_bytes()
    (tmp_path / "link.wav").symlink_to(audio)
    (tmp_path / "hard.wav").hardlink_to(audio)
    moods = tmp_path / "moods.toml"
    moods.write_text('calm = [0.5, -0.5]\nangry = [-0.5, 0.5]\n')
    for args in (["--out", audio], ["--summary", audio, "--out", tmp_path / "va.csv"],
                 ["--out", tmp_path / "link.wav"], ["--out", tmp_path / "hard.wav"],
                 ["--out", moods, "--moods", moods]):
        result = run_analyze(audio, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "would overwrite the" in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert audio.read_bytes() == before and moods.read_text().startswith("calm")
    assert not (tmp_path / "va.csv").exists()
    # a whole folder given as input: a file inside it is an input as well
    result = run_analyze(audio.parent, "--summary", good_files[1], "--out", tmp_path / "va.csv")
    assert result.returncode == 2 and "would overwrite the input" in result.stderr


def test_out_and_summary_naming_one_file_are_refused(good_files, tmp_path):
    for out, summary in ((tmp_path / "x.csv", tmp_path / "x.csv"), (tmp_path / "x.csv", tmp_path / "." / "x.csv"),
                         ("-", "-")):
        result = run_analyze(good_files[0], "--out", out, "--summary", summary)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert "same file" in result.stderr or "both go to standard output" in result.stderr
    assert not (tmp_path / "x.csv").exists()


def start_analyze(*args):
    return subprocess.Popen([*CLI, "analyze", "--quiet", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=120.0):
    """Poll for a condition with a generous timeout (no reliance on speed)."""
    import time
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def many_files(folder, count=16, seconds=12):
    folder.mkdir(exist_ok=True)
    return [write(folder / f"song{i:02}.wav", chord_music(seconds, 22050, 1, seed=i), 22050) for i in range(count)]


def test_an_interrupted_run_leaves_the_earlier_output_whole(tmp_path):
    """Ctrl-C half-way: the earlier va.csv and summary are as they were and no
    temporary file is left; a complete run replaces them in one rename."""
    files = many_files(tmp_path / "music")
    out, summary = tmp_path / "va.csv", tmp_path / "songs.csv"
    out.write_text("earlier results\n")
    summary.write_text("earlier summary\n")
    run = start_analyze(*files, "--out", out, "--summary", summary)
    partial = lambda: [p for p in tmp_path.iterdir() if p.name.startswith(".va.csv.")]    # noqa: E731
    wait_for(lambda: any(p.stat().st_size > 100 for p in partial()) or run.poll() is not None)
    run.send_signal(__import__("signal").SIGINT)
    run.communicate(timeout=120)
    assert run.returncode == 130, "the run ended before it could be interrupted"
    assert out.read_text() == "earlier results\n" and summary.read_text() == "earlier summary\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music", "songs.csv", "va.csv"]
    result = run_analyze(*files[:2], "--out", out, "--summary", summary)
    assert result.returncode == 0 and {r["file"] for r in read_csv(out)} == {str(f) for f in files[:2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music", "songs.csv", "va.csv"]


def test_resume_drops_a_torn_row_redoes_the_last_file_and_skips_the_rest(tmp_path):
    """A journal cut inside a row of the third file (as a stop leaves it):
    --resume skips the first two, analyses the rest, and the result is byte
    for byte a whole run's."""
    files = many_files(tmp_path / "music", count=5, seconds=9)
    whole, whole_summary = tmp_path / "whole.csv", tmp_path / "whole_songs.csv"
    assert run_analyze(*files, "--out", whole, "--summary", whole_summary).returncode == 0
    text, summary_text = whole.read_bytes(), whole_summary.read_bytes()
    third = text.index(str(files[2]).encode())
    out, summary = tmp_path / "va.csv", tmp_path / "songs.csv"
    out.write_bytes(text[:text.index(str(files[2]).encode(), third + 1) + 30])  # the third file's 2nd row, torn
    summary.write_bytes(b"".join(summary_text.splitlines(keepends=True)[:4]))   # it had reached the third
    result = run_analyze(*files, "--out", out, "--summary", summary, "--resume")
    assert result.returncode == 0, result.stderr
    assert "2 files already in" in result.stderr
    assert out.read_bytes() == text and summary.read_bytes() == summary_text
    # a finished journal: only its last file is analysed again (its rows might have been cut short)
    result = run_analyze(*files, "--out", out, "--summary", summary, "--resume")
    assert result.returncode == 0 and "4 files already in" in result.stderr
    assert out.read_bytes() == text and summary.read_bytes() == summary_text


def test_resume_after_a_kill_gives_the_whole_run(tmp_path):
    """A real stop: SIGKILL while the journal grows, then --resume."""
    files = many_files(tmp_path / "music", count=10, seconds=10)
    whole = tmp_path / "whole.csv"
    assert run_analyze(*files, "--out", whole).returncode == 0
    out = tmp_path / "va.csv"
    run = start_analyze(*files, "--out", out, "--resume")
    wait_for(lambda: (out.exists() and str(files[2]) in out.read_text()) or run.poll() is not None)
    run.kill()
    run.communicate(timeout=60)
    assert run.returncode == -9, "the run ended before it could be killed"
    assert out.read_bytes() != whole.read_bytes()
    result = run_analyze(*files, "--out", out, "--resume")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == whole.read_bytes()


def test_resume_refuses_a_file_that_is_not_its_csv(good_files, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("my notes\n")
    result = run_analyze(good_files[0], "--out", out, "--resume")
    assert result.returncode == 2 and "refusing to resume into it" in result.stderr
    assert out.read_text() == "my notes\n"
    result = run_analyze(good_files[0], "--resume")
    assert result.returncode == 2 and "--resume needs --out" in result.stderr


def test_a_reader_that_goes_away_ends_the_run_quietly(good_files):
    """`rt-mer analyze ... | head -2`: no BrokenPipeError traceback."""
    run = subprocess.run(f"{sys.executable} -m rt_mer.cli analyze --quiet {good_files[0]} {good_files[1]} | head -2",
                         shell=True, capture_output=True, text=True, timeout=300)
    assert run.stdout.splitlines()[0] == ",".join(HEADER) and len(run.stdout.splitlines()) == 2
    assert "Traceback" not in run.stderr and "Error" not in run.stderr, run.stderr


@pytest.mark.slow
def test_a_model_without_drivers_is_one_clear_error(tmp_path, good_files):
    """An ONNX model of the previous contract (no drivers output) is refused
    at open, by the API and by the command line, saying what it lacks."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(default_model())
    [drivers] = [output for output in model.graph.output if output.name == "drivers"]
    model.graph.output.remove(drivers)
    old = tmp_path / "old.onnx"
    onnx.save(model, old)
    with pytest.raises(EngineError, match=r"old.onnx: model lacks outputs \['drivers'\]"):
        open_engine("onnxruntime", old)
    result = run_analyze(good_files[0], "--model", old, "--engine", "onnxruntime")
    line = one_error_line(result)
    assert line.endswith("old.onnx: model lacks outputs ['drivers']"), line
