"""The message schema (version 1) and its codecs.

Every message is a ZeroMQ multipart [topic, payload]; topic is
``emotion.<stream>`` (once per hop) or ``status.<stream>`` (about once a
second). The payload is UTF-8 JSON (default) or msgpack of a flat object:

emotion: v, type="emotion", stream, seq, t, wall, valence, arousal,
         valence_raw, arousal_raw, quadrant, mood, level_dbfs, peak_dbfs (the
         input's RMS and peak over the window's last hop; the first window:
         all of it), latency_ms {buffering, frontend, inference, post,
         total}, engine, batch (windows in the inference call this one
         shared, across streams),
         and with --explain: explanation {valence: [[steps] x 12], arousal: ...}
         (the harmony branches' logit terms per pitch class, 0 = A, and time
         step) and drivers {valence: {harmony, key, register, timbre, rhythm},
         arousal: {...}} (each branch's term of the logit; a newer model may
         name more)
status:  v, type="status", stream, seq, t, wall, source, rate, channels,
         engine, engine_reason, scheduling (the analysis thread's:
         "real-time (SCHED_FIFO 1)", or "normal: " and why),
         capture_scheduling (the thread delivering a live input's audio,
         once it ran; "" for an input that can wait), window_s, hop_s,
         level_dbfs, peak_dbfs (since
         the previous status), clipped
         (reads that clipped since the previous status),
         overflows, dropped_blocks, underruns, nonfinite, out_of_range,
         truncated (a file) or truncated_bytes (stdin), late_windows, state
         ("warming" | "running" | "ended"),
         latency_ms {p50: {stage: ms}, p99: {stage: ms}}

`seq` counts each topic's messages per stream from 0: a gap means the
subscriber missed messages (see rt_mer.publish.seqs). A stream's name is 1
to MAX_STREAM_CHARS printable characters; through a hub it is
``machine/input``. `t` is stream time (s) at the window's end; `wall` the
Unix time its last sample was captured.
`EmotionMessage` and `StatusMessage` (rt_mer.messages) are the typed forms
the analysis builds; `to_dict` gives the payload, rounded, every float finite.
Subscribers treat payloads as untrusted: `decode` checks size, type,
fields and ranges (valence and arousal in [-1, 1], quadrant 1 to 4, a
mood word of at most MAX_MOOD_CHARS characters), the explanation's and
drivers' shapes, and never unpickles.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

from ..errors import RtMerError
from ..messages import AXES, MAX_MOOD_CHARS, PITCH_CLASSES, TERM_LIMIT, VERSION, is_number

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_STREAM_CHARS = 128         # a stream's name: "machine/input" through a hub, each part at most 40
TOPICS = ("emotion", "status")
RANGES = {"valence": (-1, 1), "arousal": (-1, 1), "valence_raw": (-1, 1), "arousal_raw": (-1, 1),
          "quadrant": (1, 4), "seq": (0, math.inf)}
MAX_STEPS = 256                        # explanation time steps: room for windows far longer than today's 16
MAX_DRIVERS = 16
MAX_DRIVER_NAME = 32
REQUIRED = {
    "emotion": {"stream": str, "seq": int, "t": float, "wall": float, "valence": float, "arousal": float,
                "quadrant": int, "mood": str},
    "status": {"stream": str, "seq": int, "wall": float, "state": str},
}


class MessageError(RtMerError, ValueError):
    """A payload that does not follow the schema."""


def topic(kind: str, stream: str) -> bytes:
    return f"{kind}.{stream}".encode()


def check_ranges(message: Mapping[str, Any]) -> None:
    """Raise MessageError if a field present is outside its range (RANGES)."""
    for name, (low, high) in RANGES.items():
        value = message.get(name)
        if isinstance(value, (int, float)) and not low <= value <= high:
            raise MessageError(f"{message.get('type')} field {name!r} is {value!r}, outside [{low}, {high}]")


def encode(message: dict, codec: str = "json") -> bytes:
    if codec == "msgpack":
        import msgpack
        return msgpack.packb(message, use_bin_type=True)
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def sniff(payload: bytes) -> str:
    """The codec of a payload, told by its first byte: a JSON object starts
    with '{' (after optional whitespace), a msgpack map with a map header
    (0x80-0x8f, 0xde, 0xdf); neither can be mistaken for the other."""
    head = payload.lstrip(b" \t\r\n")[:1]
    if head == b"{":
        return "json"
    if head and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return "msgpack"
    raise MessageError("payload is neither a JSON object nor a msgpack map")


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def _check_values(message: dict) -> None:
    """Only JSON-representable, finite values anywhere, so that whatever
    decode returns can be re-serialised as strict JSON (rt-mer listen), and
    only printable strings: an escape sequence would reach the dashboard's
    terminal, a lone surrogate cannot be encoded again (topics, OSC).
    Iterative: msgpack nests deeper than Python's recursion limit."""
    stack: list[Any] = [message]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if not all(isinstance(key, str) and key.isprintable() for key in value):
                raise MessageError("object keys must be printable strings")
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise MessageError("non-finite number in payload")
        elif isinstance(value, str):
            if not value.isprintable():
                raise MessageError("control character or lone surrogate in a string")
        elif value is not None and not isinstance(value, int):   # bool is an int
            raise MessageError(f"value of type {type(value).__name__} in payload")


