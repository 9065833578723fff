"""Mood words: the vocabulary (nearest word, quadrant fallback, bad files),
the shipped norms, and a user's words end to end through `rt-mer analyze`,
a live `rt-mer run` over ZeroMQ, and the dashboard in a real terminal."""
import csv
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from music import chord_music, windows_in, write
from rt_mer.publish import Subscriber
from rt_mer.messages import MAX_MOOD_CHARS, EmotionMessage, quadrant
from rt_mer.publish.schema import MessageError, decode, encode
from rt_mer.stream.moods import MoodError, MoodVocabulary, default_moods
from wire import free_endpoint

SHIPPED = Path(__file__).resolve().parents[1] / "rt_mer" / "stream" / "moods.toml"
# A shop's words, one per quadrant in Q1..Q4 order, reaching everywhere: the
# nearest is the word of the point's quadrant (ties on an axis go to the
# first in the file, as the quadrant does).
SHOP = {"rush": (0.5, 0.5), "hassle": (-0.5, 0.5), "drag": (-0.5, -0.5), "browse": (0.5, -0.5)}
SHOP_TOML = "".join(f"{word} = [{v}, {a}]\n" for word, (v, a) in SHOP.items()) + \
    'distance = 3.0\nquadrants = ["busy", "hectic", "dead", "quiet"]\n'


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "rt_mer.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 300), **kwargs)


