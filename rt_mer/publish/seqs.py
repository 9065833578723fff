"""Missed messages, told by gaps in each topic's `seq`, with a bounded
memory of topics.

A subscriber remembers, per topic, only what the gap check needs of the
last message (its seq, stream time and wall time), and at most `capacity`
topics: a publisher may invent stream names without end, so the least
recently seen topic is forgotten first, and counted. A gap on a forgotten
topic goes uncounted, as on a topic seen for the first time.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Hashable, Mapping, NamedTuple

# One topic carries at most one message a frame (1/16 s, the shortest hop) of
# stream or wall time, plus a backlog sent at once; a seq further ahead than
# that is a restart, not a loss (see seq_gap).
MAX_MESSAGES_PER_SECOND = 16
SEQ_SLACK = 64
MAX_TOPICS = 4096        # a subscriber's table: about 1.4 MB full, whatever the stream names' length


class Mark(NamedTuple):
    """What the gap check keeps of a topic's last message."""
    seq: int
    t: float
    wall: float


def _seconds(message: Mapping[str, Any], name: str) -> float:
    value = message.get(name)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def mark(message: Mapping[str, Any]) -> Mark:
    return Mark(message["seq"], _seconds(message, "t"), _seconds(message, "wall"))


def seq_gap(last: Mark | None, message: Mapping[str, Any]) -> int:
    """Messages missed between `last`, the mark of the previous message on a
    topic, and `message`. A seq at or below the last is a restarted
    publisher, not a loss; so is one further ahead than a publisher could
    have sent in the stream time (`t`) or wall time between the two: a new
    publisher, or a bogus seq, which would otherwise count as missed for good."""
    if last is None:
        return 0
    now = mark(message)
    gap = now.seq - last.seq - 1
    elapsed = max(now.t - last.t, now.wall - last.wall)
    return gap if 0 < gap <= SEQ_SLACK + MAX_MESSAGES_PER_SECOND * elapsed else 0


class SeqTable:
    """The last Mark of each topic, for at most `capacity` topics; the least
    recently seen is forgotten first (`forgotten` counts them)."""

    def __init__(self, capacity: int = MAX_TOPICS) -> None:
        self.capacity = capacity
        self.forgotten = 0
        self._marks: OrderedDict[Hashable, Mark] = OrderedDict()

    def gap(self, key: Hashable, message: Mapping[str, Any]) -> int:
        """Messages missed on topic `key` before `message`, which becomes its
        last. `message` has an int `seq` (the schema's checks)."""
        last = self._marks.pop(key, None)
        self._marks[key] = mark(message)          # re-inserted: now the most recently seen
        if len(self._marks) > self.capacity:
            self._marks.popitem(last=False)
            self.forgotten += 1
        return seq_gap(last, message)

    def __len__(self) -> int:
        return len(self._marks)
