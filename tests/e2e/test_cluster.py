"""`rt-mer analyze --cluster` on a real local Ray: the same rows as a local
run, bad files as locally, --resume, a worker killed mid-run. Ray is started
and stopped by each test (a private RAY_TMPDIR, so a left-over process of
ours can be told from anyone else's)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from rt_mer.inference import open_engine  # noqa: E402
from rt_mer.stream.cluster import Cluster  # noqa: E402
from rt_mer.stream.table import analyze_to_result  # noqa: E402

from support.music import chord_music, write  # noqa: E402
from support.processes import CLI


@pytest.fixture
def ray_dir(monkeypatch):
    """A short private RAY_TMPDIR (Ray's socket paths must stay short); after
    the test, no process of that Ray may be left running."""
    folder = tempfile.mkdtemp(prefix="rtm", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    yield folder
    deadline = time.monotonic() + 60
    while ray_processes(folder):
        assert time.monotonic() < deadline, f"Ray left running: {ray_processes(folder)}"
        time.sleep(0.2)
    shutil.rmtree(folder, ignore_errors=True)       # Ray's session logs


def ray_processes(folder: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if folder in command:
            found.append(f"{pid}: {command[:80]}")
    return found


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    folder = tmp_path_factory.mktemp("music")
    files = [write(folder / f"song{i:02}.wav", chord_music(8 + i % 4, 22050, 1 + i % 2, seed=i), 22050)
             for i in range(8)]
    (folder / "zz_not_audio.mp3").write_text("not audio\n" * 50)
    return folder, files


def analyze(*args, **env):
    return subprocess.run([*CLI, "analyze", "--quiet", *map(str, args)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **env})


def errors(stderr: str) -> list[str]:
    return [line.split(" (on worker ")[0] for line in stderr.splitlines() if line.startswith("rt-mer: error:")]


@pytest.mark.slow
def test_a_local_cluster_of_two_gives_the_local_rows_errors_and_resume(music, tmp_path, ray_dir):
    folder, files = music
    missing = folder / "missing.wav"
    local = analyze(folder, missing, "--out", tmp_path / "local.csv", "--summary", tmp_path / "local_songs.csv")
    assert local.returncode == 1 and len(errors(local.stderr)) == 2, local.stderr
    out, summary = tmp_path / "va.csv", tmp_path / "songs.csv"
    result = analyze(folder, missing, "--out", out, "--summary", summary, "--cluster", "local:2")
    assert result.returncode == 1, result.stderr
    assert "2 workers" in result.stderr and "Traceback" not in result.stderr
    # the same rows in the same order, the same numbers (written by the same code: to the byte)
    assert out.read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert summary.read_bytes() == (tmp_path / "local_songs.csv").read_bytes()
    # the same one-line errors, each saying which worker could not read the file
    assert errors(result.stderr) == errors(local.stderr)
    assert f"{missing}: no such file (on worker " in result.stderr
    assert "2 of 10 files failed" in result.stderr
    # --resume on the cluster: a journal stopped inside the first row of the fourth file (the third is redone)
    text = out.read_bytes()
    out.write_bytes(text[:text.index(str(files[3]).encode()) + 20])
    result = analyze(folder, missing, "--out", out, "--summary", summary, "--cluster", "local:2", "--resume")
    assert result.returncode == 1 and "resuming: 2 files already" in result.stderr, result.stderr
    assert out.read_bytes() == text and summary.read_bytes() == (tmp_path / "local_songs.csv").read_bytes()


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_no_file_and_writes_none_twice(music, ray_dir):
    _, files = music
    files = files * 2       # enough work that both workers hold tasks when one is killed
    engine = open_engine("onnxruntime", threads=1)
    expected = [analyze_to_result(path, engine, 0.5) for path in files]
    cluster = Cluster("local:2", None, engine="onnxruntime", hop=0.5)
    killed = []

    def kill_one(result) -> None:
        if not killed:
            killed.append(cluster.busy_pids()[0])
            os.kill(killed[0], signal.SIGKILL)
    try:
        results = list(cluster.results(files, kill_one))
        assert cluster.deaths >= 1, "the kill came after the worker had finished"
    finally:
        cluster.close()
    assert [r.path for r in results] == [str(path) for path in files]
    assert [r.rows for r in results] == [r.rows for r in expected]
    assert [r.summary for r in results] == [r.summary for r in expected]


def test_a_cluster_that_is_not_there_is_one_line_in_seconds(music, tmp_path):
    """Nothing listening at HOST:PORT: one line, exit 2, no output file
    (Ray itself would retry for minutes)."""
    _, files = music
    for address, words in (("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
                           ("local:0", "expected local or local:N")):
        result = analyze(files[0], "--out", tmp_path / "va.csv", "--cluster", address)
        assert result.returncode == 2 and "rt-mer: error: " in result.stderr and words in result.stderr, \
            result.stderr
        assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())
    result = analyze(files[0], "--workers", "2")
    assert result.returncode == 2 and "--workers is for --cluster runs" in result.stderr
