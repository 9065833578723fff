"""The typed messages every stage builds and reads, one home for their
contract: EmotionMessage and StatusMessage (their fields are listed in
rt_mer.publish.schema, which encodes them and checks untrusted payloads),
the Russell quadrants and their names, and the level limits.

`to_dict` gives a message's payload: rounded, every float finite.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import numpy as np

from .contract import DRIVERS
from .text import printable

VERSION = 1                            # the schema version every payload carries as "v"
AXES = ("valence", "arousal")          # the explanation's and the drivers' outer keys
PITCH_CLASSES = 12
TERM_LIMIT = 1e6                       # |logit term|: encoding clips to it, decoding refuses beyond
MAX_MOOD_CHARS = 24            # an emotion message's mood word (moods files are checked against it)
CLIP_DBFS = -0.1               # a peak at or above this counts as clipped (status "clipped")
LEVEL_RANGE_DBFS = (-200.0, 200.0)    # silence reads -200; nothing a ring lets through reaches +200
MAX_SECONDS = 1e12                    # stream and wall times, latencies: far beyond any real one

# The Russell quadrants: how the README, dashboard and plots name them.
QUADRANT_NAMES = {1: "happy", 2: "tense", 3: "sad", 4: "calm"}


def quadrant(valence: float, arousal: float) -> int:
    """1 = +valence +arousal, 2 = -valence +arousal, 3 = -valence -arousal,
    4 = +valence -arousal (Russell's convention; zero counts as positive)."""
    if arousal >= 0:
        return 1 if valence >= 0 else 2
    return 4 if valence >= 0 else 3


def is_number(value: Any, limit: float = 1e308) -> bool:
    """A number, not a bool, finite and within ±limit (ints of any size
    compare exactly: no overflow)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= limit


def finite(value: float, low: float, high: float, nan: float = 0.0) -> float:
    """`value` as a float in [low, high]; NaN becomes `nan`. The encoder
    refuses non-finite numbers, so every float passes through here."""
    value = float(value)
    return nan if math.isnan(value) else min(max(value, low), high)


def _ms(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(finite(value, 0.0, MAX_SECONDS), digits)


def _unit(value: float) -> float:
    return round(finite(value, -1.0, 1.0), 4)


def _dbfs(value: float) -> float:
    return round(finite(value, *LEVEL_RANGE_DBFS, nan=LEVEL_RANGE_DBFS[0]), 1)


def _time(value: float) -> float:
    return finite(value, -MAX_SECONDS, MAX_SECONDS)


def _terms(values: Any) -> list:
    """Logit terms as nested lists: finite, within TERM_LIMIT, 3 decimals."""
    values = np.nan_to_num(np.asarray(values, np.float64), nan=0.0)
    return np.round(np.clip(values, -TERM_LIMIT, TERM_LIMIT), 3).tolist()


@dataclass
class EmotionMessage:
    """One window's prediction: `emotion.<stream>`, once per hop.

    valence/arousal are smoothed, *_raw the model's own, all in [-1, 1];
    latency_ms has the stages buffering, frontend, inference, post and,
    set just before the message is handed to the sinks, total; with
    --explain, explanation
    is the harmony map [2, 12, steps] (valence, arousal x pitch class x
    time step) and drivers [2, len(DRIVERS)], each branch's logit term:
    arrays, sent as {"valence": [[steps] x 12], "arousal": ...} and
    {"valence": {"harmony": .., ...}, "arousal": {...}}."""
    stream: str
    seq: int
    t: float
    wall: float
    valence: float
    arousal: float
    valence_raw: float
    arousal_raw: float
    quadrant: int
    mood: str
    level_dbfs: float
    peak_dbfs: float
    engine: str
    batch: int = 1
    latency_ms: dict[str, float] = field(default_factory=dict)
    explanation: Any = None          # [2, 12, steps] array or nested lists
    drivers: Any = None              # [2, len(DRIVERS)] array or nested lists
    type: ClassVar[str] = "emotion"

    def to_dict(self) -> dict[str, Any]:
        """The wire form (schema version 1): rounded, every float finite."""
        message = {"v": VERSION, "type": self.type, "stream": self.stream, "seq": int(self.seq),
                   "t": _time(self.t), "wall": _time(self.wall),
                   "valence": _unit(self.valence), "arousal": _unit(self.arousal),
                   "valence_raw": _unit(self.valence_raw), "arousal_raw": _unit(self.arousal_raw),
                   "quadrant": int(self.quadrant), "mood": self.mood,
                   "level_dbfs": _dbfs(self.level_dbfs), "peak_dbfs": _dbfs(self.peak_dbfs),
                   "engine": self.engine, "batch": int(self.batch),
                   "latency_ms": {stage: _ms(ms) for stage, ms in self.latency_ms.items()}}
        if self.explanation is not None:
            message["explanation"] = dict(zip(AXES, _terms(self.explanation)))
        if self.drivers is not None:
            message["drivers"] = {axis: dict(zip(DRIVERS, terms)) for axis, terms in zip(AXES, _terms(self.drivers))}
        return message


@dataclass
class StatusMessage:
    """A stream's health: `status.<stream>`, about once a second and once
    more with state "ended". `counters` are the source's (overflows,
    dropped_blocks, underruns, nonfinite, out_of_range, and for a file
    truncated, for stdin truncated_bytes), flat in the payload; latency_ms is {"p50": {stage:
    ms}, "p99": {...}} over recent windows, None before any."""
    stream: str
    seq: int
    t: float
    wall: float
    state: str                        # "warming" | "running" | "ended"
    source: str = ""
    rate: int = 0
    channels: int = 0
    engine: str = ""
    engine_reason: str = ""
    scheduling: str = ""              # the analysis thread's (rt_mer.realtime)
    capture_scheduling: str = ""      # the live input's producer thread's, once it ran
    window_s: float = 0.0
    hop_s: float = 0.0
    level_dbfs: float = LEVEL_RANGE_DBFS[0]
    peak_dbfs: float = LEVEL_RANGE_DBFS[0]
    clipped: int = 0                  # reads that clipped since the previous status
    late_windows: int = 0
    latency_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    type: ClassVar[str] = "status"

    def to_dict(self) -> dict[str, Any]:
        """The wire form (schema version 1): rounded, every float finite."""
        return {"v": VERSION, "type": self.type, "stream": self.stream, "seq": int(self.seq),
                "t": _time(self.t), "wall": _time(self.wall), "state": self.state,
                # Text from outside (a file or device name, an error) made printable, which
                # decode requires: our own subscribers and `plot` must accept our messages.
                "source": printable(self.source), "rate": int(self.rate), "channels": int(self.channels),
                "engine": printable(self.engine), "engine_reason": printable(self.engine_reason),
                "scheduling": printable(self.scheduling), "capture_scheduling": printable(self.capture_scheduling),
                "window_s": _time(self.window_s), "hop_s": _time(self.hop_s),
                "level_dbfs": _dbfs(self.level_dbfs), "peak_dbfs": _dbfs(self.peak_dbfs),
                "clipped": int(self.clipped), "late_windows": int(self.late_windows),
                "latency_ms": {name: {stage: _ms(ms) for stage, ms in stages.items()}
                               for name, stages in self.latency_ms.items()},
                **{name: int(count) for name, count in self.counters.items()}}


Message = Union[EmotionMessage, StatusMessage]
