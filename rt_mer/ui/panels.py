"""The dashboard's panels: each a small function of one stream's snapshot
(`StreamView`), in the style of Rich; `stream_panel` frames them for one
stream, `SizedPanel` fits that to whatever region a Layout gives it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..dsp.frontend import FMIN
from ..messages import (AXES, CLIP_DBFS, PITCH_CLASSES, QUADRANT_NAMES, is_number)
from ..publish.schema import MessageError, check_explanation
from ..realtime import is_real_time


HISTORY_S = 60.0           # the history a panel draws
STALE_S = 3.0               # a stream silent this long is flagged in its title
METER_FLOOR_DBFS = -60.0
# Below these a stream panel drops nested frames (compact); below MIN_* the
# grid shows fewer streams rather than unreadable ones.
FULL_W, FULL_H = 70, 19
MIN_W, MIN_H = 56, 10
RIGHT_COMPACT, RIGHT_FULL = 36, 39     # the least width right of the plane, the gap (and frames) included
COMPACT_ROWS = 5                       # mood, history and level lines in a compact panel

# Russell quadrants: name drawn in the plane's corner, colour, signs.
QUADRANTS = {number: (QUADRANT_NAMES[number], colour, signs) for number, colour, signs in (
    (1, "yellow", "+valence +arousal"), (2, "red", "-valence +arousal"),
    (3, "blue", "-valence -arousal"), (4, "green", "+valence -arousal"))}
AXIS = "grey42"
BLOCKS = " ▁▂▃▄▅▆▇█"
AXIS_COLOURS = {"valence": "cyan", "arousal": "magenta"}

# The explanation (messages of `--explain`): each driver's logit term as a
# signed bar, each pitch class's share of the harmony terms as a heat strip.
DRIVER_FULL = 2.0           # logit term of a full bar: the shipped model's terms reach about 2
BAR_HALF = 8                # cells either side of zero: half a cell is DRIVER_FULL / 16
SHARE_FULL = 0.4            # a pitch class's share (logit) at full shade and "++"
SHARE_QUIET = 0.04          # below this, "·"
NOTE_NAMES = ("A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#")
# Pitch class 0 is the front-end's lowest semitone (FMIN: A1, so A).
PITCH_NAMES = tuple(NOTE_NAMES[(i + round(12 * math.log2(FMIN / 440))) % 12] for i in range(PITCH_CLASSES))
LABEL_W = 9                 # "register " / "valence "
BAR_GAP = 4                 # between the valence and arousal bars: apart even without colour, both full
EXPLAIN_W = LABEL_W + 2 * (2 * BAR_HALF + 1) + BAR_GAP   # 47: two bars; the strip is 9 + 12 x 3
# Under the heat strip: what its cells mean (the bars have their scale above them).
HEAT_LEGEND = " " * LABEL_W + "++ + raise  -- - lower  · little"


@dataclass(frozen=True)
class StreamView:
    """An immutable copy of one stream's state, taken for one render."""
    name: str
    emotion: dict                                  # latest emotion message, {} before the first
    status: dict                                   # latest status message, {} before the first
    level: tuple[Any, Any]                         # (rms, peak) dBFS of the latest hop (or status)
    history: list[tuple[float, float, float]]      # (t, valence, arousal), the last HISTORY_S
    trail: list[tuple[float, float]]               # (valence, arousal), oldest first, current last
    missed: int                                    # messages lost to seq gaps, both topics
    age: float                                     # seconds since the stream's last message


# ----------------------------------------------------------------- helpers

def _num(mapping: Any, *keys: str) -> float | None:
    """mapping[k1][k2]... as a finite float, or None: optional fields may be absent or malformed."""
    value = mapping
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return _finite(value)