def decode(payload: bytes, codec: str = "json") -> dict[str, Any]:
    """Parse and validate one payload; raises MessageError.

    codec: "json", "msgpack", or "auto" (told by `sniff`)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MessageError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if codec == "auto":
        codec = sniff(payload)
    try:
        if codec == "msgpack":
            import msgpack
            message = msgpack.unpackb(payload, raw=False, strict_map_key=True)
        else:
            message = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except Exception as error:                 # any parse failure is the sender's fault
        raise MessageError(f"undecodable {codec} payload: {error}") from None
    if not isinstance(message, dict):
        raise MessageError("payload is not an object")
    _check_values(message)
    if message.get("v") != VERSION:
        raise MessageError(f"unsupported schema version {message.get('v')!r}")
    kind = message.get("type")
    if kind not in REQUIRED:
        raise MessageError(f"unknown message type {kind!r}")
    for name, expected in REQUIRED[kind].items():
        value = message.get(name)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value) if abs(value) < 1e308 else math.inf   # float() of a huge int raises
        if not isinstance(value, expected) or isinstance(value, bool) or (
                expected is float and not math.isfinite(value)):
            raise MessageError(f"{kind} field {name!r} missing or not {expected.__name__}")
    if not 0 < len(message["stream"]) <= MAX_STREAM_CHARS:
        raise MessageError(f"{kind} field 'stream' is empty or longer than {MAX_STREAM_CHARS} characters")
    if kind == "emotion" and len(message["mood"]) > MAX_MOOD_CHARS:
        raise MessageError(f"emotion field 'mood' is longer than {MAX_MOOD_CHARS} characters")
    check_ranges(message)
    if kind == "emotion":
        check_explanation(message)
    return message


def _is_term(value: Any) -> bool:
    return is_number(value, TERM_LIMIT)


def _by_axis(message: Mapping[str, Any], name: str) -> dict:
    value = message[name]
    if not isinstance(value, dict) or set(value) != set(AXES):
        raise MessageError(f"emotion field {name!r} must have exactly the keys {', '.join(AXES)}")
    return value


def check_explanation(message: Mapping[str, Any]) -> None:
    """Raise MessageError unless the optional explanation (per axis: 12
    rows of as many numbers, at most MAX_STEPS) and drivers (per axis: the
    same names, at most MAX_DRIVERS, each a number) have their shapes."""
    if "explanation" in message:
        steps = set()
        for axis, rows in _by_axis(message, "explanation").items():
            if not (isinstance(rows, list) and len(rows) == PITCH_CLASSES
                    and all(isinstance(row, list) and all(map(_is_term, row)) for row in rows)):
                raise MessageError(f"emotion field 'explanation' {axis!r} is not {PITCH_CLASSES} rows of numbers")
            steps |= {len(row) for row in rows}
        if len(steps) != 1 or not 0 < steps.pop() <= MAX_STEPS:
            raise MessageError(f"emotion field 'explanation' rows differ in length or are not 1 to {MAX_STEPS} long")
    if "drivers" in message:
        drivers = _by_axis(message, "drivers")
        names = [list(terms) if isinstance(terms, dict) else None for terms in drivers.values()]
        if not (names[0] and names[0] == names[1] and len(names[0]) <= MAX_DRIVERS
                and all(0 < len(name) <= MAX_DRIVER_NAME for name in names[0])
                and all(_is_term(value) for terms in drivers.values() for value in terms.values())):
            raise MessageError(f"emotion field 'drivers' is not, for both axes, the same 1 to {MAX_DRIVERS} "
                               f"names of numbers")
