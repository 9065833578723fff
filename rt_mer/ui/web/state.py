"""What the web wall knows: per stream the latest messages, a bounded
history, health counters; and the compact JSON the browsers get.

Every table here is keyed by what publishers send, so each is bounded:
at most `max_streams` streams (the least recently heard is evicted), at
most `history_points` points per stream (a preallocated ring). Messages
arrive already checked by rt_mer.publish.Subscriber; what the browser gets
is a fixed set of fields, numbers checked again (a status's optional
fields are not in the schema's required set) and strings cut short.
"""
from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from ...messages import AXES, PITCH_CLASSES, is_number
from ...publish.schema import MessageError, check_explanation
from ...publish.seqs import mark, seq_gap
from ...realtime import is_real_time

MAX_STREAMS = 256
HISTORY_POINTS = 3600          # per stream: 30 min at the default 0.5 s hop (56 bytes a point)
WALL_SPAN_S = 300.0            # the wall's sparklines: the last five minutes
WALL_POINTS = 200              # ... thinned to at most this many points for a page that opens
MAX_TEXT = 160                 # longest string passed on (engine, source, scheduling)
COLUMNS = ("wall", "t", "valence", "arousal", "quadrant", "level_dbfs")
COUNTERS = ("late_windows", "overflows", "dropped_blocks", "underruns", "nonfinite", "out_of_range", "truncated",
            "truncated_bytes", "clipped")


def number(value: Any, digits: int = 4) -> float | None:
    return round(float(value), digits) if is_number(value) else None


def count(value: Any) -> int | None:
    return int(value) if is_number(value, 1e15) else None


def text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class History:
    """A ring of the last `capacity` points (COLUMNS) and their mood words,
    allocated once: appending never allocates, old points are overwritten."""

    def __init__(self, capacity: int):
        self._rows = np.zeros((capacity, len(COLUMNS)))
        self._moods: list[str] = [""] * capacity
        self._next = self.count = 0

    def append(self, row: tuple[float, ...], mood: str) -> None:
        self._rows[self._next] = row
        self._moods[self._next] = mood
        self._next = (self._next + 1) % len(self._rows)
        self.count = min(self.count + 1, len(self._rows))

    def clear(self) -> None:
        self._next = self.count = 0

    def last_wall(self) -> float | None:
        return float(self._rows[self._next - 1, 0]) if self.count else None

    def points(self, since_wall: float = -math.inf, most: int | None = None) -> list[list]:
        """The points from `since_wall` on, oldest first, as lists of COLUMNS
        and the mood; thinned evenly to at most `most` (the newest kept)."""
        order = (np.arange(self._next - self.count, self._next)) % len(self._rows)
        order = order[self._rows[order, 0] >= since_wall]
        if most is not None and len(order) > most:
            order = order[np.linspace(len(order) - 1, 0, most).round().astype(int)[::-1]]
        rows = np.round(self._rows[order], 4).tolist()
        return [[None if math.isnan(v) else v for v in row] + [self._moods[i]] for row, i in zip(rows, order)]


class Stream:
    """One stream's state; touched only by the event loop's thread."""

    def __init__(self, name: str, history_points: int):
        self.name = name
        self.emotion: dict | None = None       # the latest, as wire dicts (compact and detail)
        self.detail: dict | None = None
        self.status: dict | None = None
        self.history = History(history_points)
        self.last: dict[str, dict] = {}         # the latest message of each kind, for seq gaps
        self.missed = 0
        self.arrived = time.monotonic()


def emotion_wire(message: dict, missed: int) -> tuple[dict, dict]:
    """(compact, detail): what the wall gets, and what a stream page gets on
    top (the drivers, each pitch class's share of the harmony terms)."""
    compact = {"type": "emotion", "stream": message["stream"], "seq": message["seq"],
               "t": number(message["t"], 3), "wall": number(message["wall"], 3),
               "valence": number(message["valence"]), "arousal": number(message["arousal"]),
               "quadrant": message["quadrant"], "mood": message["mood"],
               "level_dbfs": number(message.get("level_dbfs"), 1), "peak_dbfs": number(message.get("peak_dbfs"), 1),
               "missed": missed}
    detail = dict(compact)
    try:
        check_explanation(message)
    except MessageError:                 # the Subscriber checked it; a message made in process may not be
        return compact, detail
    if "drivers" in message:
        detail["drivers"] = {axis: {name: number(term, 3) for name, term in message["drivers"][axis].items()}
                             for axis in AXES}
    if "explanation" in message:         # the map's mean over time / 12: the shares add up to the harmony terms
        detail["shares"] = {axis: [round(sum(row) / len(row) / PITCH_CLASSES, 4)
                                   for row in message["explanation"][axis]] for axis in AXES}
    return compact, detail