def _finite(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "--" if value is None else f"{value:{spec}}{unit}"


def _quadrant(view: StreamView) -> int | None:
    q = view.emotion.get("quadrant")
    return q if q in QUADRANTS else None


def _warming(view: StreamView) -> bool:
    return not view.emotion or view.status.get("state") == "warming"


def _odd(n: int) -> int:
    """Odd sizes give the plane a centre row and column for its axes."""
    return n if n % 2 else n - 1


# ------------------------------------------------------------------ panels

def plane(view: StreamView, cols: int, rows: int) -> Text:
    """The valence-arousal plane: axes, quadrant names in their corners, the
    trail fading with age and the current point."""
    cells = [[(" ", "")] * cols for _ in range(rows)]
    cx, cy = cols // 2, rows // 2
    cells[cy] = [("─", AXIS)] * cols
    for row in cells:
        row[cx] = ("│", AXIS)
    cells[cy][cx] = ("┼", AXIS)
    for q, y, right in ((2, 0, False), (1, 0, True), (3, rows - 1, False), (4, rows - 1, True)):
        name, colour, _ = QUADRANTS[q]
        x0 = cols - len(name) if right else 0
        for i, char in enumerate(name):
            cells[y][x0 + i] = (char, colour)

    def cell(v: float, a: float) -> tuple[int, int]:
        v, a = min(1.0, max(-1.0, v)), min(1.0, max(-1.0, a))
        return round((1 - a) / 2 * (rows - 1)), round((v + 1) / 2 * (cols - 1))

    trail = view.trail
    for k, (v, a) in enumerate(trail[:-1]):        # oldest first, so newer points overwrite
        age = (len(trail) - 1 - k) / max(1, len(trail) - 1)    # 0 = newest .. 1 = oldest
        grey = round(235 - 170 * age)
        y, x = cell(v, a)
        cells[y][x] = ("•" if age < 0.4 else "·", f"rgb({grey},{grey},{grey})")
    if trail:
        y, x = cell(*trail[-1])
        q = _quadrant(view)
        cells[y][x] = ("●", f"bold {QUADRANTS[q][1] if q else 'white'}")
    return Text("\n").join(Text.assemble(*row) for row in cells)


def mood(view: StreamView, compact: bool = False) -> Text:
    """The mood word, big (spaced capitals) unless compact, with its quadrant."""
    if _warming(view):
        window = _num(view.status, "window_s")
        note = f"first values after {window:g} s" if window and not compact else ""
        return Text.assemble(("warming up", "bold yellow"), "\n" * (not compact) + note, justify="center")
    q = _quadrant(view)
    name, colour, signs = QUADRANTS[q] if q else ("?", "white", "")
    word = str(view.emotion.get("mood", "?"))
    if compact:
        return Text.assemble((word.upper(), f"bold {colour}"), f"  Q{q} {name}" if q else "",
                             no_wrap=True, overflow="ellipsis")
    return Text.assemble((" ".join(word.upper()), f"bold reverse {colour}"), f"\nQ{q}  {signs}" if q else "",
                         justify="center", no_wrap=True, overflow="ellipsis")


def _columns(history: list[tuple[float, float, float]], index: int, width: int) -> list[float | None]:
    """The last value in each of `width` time bins over the HISTORY_S up to the newest sample."""
    columns: list[float | None] = [None] * width
    if history:
        end = history[-1][0]
        for sample in history:
            x = int((sample[0] - end + HISTORY_S) / HISTORY_S * width)
            if x >= 0:
                columns[min(x, width - 1)] = sample[index]
    return columns


def sparkline(values: list[float | None], rows: int, style: str) -> Text:
    """Values in [-1, 1] as bars `rows` high (8 steps a row); gaps stay blank."""
    lines = []
    for r in range(rows - 1, -1, -1):
        chars = []
        for v in values:
            level = 0 if v is None else max(1, round((min(1.0, max(-1.0, v)) + 1) / 2 * rows * 8))
            chars.append(BLOCKS[min(8, max(0, level - 8 * r))])
        lines.append("".join(chars))
    return Text("\n".join(lines), style=style, no_wrap=True)


def history(view: StreamView, width: int, rows: int) -> Group:
    """Valence and arousal over the last minute, each with its current value;
    rows = 0 puts a one-row sparkline on the label's line (compact)."""
    parts = []
    for index, key, colour in ((1, "valence", "cyan"), (2, "arousal", "magenta")):
        label = Text.assemble(f"{key} ", (_fmt(_num(view.emotion, key), "+.2f"), f"bold {colour}"))
        if rows:
            parts += [label, sparkline(_columns(view.history, index, width), rows, colour)]
        else:
            spark_width = max(1, width - len(label) - 1)
            parts.append(label + " " + sparkline(_columns(view.history, index, spark_width), 1, colour))
    return Group(*parts)


def _meter(db: float | None, width: int) -> Text:
    fill = 0 if db is None else round(min(1.0, max(0.0, 1 - db / METER_FLOOR_DBFS)) * width)
    colour = "green" if db is None or db < -18 else "yellow" if db < -6 else "red"
    return Text.assemble(("█" * fill, colour), ("░" * (width - fill), "grey30"))


def level(view: StreamView, width: int) -> Text:
    """RMS and peak input level as bars from METER_FLOOR_DBFS to 0 dBFS, and a clip flag."""
    rms, peak = (_finite(v) for v in view.level)
    clipped = (_num(view.status, "clipped") or 0) > 0 or (peak is not None and peak >= CLIP_DBFS)
    bar = max(1, width - 22)
    return Text.assemble("RMS  ", _fmt(rms, "6.1f").rjust(6), " dBFS ", _meter(rms, bar), "\n",
                         "peak ", _fmt(peak, "6.1f").rjust(6), " dBFS ", _meter(peak, bar),
                         (" CLIP", "bold reverse red") if clipped else "     ", no_wrap=True)


def packed(items: list[Text], width: int) -> list[Text]:
    """Items joined by " · ", a new line wherever the next would pass `width`."""
    lines = [Text()]
    for item in items:
        if lines[-1] and len(lines[-1]) + 3 + len(item) > width:
            lines.append(Text())
        lines[-1].append(" · " if lines[-1] else "")
        lines[-1].append_text(item)
    return lines


def status(view: StreamView, width: int, compact: bool = False) -> list[Text]:
    """Engine, window/hop, total latency p50/p99 and the scheduling it ran
    under, drop and overrun counters, missed messages; counters above zero
    in red. Lines wrap at `width` between items rather than being cut: a
    narrow screen must not hide a drop."""
    s = view.status
    engine = s.get("engine") or view.emotion.get("engine") or "--"
    reason = f" ({s['engine_reason']})" if s.get("engine_reason") else ""
    timing = [Text(f"window {_fmt(_num(s, 'window_s'), 'g', ' s')} / hop {_fmt(_num(s, 'hop_s'), 'g', ' s')}"),
              Text(f"{'' if compact else 'latency '}p50 {_fmt(_num(s, 'latency_ms', 'p50', 'total'), '.1f', ' ms')}"),
              Text(f"p99 {_fmt(_num(s, 'latency_ms', 'p99', 'total'), '.1f', ' ms')}")]
    threads = [s.get(field) for field in ("scheduling", "capture_scheduling")]
    if all(isinstance(t, (str, type(None))) for t in threads) and threads[0]:     # the tail depends on it: say it
        timing.append(Text("real-time", "green") if is_real_time(*filter(None, threads))
                      else Text("normal priority", "yellow"))
    # Rare events (a format mix-up, a file that ends before its header says)
    # are shown only once they happen, and first.
    rare = [(label, value) for label, value in (("out of range", _num(s, "out_of_range")),
                                                ("truncated", _num(s, "truncated"))) if value]
    counters = [Text(f"{label} {_fmt(value, '.0f')}", "bold red" if value else "")
                for label, value in rare + [("overflows", _num(s, "overflows")),
                                            ("dropped", _num(s, "dropped_blocks")),
                                            ("nonfinite", _num(s, "nonfinite")), ("late", _num(s, "late_windows")),
                                            ("missed", view.missed)]]
    engine_line = Text(f"engine {engine}{reason}")
    lines = packed([engine_line, *timing], width) if compact else [engine_line, *packed(timing, width)]
    return lines + packed(counters, width)


def _explanation_parts(view: StreamView) -> tuple[dict | None, dict | None]:
    """The message's drivers and explanation, both None unless they have
    their schema shapes (messages made in process skip the decoder's check)."""
    try:
        check_explanation(view.emotion)
    except MessageError:
        return None, None
    return view.emotion.get("drivers"), view.emotion.get("explanation")


def _drivers(drivers: dict | None) -> list[tuple[str, float, float]] | None:
    """(name, valence term, arousal term) of each driver, in its order."""
    if not drivers:
        return None
    return [(str(name), float(term), float(drivers["arousal"][name])) for name, term in drivers["valence"].items()]


def _shares(explanation: dict | None) -> dict[str, list[float]] | None:
    """Each pitch class's share of the valence and arousal harmony terms
    over the window (the map's mean over time, / 12: the shares add up to
    the harmony and key bars)."""
    if not explanation:
        return None
    return {axis: [sum(row) / len(row) / PITCH_CLASSES for row in explanation[axis]] for axis in AXES}


def signed_bar(value: float, style: str) -> Text:
    """A logit term as a bar from a centre line: right when it pushes the
    axis up, left when down, half a cell a step; '>' or '<' past full scale."""
    steps = min(2 * BAR_HALF, round(abs(value) / DRIVER_FULL * 2 * BAR_HALF))
    cells = "█" * (steps // 2) + "▌" * (steps % 2)            # outwards from the centre
    if abs(value) > DRIVER_FULL:
        cells = cells[:-1] + ">"
    if value < 0:
        left, right = cells.replace("▌", "▐").replace(">", "<")[::-1].rjust(BAR_HALF), " " * BAR_HALF
    else:
        left, right = " " * BAR_HALF, cells.ljust(BAR_HALF)
    return Text.assemble((left, style), ("│", AXIS), (right, style))


def _heat(share: float) -> tuple[str, str]:
    """A pitch class's share as a cell: its sign and size in characters
    ("·", "+", "++", "-", "--"), shaded orange (up) or blue (down)."""
    size = abs(share)
    sign = "+" if share > 0 else "-"
    glyph = "·" if size < SHARE_QUIET else sign * (1 + (size >= SHARE_FULL / 2))
    r, g, b = (230, 120, 20) if share > 0 else (30, 110, 230)
    mix = min(1.0, size / SHARE_FULL)
    shade = ",".join(str(round(48 + (c - 48) * mix)) for c in (r, g, b))
    return glyph.ljust(2), f"bold white on rgb({shade})"


def explanation(view: StreamView) -> Text | None:
    """What drives the current prediction, from the message alone: each
    driver's term of the valence and arousal logits as signed bars, then
    the heat strip of each pitch class's share. None when the message has
    neither (no --explain)."""
    terms, explained = _explanation_parts(view)
    drivers, shares = _drivers(terms), _shares(explained)
    if drivers is None and shares is None:
        return None
    lines = []
    if drivers:
        head = Text("drives".ljust(LABEL_W))
        for axis in AXES:
            head.append(f"-{DRIVER_FULL:g}", AXIS)
            head.append(f"{axis:^{2 * BAR_HALF - 3}}", AXIS_COLOURS[axis])
            head.append(f"+{DRIVER_FULL:g}".ljust(2 + BAR_GAP), AXIS)
        lines.append(head)
        for name, valence, arousal in drivers:
            lines.append(Text.assemble(name[:LABEL_W - 1].ljust(LABEL_W), signed_bar(valence, AXIS_COLOURS["valence"]),
                                       " " * BAR_GAP, signed_bar(arousal, AXIS_COLOURS["arousal"])))
    if shares:
        lines += [Text("")] * bool(drivers)
        lines.append(Text("notes".ljust(LABEL_W) + "".join(name.ljust(3) for name in PITCH_NAMES), style=AXIS))
        for axis in AXES:
            row = Text(axis.ljust(LABEL_W), style=AXIS_COLOURS[axis])
            for share in shares[axis]:
                row.append(*_heat(share))
                row.append(" ")
            lines.append(row)
        lines.append(Text(HEAT_LEGEND, style=AXIS))
    return Text("\n", no_wrap=True, overflow="crop").join(lines)


def _title(view: StreamView) -> Text:
    state = "warming up" if _warming(view) else str(view.status.get("state") or "running")
    t = _num(view.emotion, "t")
    title = Text.assemble((view.name, "bold"), f" · {state}", f" · t {t:.1f} s" if t is not None else "")
    if view.age > STALE_S and state != "ended":
        title.append(f" · no messages for {view.age:.0f} s", "bold red")
    return title


def stream_panel(view: StreamView, width: int, height: int, subtitle: str | None = None) -> Panel:
    """One stream in a width x height box: the plane beside mood, history,
    level and, with --explain, what drives the prediction; status lines
    below. Nested frames only where there is room."""
    explain = explanation(view)
    explain_h = len(explain.plain.splitlines()) if explain else 0
    right_full = max(RIGHT_FULL, EXPLAIN_W + 7) if explain else RIGHT_FULL     # its frame 4, the gap 3
    compact = width < FULL_W + right_full - RIGHT_FULL or height < FULL_H + (explain_h + 2 if explain else 0)
    inner_w, inner_h = width - 4, height - 2
    lines = status(view, inner_w, compact)
    # A panel too short for them all loses the engine line first, then the
    # timing: the counters are the last lines and always stay.
    lines = lines[max(0, len(lines) - max(1, inner_h - COMPACT_ROWS)):]
    body_h = inner_h - len(lines)
    right_min = right_full if not compact else max(RIGHT_COMPACT, EXPLAIN_W + 2) if explain else RIGHT_COMPACT
    if explain and compact and (body_h < COMPACT_ROWS + 1 + explain_h or inner_w - right_min < 9):
        explain = (Text("--explain: enlarge the terminal", style=AXIS, no_wrap=True, overflow="ellipsis")
                   if body_h >= COMPACT_ROWS + 2 else None)
        right_min = RIGHT_COMPACT
    rows = max(3, _odd(body_h if compact else body_h - 2))
    cols = max(9, _odd(min(2 * rows + 1, inner_w - right_min)))   # chars are ~2:1 tall
    right_w = inner_w - cols - 2 - (0 if compact else 1)
    if compact:
        left = plane(view, cols, rows)
        right = Group(mood(view, True), history(view, right_w, 0), level(view, right_w),
                      *([Text(""), explain] if explain else []))
    else:
        left = Panel(plane(view, cols, rows), title="arousal ↑", subtitle="valence →", height=body_h,
                     border_style=AXIS, padding=0)
        # mood and input take 4 rows each, the history frame 2, its labels 2, the explanation its own and 2
        spark_rows = max(1, min(4, (body_h - 8 - 4 - (explain_h + 2 if explain else 0)) // 2))
        right = Group(Panel(mood(view), title="mood", border_style=AXIS),
                      Panel(history(view, right_w - 4, spark_rows), title=f"last {HISTORY_S:.0f} s",
                            border_style=AXIS),
                      Panel(level(view, right_w - 4), title="input", border_style=AXIS),
                      *([Panel(explain, title="what drives it", border_style=AXIS)] if explain else []))
    body = Table.grid(padding=(0, 2 if compact else 1))
    body.add_column(width=cols + (0 if compact else 2))
    body.add_column(width=right_w)
    body.add_row(left, right)
    status_lines = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
    return Panel(Group(body, status_lines), title=_title(view), title_align="left",
                 subtitle=Text(subtitle) if subtitle else None, subtitle_align="right", height=height, padding=(0, 1))


class SizedPanel:
    """Renders a stream panel to whatever region its parent Layout gives it."""

    def __init__(self, view: StreamView, subtitle: str | None):
        self.view, self.subtitle = view, subtitle

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield stream_panel(self.view, options.max_width, options.height or console.height, self.subtitle)
