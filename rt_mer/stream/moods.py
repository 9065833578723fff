"""Mood words: a vocabulary of words placed on the valence-arousal plane.

The mood of a point is the nearest word within `distance`, else the word of
the point's quadrant. The default vocabulary (moods.toml beside this file)
places English words where published affective norms put them; a user's
TOML file of the same form replaces it:

    browse = [0.4, -0.3]        # word = [valence, arousal], each in [-1, 1]
    linger = [0.6, -0.6]
    rush = [0.2, 0.8]
    distance = 0.6              # optional (default 0.5): how far a word reaches
    quadrants = ["lively", "hectic", "dull", "easy"]   # optional: the words beyond, Q1 to Q4
"""
from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..paths import require_regular_file
from ..messages import MAX_MOOD_CHARS, QUADRANT_NAMES, is_number, quadrant
from ..errors import RtMerError

DEFAULT_DISTANCE = 0.5
DEFAULT_QUADRANT_WORDS = tuple(QUADRANT_NAMES[number] for number in (1, 2, 3, 4))


class MoodError(RtMerError, ValueError):
    """A moods file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class MoodVocabulary:
    """Words at (valence, arousal) points; `word(v, a)` picks one."""
    points: tuple[tuple[str, float, float], ...]           # (word, valence, arousal)
    distance: float = DEFAULT_DISTANCE
    quadrant_words: tuple[str, str, str, str] = DEFAULT_QUADRANT_WORDS

    def word(self, valence: float, arousal: float) -> str:
        """The nearest word within `distance` of (valence, arousal), else
        the word of its quadrant."""
        word, v, a = min(self.points, key=lambda point: math.dist(point[1:], (valence, arousal)))
        if math.dist((v, a), (valence, arousal)) <= self.distance:
            return word
        return self.quadrant_words[quadrant(valence, arousal) - 1]

    @property
    def words(self) -> list[str]:
        return [word for word, _, _ in self.points]

    @classmethod
    def from_toml(cls, path: str | Path) -> MoodVocabulary:
        """Read a moods file; MoodError (one line naming the file and the
        key) if it is missing, not TOML, or any entry is not usable."""
        path = Path(path)
        require_regular_file(path, MoodError)       # a FIFO's read would wait for a writer
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise MoodError(f"{path}: cannot read ({error.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise MoodError(f"{path}: not valid TOML ({error})") from None
        return cls.from_mapping(values, str(path))

    @classmethod
    def from_mapping(cls, values: dict, source: str) -> MoodVocabulary:
        """The vocabulary a parsed moods file describes (see the module's
        docstring); `source` names it in errors."""
        values = dict(values)
        distance = _distance(values.pop("distance", DEFAULT_DISTANCE), source)
        quadrant_words = _quadrant_words(values.pop("quadrants", DEFAULT_QUADRANT_WORDS), source)
        points = tuple((_checked_word(word, source), *_point(word, value, source)) for word, value in values.items())
        if not points:
            raise MoodError(f"{source}: no mood words in it (write word = [valence, arousal])")
        return cls(points, distance, quadrant_words)


def _checked_word(word, source: str) -> str:
    """A word fit for a message's mood field: 1 to MAX_MOOD_CHARS printable characters."""
    if not isinstance(word, str) or not word.strip() or not word.isprintable():
        raise MoodError(f"{source}: mood word {word!r} must be printable text")
    if len(word) > MAX_MOOD_CHARS:
        raise MoodError(f"{source}: mood word {word!r} is longer than {MAX_MOOD_CHARS} characters")
    return word


def _point(word: str, value, source: str) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2 and all(is_number(x) and -1 <= x <= 1 for x in value)):
        raise MoodError(f"{source}: {word!r} must be [valence, arousal], two numbers in [-1, 1], got {value!r}")
    return float(value[0]), float(value[1])


def _distance(value, source: str) -> float:
    if not (is_number(value) and value > 0):
        raise MoodError(f"{source}: distance must be a positive number, got {value!r}")
    return float(value)


def _quadrant_words(value, source: str) -> tuple[str, str, str, str]:
    if not (isinstance(value, (list, tuple)) and len(value) == 4):
        raise MoodError(f"{source}: quadrants must be four words, for Q1 to Q4, got {value!r}")
    return tuple(_checked_word(word, source) for word in value)


@functools.cache
def default_moods() -> MoodVocabulary:
    """The shipped vocabulary (moods.toml in this package)."""
    text = resources.files(__package__).joinpath("moods.toml").read_text(encoding="utf-8")
    return MoodVocabulary.from_mapping(tomllib.loads(text), "moods.toml")


def load_moods(path: str | Path | None) -> MoodVocabulary:
    """The vocabulary in `path`, or the default one where there is none."""
    return default_moods() if path is None else MoodVocabulary.from_toml(path)
