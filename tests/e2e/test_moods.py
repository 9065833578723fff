"""A user's mood words end to end through `rt-mer analyze` and a live
`rt-mer run` over ZeroMQ."""
from __future__ import annotations

import csv
import subprocess
import time

import pytest

from rt_mer.publish import Subscriber

from support.files import vocabulary
from support.music import chord_music, windows_in, write
from support.processes import CLI
from support.wire import free_endpoint

# A shop's words, one per quadrant in Q1..Q4 order, reaching everywhere: the
# nearest is the word of the point's quadrant (ties on an axis go to the
# first in the file, as the quadrant does).
SHOP = {"rush": (0.5, 0.5), "hassle": (-0.5, 0.5), "drag": (-0.5, -0.5), "browse": (0.5, -0.5)}
SHOP_TOML = "".join(f"{word} = [{v}, {a}]\n" for word, (v, a) in SHOP.items()) + \
    'distance = 3.0\nquadrants = ["busy", "hectic", "dead", "quiet"]\n'


def cli(*args, **kwargs):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 300), **kwargs)


def shop_word(message_or_row):
    return list(SHOP)[int(message_or_row["quadrant"]) - 1]


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    return write(tmp_path_factory.mktemp("moods") / "shop.wav", chord_music(10, 22050, 1, seed=21), 22050)


def test_analyze_writes_the_users_words(music, tmp_path):
    shop = vocabulary(SHOP_TOML, tmp_path, "shop.toml")
    out, summary = tmp_path / "va.csv", tmp_path / "songs.csv"
    result = cli("analyze", "--quiet", music, "--moods", shop, "--out", out, "--summary", summary)
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == windows_in(10, 0.5) and all(row["mood"] == shop_word(row) for row in rows), rows
    with open(summary, newline="") as f:
        [song] = csv.DictReader(f)
    assert song["mood"] == shop_word(song)
    # the same option from a --config file
    config = vocabulary(f'moods = "{shop}"\nhop = 1.0\n', tmp_path, "rt-mer.toml")
    result = cli("--config", config, "analyze", "--quiet", music)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert len(rows) == windows_in(10, 1.0) and {row["mood"] for row in rows} <= set(SHOP)


def test_a_bad_moods_file_stops_analyze_and_run_with_one_line(music, tmp_path):
    cases = [(tmp_path / "absent.toml", "cannot read"),
             (vocabulary("calm = [0.5, -0.5\n", tmp_path, "broken.toml"), "not valid TOML"),
             (vocabulary("calm = [2, 0]\n", tmp_path, "range.toml"), "'calm' must be [valence, arousal]"),
             (vocabulary(f"{'x' * 30} = [0, 0]\n", tmp_path, "long.toml"), "longer than 24 characters")]
    for path, message in cases:
        for command in (["analyze", "--quiet", music], ["run", "--no-dash", "--file", music]):
            result = cli(*command, "--moods", path, timeout=60)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2 and len(lines) == 1, (command, result.stderr)
            assert lines[0].startswith(f"rt-mer: error: {path}: ") and message in lines[0], lines


@pytest.mark.slow
def test_a_live_run_publishes_the_users_words(music, tmp_path):
    shop = vocabulary(SHOP_TOML, tmp_path, "shop.toml")
    endpoint = free_endpoint()
    received = []
    with Subscriber(endpoint, topics=("emotion",)) as subscriber:
        process = subprocess.Popen([*CLI, "run", "--no-dash", "--file", str(music),
                                    "--hop", "0.25", "--moods", str(shop), "--pub", endpoint],
                                   stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120       # the file is paced at real time: a window before the first
            while time.monotonic() < deadline:
                message = subscriber.receive(200)
                if message is not None:
                    received.append(message)
                elif process.poll() is not None:
                    break
        finally:
            if process.poll() is None:
                process.kill()
            stderr = process.communicate(timeout=30)[1]
    assert process.returncode == 0, stderr
    assert len(received) >= 3, stderr                # a window every 0.25 s once the first is heard
    assert all(m["mood"] == shop_word(m) for m in received), [(m["quadrant"], m["mood"]) for m in received]