def status_wire(message: dict, missed: int) -> dict:
    """A status's health fields: state, the scheduling it ran under,
    counters, latency, level; anything malformed becomes null."""
    latency = message.get("latency_ms")
    latency = latency if isinstance(latency, dict) else {}
    total = lambda stages: stages.get("total") if isinstance(stages, dict) else None   # noqa: E731
    schedulings = [message.get(name) for name in ("scheduling", "capture_scheduling")]
    real_time = (is_real_time(*filter(None, schedulings))
                 if all(isinstance(s, (str, type(None))) for s in schedulings) and schedulings[0] else None)
    wire = {"type": "status", "stream": message["stream"], "seq": message["seq"], "wall": number(message["wall"], 3),
            "state": text(message["state"]), "real_time": real_time, "scheduling": text(message.get("scheduling")),
            "engine": text(message.get("engine")), "source": text(message.get("source")),
            "window_s": number(message.get("window_s")), "hop_s": number(message.get("hop_s")),
            "level_dbfs": number(message.get("level_dbfs"), 1), "peak_dbfs": number(message.get("peak_dbfs"), 1),
            "p50_ms": number(total(latency.get("p50")), 1), "p99_ms": number(total(latency.get("p99")), 1),
            "missed": missed}
    wire.update({name: count(message.get(name)) for name in COUNTERS})
    return wire


class WallState:
    """The streams the wall shows, fed validated message dicts.

    `update` returns what to send: (compact JSON for every page, detail
    JSON for pages of that stream, names of streams evicted to make room).
    """

    def __init__(self, max_streams: int = MAX_STREAMS, history_points: int = HISTORY_POINTS):
        self.max_streams, self.history_points = max_streams, history_points
        self.streams: OrderedDict[str, Stream] = OrderedDict()   # least recently heard first
        self.evicted = 0

    def update(self, message: dict) -> tuple[str, str, list[str]] | None:
        kind, name = message.get("type"), message.get("stream")
        if kind not in ("emotion", "status") or not isinstance(name, str):
            return None
        gone = []
        stream = self.streams.get(name)
        if stream is None:
            while len(self.streams) >= self.max_streams:
                gone.append(self.streams.popitem(last=False)[0])
                self.evicted += 1
            stream = self.streams[name] = Stream(name, self.history_points)
        self.streams.move_to_end(name)
        stream.arrived = time.monotonic()
        stream.missed += seq_gap(stream.last.get(kind), message)
        stream.last[kind] = mark(message)
        if kind == "status":
            stream.status = status_wire(message, stream.missed)
            wire = dumps(stream.status)
            return wire, wire, gone
        stream.emotion, stream.detail = emotion_wire(message, stream.missed)
        e = stream.emotion
        if (stream.history.last_wall() or -math.inf) > e["wall"] + 60:
            stream.history.clear()          # its clock went back a minute: another run, not the same line
        stream.history.append(tuple(e[c] if e[c] is not None else math.nan for c in COLUMNS), e["mood"])
        return dumps(stream.emotion), dumps(stream.detail), gone

    def snapshot(self, name: str | None = None) -> dict:
        """What a page that opens gets first: every stream (or the one named)
        with its latest messages, seconds since the last one, and its history
        (the wall: the last WALL_SPAN_S, thinned; one stream: all kept)."""
        now = time.monotonic()
        names = list(self.streams) if name is None else [name] if name in self.streams else []
        streams = []
        for key in names:
            stream = self.streams[key]
            since = (stream.history.last_wall() or 0) - WALL_SPAN_S if name is None else -math.inf
            streams.append({"stream": key, "emotion": stream.emotion if name is None else stream.detail,
                            "status": stream.status, "age_s": round(now - stream.arrived, 2),
                            "columns": [*COLUMNS, "mood"],
                            "history": stream.history.points(since, WALL_POINTS if name is None else None)})
        return {"type": "snapshot", "streams": streams}