def vocabulary(text, tmp_path, name="moods.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def shop_word(message_or_row):
    return list(SHOP)[int(message_or_row["quadrant"]) - 1]


# ------------------------------------------------------------ the vocabulary

def test_nearest_word_within_the_distance_else_the_quadrant_word():
    moods = MoodVocabulary.from_mapping({"bright": [0.5, 0.5], "dark": [-0.5, -0.5], "distance": 0.3}, "t")
    assert moods.word(0.45, 0.55) == "bright" and moods.word(-0.4, -0.6) == "dark"
    assert moods.word(0.5, 0.2) == "bright"                       # exactly at the distance still reaches
    assert [moods.word(*p) for p in [(0.9, 0.9), (-0.9, 0.9), (-0.9, -0.9), (0.9, -0.9), (0.0, 0.0)]] == \
        ["happy", "tense", "sad", "calm", "happy"]                # the default quadrant words beyond it
    mine = MoodVocabulary.from_mapping({"ruhig": [0.5, -0.5], "quadrants": ["froh", "angespannt", "traurig",
                                                                              "gelassen"]}, "t")
    assert mine.distance == 0.5 and mine.word(-0.9, 0.9) == "angespannt" and mine.word(0.4, -0.4) == "ruhig"


def test_a_user_file_with_unicode_words_and_defaults(tmp_path):
    moods = MoodVocabulary.from_toml(vocabulary('"très calme" = [0.4, -0.8]\n"熱狂" = [0.7, 0.7]\n', tmp_path))
    assert moods.words == ["très calme", "熱狂"] and moods.quadrant_words == ("happy", "tense", "sad", "calm")
    assert moods.word(0.5, -0.7) == "très calme" and moods.word(0.6, 0.9) == "熱狂"


@pytest.mark.parametrize("text, message", [
    ("calm = [0.5, -0.5\n", "not valid TOML"),
    ("", "no mood words"),
    ("distance = 0.4\n", "no mood words"),
    ("calm = 0.5\n", "'calm' must be [valence, arousal], two numbers in [-1, 1], got 0.5"),
    ("calm = [0.5]\n", "'calm' must be [valence, arousal]"),
    ("calm = [0.5, -0.5, 0.1]\n", "'calm' must be [valence, arousal]"),
    ("calm = [0.5, -1.5]\n", "'calm' must be [valence, arousal], two numbers in [-1, 1], got [0.5, -1.5]"),
    ('calm = ["high", "low"]\n', "'calm' must be [valence, arousal]"),
    ("calm = [true, false]\n", "'calm' must be [valence, arousal]"),
    ("calm = [nan, 0.0]\n", "'calm' must be [valence, arousal]"),
    ("[calm]\nvalence = 0.5\n", "'calm' must be [valence, arousal]"),
    (f"{'x' * (MAX_MOOD_CHARS + 1)} = [0.0, 0.0]\n", f"is longer than {MAX_MOOD_CHARS} characters"),
    ('"  " = [0.0, 0.0]\n', "must be printable text"),
    ('"a\\tb" = [0.0, 0.0]\n', "must be printable text"),
    ("calm = [0.5, -0.5]\ndistance = -1\n", "distance must be a positive number, got -1"),
    ('calm = [0.5, -0.5]\ndistance = "far"\n', "distance must be a positive number"),
    ('calm = [0.5, -0.5]\nquadrants = ["a", "b", "c"]\n', "quadrants must be four words, for Q1 to Q4"),
    (f'calm = [0.5, -0.5]\nquadrants = ["a", "b", "c", "{"d" * 30}"]\n', "is longer than"),
    ('calm = [0.5, -0.5]\nquadrants = ["a", "b", "c", 4]\n', "must be printable text"),
])
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    path = vocabulary(text, tmp_path)
    with pytest.raises(MoodError) as raised:
        MoodVocabulary.from_toml(path)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(MoodError, match=r"absent\.toml: cannot read \(No such file or directory\)"):
        MoodVocabulary.from_toml(tmp_path / "absent.toml")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("calme = [0.5, -0.5]\n\"été\" = [0.1, 0.1]\n".encode("latin-1"))
    with pytest.raises(MoodError, match="latin1.toml: not valid TOML"):
        MoodVocabulary.from_toml(latin1)


def test_the_schema_carries_words_up_to_its_limit_and_rejects_longer():
    def payload(word):
        return encode(EmotionMessage(stream="s", seq=0, t=8.0, wall=1.7e9, valence=0.1, arousal=0.1,
                                     valence_raw=0.1, arousal_raw=0.1, quadrant=1, mood=word, level_dbfs=-20.0,
                                     peak_dbfs=-3.0, engine="onnxruntime").to_dict())
    assert decode(payload("ä" * MAX_MOOD_CHARS))["mood"] == "ä" * MAX_MOOD_CHARS
    with pytest.raises(MessageError, match="mood"):
        decode(payload("x" * (MAX_MOOD_CHARS + 1)))


# ------------------------------------------------------- the shipped norms

def test_the_shipped_words_are_the_cited_norms_mapped_to_the_plane():
    text = SHIPPED.read_text()
    assert "Warriner" in text and "13,915 English lemmas" in text and "doi:10.3758/s13428-012-0314-x" in text
    rows = re.findall(r"^(\w+) = \[([-\d.]+), ([-\d.]+)\]\s+# V (\d\.\d\d), A (\d\.\d\d)$", text, re.M)
    moods = default_moods()
    assert [row[0] for row in rows] == moods.words and 24 <= len(rows) <= 40
    for word, v, a, valence_mean, arousal_mean in rows:          # (mean - 5) / 4, as the header says
        assert float(v) == pytest.approx((float(valence_mean) - 5) / 4, abs=1e-9), word
        assert float(a) == pytest.approx((float(arousal_mean) - 5) / 4, abs=1e-9), word
    per_quadrant = [sum(quadrant(v, a) == q for _, v, a in moods.points) for q in (1, 2, 3, 4)]
    assert min(per_quadrant) >= 7, per_quadrant                  # every quadrant has words of its own
    assert {"happy", "excited", "calm", "relaxed", "sad", "gloomy", "tense", "angry"} <= set(moods.words)
    assert moods.word(0.7, 0.3) == "energetic" and moods.word(-0.7, -0.35) == "sad"
    assert moods.word(0.45, -0.85) == "calm" and moods.word(-0.6, 0.28) == "furious"


# -------------------------------------------------------------- end to end

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
        process = subprocess.Popen([sys.executable, "-m", "rt_mer.cli", "run", "--no-dash", "--file", str(music),
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


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed: no real terminal to draw in")
def test_the_dashboard_shows_the_users_word(tmp_path):
    linger = vocabulary('linger = [0.0, 0.0]\ndistance = 3.0\n', tmp_path, "linger.toml")   # always this word
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    command = f"{sys.executable} -m rt_mer.cli demo --hop 0.25 --moods {linger} --pub {free_endpoint()}"
    subprocess.run([*tmux, "new-session", "-d", "-s", "moods", "-x", "80", "-y", "24", command], check=True)

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "moods"], capture_output=True, text=True).stdout

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "L I N G E R" not in screen():
            time.sleep(0.5)
        assert "L I N G E R" in screen(), screen()
        assert not any(" ".join(word.upper()) in screen() for word in default_moods().words)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
