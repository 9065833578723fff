"""Mood words (rt_mer.stream.moods): nearest word, quadrant fallback, a
user's file and its errors, the shipped norms."""
from __future__ import annotations

import re

import pytest

from rt_mer.messages import MAX_MOOD_CHARS, quadrant
from rt_mer.stream.moods import MoodError, MoodVocabulary, default_moods

from support import ROOT
from support.files import vocabulary

SHIPPED = ROOT / "rt_mer" / "stream" / "moods.toml"


def test_nearest_word_within_the_distance_else_the_quadrant_word():
    moods = MoodVocabulary.from_mapping({"bright": [0.5, 0.5], "dark": [-0.5, -0.5], "distance": 0.3}, "t")
    assert moods.word(0.45, 0.55) == "bright" and moods.word(-0.4, -0.6) == "dark"
    assert moods.word(0.5, 0.2) == "bright"                       # exactly at the distance still reaches
    assert [moods.word(*p) for p in [(0.9, 0.9), (-0.9, 0.9), (-0.9, -0.9), (0.9, -0.9), (0.0, 0.0)]] == \
        ["happy", "tense", "sad", "calm", "happy"]                # the default quadrant words beyond it
    words = {"ruhig": [0.5, -0.5], "quadrants": ["froh", "angespannt", "traurig", "gelassen"]}
    mine = MoodVocabulary.from_mapping(words, "t")
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
