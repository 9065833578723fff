"""`rt-mer plot`: the valence-arousal trajectory of an `rt-mer analyze` CSV
or a `--record` JSONL recording, drawn as PNG, SVG or PDF.

One section per analysed file or live stream: valence and arousal over time
above a band of the quadrant, and the path through the valence-arousal plane
coloured by time. It reads in black and white too: line styles, hatching and
a dark-to-light time scale carry what the colours do. matplotlib (the [plot]
extra) is imported only when drawing.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dsp.frontend import WINDOW_SECONDS
from ..paths import refuse_overwriting, require_regular_file
from ..publish import schema
from ..messages import MAX_SECONDS, QUADRANT_NAMES
from ..errors import RtMerError

FORMATS = (".png", ".svg", ".pdf")
INSTALL_HINT = "rt-mer plot needs matplotlib: pip install 'rt-mer[plot]'"
CSV_COLUMNS = ("file", "t_start", "t_end", "valence", "arousal", "quadrant")
NOT_OURS = "not an rt-mer CSV (rt-mer analyze --out) or JSONL recording (rt-mer run --record)"

PAGE_WIDTH = 8.27          # inches: A4's width; four sections stay within A4 and Letter height
SECTION_HEIGHT = 2.55
LEGEND_HEIGHT = 0.45
SECTIONS_PER_PAGE = 4
DPI = 150
# Russell's quadrants: name, Okabe-Ito colour (colour-blind safe, distinct in
# grey) and a hatch, so that the band reads without colour.
QUADRANTS = {number: (QUADRANT_NAMES[number], colour, hatch) for number, colour, hatch in (
    (1, "#F0E442", ""), (2, "#D55E00", "xxx"), (3, "#0072B2", "..."), (4, "#009E73", "\\\\\\"))}


class PlotError(RtMerError):
    """A user-facing failure: one line, no traceback."""


@dataclass
class Trajectory:
    """One section: a file's or a stream's windows, `time` their centres (s)."""
    title: str
    time: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    quadrant: np.ndarray
    window: float                 # seconds, as the data say: a recording may come from another model


# ------------------------------------------------------------------ reading

def read_trajectories(path: Path) -> list[Trajectory]:
    """The sections of one input, told by content: JSON lines or a CSV."""
    require_regular_file(path, PlotError)       # a FIFO's read would wait for a writer
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlotError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise PlotError(f"{path}: {NOT_OURS}") from None
    except OSError as error:
        raise PlotError(f"{path}: cannot read ({error.strerror})") from None
    if not text.strip():
        raise PlotError(f"{path}: empty")
    return from_jsonl(path, text) if text.lstrip().startswith("{") else from_csv(path, text)


def from_csv(path: Path, text: str) -> list[Trajectory]:
    """`rt-mer analyze --out` rows, one section per audio file in them."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise PlotError(f"{path}: {NOT_OURS}: no column {', '.join(missing)}")
    files: dict[str, list[tuple]] = {}
    try:
        for row in reader:
            start, end, valence, arousal = (number(row, c, float) for c in ("t_start", "t_end", "valence", "arousal"))
            quadrant = number(row, "quadrant", int)
            schema.check_ranges({"type": "CSV", "valence": valence, "arousal": arousal, "quadrant": quadrant})
            files.setdefault(row["file"], []).append(((start + end) / 2, valence, arousal, quadrant, end - start))
    except (ValueError, csv.Error) as error:      # schema.MessageError is a ValueError
        raise PlotError(f"{path} line {reader.line_num}: {error}") from None
    if not files:
        raise PlotError(f"{path}: no rows")
    return [section(f"{Path(name).name} ({path.name})", rows) for name, rows in files.items()]


def number(row: dict, column: str, kind: type) -> float | int:
    """A CSV cell as a finite number of `kind`; ValueError naming the column."""
    if row[column] is None:
        raise ValueError(f"{column} is missing (the row ends early)")
    try:
        value = kind(row[column])
    except ValueError:
        raise ValueError(f"{column} is not {'a whole number' if kind is int else 'a number'}: "
                         f"{row[column]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{column} is {row[column]!r}, not a finite number")
    return value


def from_jsonl(path: Path, text: str) -> list[Trajectory]:
    """A recording's emotion messages (status messages skipped), one section
    per stream in order of name, each checked by the schema as a subscriber
    would. A last line cut off (the recording process was killed) is skipped."""
    streams: dict[str, list[tuple]] = {}
    windows: dict[str, float] = {}           # from each stream's status messages
    lines = text.split("\n")
    for line_number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            message = schema.decode(line.encode())
        except schema.MessageError as error:
            if line_number == len(lines):        # no newline after it: the writer never finished it
                break
            raise PlotError(f"{path} line {line_number}: {error}") from None
        stream = message["stream"]
        if message["type"] == "status" and isinstance(message.get("window_s"), (int, float)) \
                and 0 < message["window_s"] < MAX_SECONDS:
            windows[stream] = float(message["window_s"])
        elif message["type"] == "emotion":
            window = windows.get(stream, WINDOW_SECONDS)
            streams.setdefault(stream, []).append((
                message["t"] - window / 2, message["valence"], message["arousal"], message["quadrant"], window))
    if not streams:
        raise PlotError(f"{path}: no emotion messages (a run records its first after one "
                        f"{WINDOW_SECONDS:g} s window)")
    return [section(f"{stream} ({path.name})", streams[stream]) for stream in sorted(streams)]


def section(title: str, rows: list[tuple]) -> Trajectory:
    """(centre, valence, arousal, quadrant, window) rows as one section."""
    time, valence, arousal, quadrant, window = (np.array(column) for column in zip(*rows))
    return Trajectory(title, time, valence, arousal, quadrant.astype(int), float(np.median(window)))


# ------------------------------------------------------------------ drawing

def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError(INSTALL_HINT) from None


def check_output(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        kind = f"unknown image type {path.suffix!r}" if path.suffix else "no image type"
        raise PlotError(f"{path}: {kind}; name it .png, .svg or .pdf")


def figures(trajectories: list[Trajectory]) -> list:
    """One matplotlib Figure a page, SECTIONS_PER_PAGE sections each."""
    return [page(trajectories[i:i + SECTIONS_PER_PAGE])
            for i in range(0, len(trajectories), SECTIONS_PER_PAGE)]


def page(trajectories: list[Trajectory]):
    from matplotlib.figure import Figure
    figure = Figure(figsize=(PAGE_WIDTH, LEGEND_HEIGHT + SECTION_HEIGHT * len(trajectories)),
                    layout="constrained")
    rows = figure.subfigures(len(trajectories), 1, squeeze=False)[:, 0]
    for subfigure, trajectory in zip(rows, trajectories):
        draw_section(subfigure, trajectory)
    figure.legend(handles=legend_handles(), loc="outside upper center", ncols=4, fontsize=7, frameon=False)
    return figure


def draw_section(figure, trajectory: Trajectory) -> None:
    """Valence and arousal over time, the quadrant band beneath, and the
    path through the plane beside them."""
    grid = figure.add_gridspec(2, 2, width_ratios=(2.1, 1), height_ratios=(5, 1))
    series = figure.add_subplot(grid[0, 0])
    band = figure.add_subplot(grid[1, 0], sharex=series)
    plane = figure.add_subplot(grid[:, 1])
    figure.suptitle(trajectory.title, fontsize=9, fontweight="bold")
    edges = window_edges(trajectory.time)
    draw_series(series, trajectory, edges)
    draw_band(band, trajectory.quadrant, edges, trajectory.window)
    draw_plane(figure, plane, trajectory)


def window_edges(time: np.ndarray) -> np.ndarray:
    """Where each window's share of the time axis starts and ends: halfway
    to its neighbours."""
    step = float(np.median(np.diff(time))) if len(time) > 1 else 0.5
    middles = (time[1:] + time[:-1]) / 2
    return np.concatenate([[time[0] - step / 2], middles, [time[-1] + step / 2]])


def draw_series(axes, trajectory: Trajectory, edges: np.ndarray) -> None:
    lone = {"marker": "o", "markersize": 4} if len(trajectory.time) == 1 else {}     # a line needs two points
    for name, values, style in (("valence", trajectory.valence, VALENCE), ("arousal", trajectory.arousal, AROUSAL)):
        axes.plot(trajectory.time, values, label=name, **style, **lone)
    axes.axhline(0, color="0.6", linewidth=0.6)
    axes.set(ylim=(-1.05, 1.05), xlim=(edges[0], edges[-1]), yticks=(-1, -0.5, 0, 0.5, 1))
    axes.grid(axis="y", color="0.9", linewidth=0.5)
    axes.tick_params(labelbottom=False, labelsize=7)
    axes.set_ylabel("value", fontsize=7)


def draw_band(axes, quadrants: np.ndarray, edges: np.ndarray, window: float) -> None:
    """The quadrant of each window as coloured, hatched runs."""
    from matplotlib.ticker import FuncFormatter
    changes = np.flatnonzero(np.diff(quadrants)) + 1
    starts, ends = np.r_[0, changes], np.r_[changes, len(quadrants)]
    for number, (_, colour, hatch) in QUADRANTS.items():
        runs = [(edges[s], edges[e] - edges[s]) for s, e in zip(starts, ends) if quadrants[s] == number]
        if runs:
            axes.broken_barh(runs, (0, 1), facecolors=colour, edgecolor="0.2", linewidth=0, hatch=hatch)
    axes.set(ylim=(0, 1), yticks=())
    axes.set_ylabel("quadrant", fontsize=6, rotation=0, ha="right", va="center")
    axes.xaxis.set_major_locator(clock_ticks(edges[0], edges[-1], 8))
    axes.xaxis.set_major_formatter(FuncFormatter(clock))
    axes.tick_params(labelsize=7)
    axes.set_xlabel(f"time (centre of each {window:g} s window)", fontsize=7)


def draw_plane(figure, axes, trajectory: Trajectory) -> None:
    """The path through the valence-arousal plane, dark (start) to light
    (end), over the four quadrants."""
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import FuncFormatter
    for number, (name, colour, _) in QUADRANTS.items():
        sx, sy = (1 if number in (1, 4) else -1), (1 if number in (1, 2) else -1)
        axes.fill_between((0, sx), 0, sy, color=colour, alpha=0.13, linewidth=0)
        # Outside the axes, where no point of the path (|v|, |a| <= 1) nor
        # a start or end marker (at most MARKER_REACH past the edge) can
        # cover it: above the top corners, and beside the "valence" label
        # under the bottom ones (below the tick labels).
        axes.annotate(f"{number} {name}", xy=((1 + sx) / 2, (1 + sy) / 2), xycoords="axes fraction",
                      xytext=(0, LABEL_OFFSET if sy > 0 else -BOTTOM_LABEL_OFFSET), textcoords="offset points",
                      fontsize=7, color="0.25", ha="right" if sx > 0 else "left", va="bottom" if sy > 0 else "top")
    axes.axhline(0, color="0.6", linewidth=0.6)
    axes.axvline(0, color="0.6", linewidth=0.6)
    points = np.column_stack([trajectory.valence, trajectory.arousal])
    path = LineCollection(np.stack([points[:-1], points[1:]], axis=1), cmap=time_colours(), linewidth=1.4)
    path.set_array((trajectory.time[:-1] + trajectory.time[1:]) / 2)
    path.set_clim(trajectory.time[0], max(trajectory.time[-1], trajectory.time[0] + 1e-9))
    axes.add_collection(path)
    axes.plot(*points[0], **START)
    axes.plot(*points[-1], **END)
    axes.set(xlim=(-1, 1), ylim=(-1, 1), xticks=(-1, 0, 1), yticks=(-1, 0, 1), aspect="equal")
    axes.set_xlabel("valence", fontsize=7, labelpad=1)
    axes.set_ylabel("arousal", fontsize=7, labelpad=1)
    axes.tick_params(labelsize=7)
    bar = figure.colorbar(path, ax=axes, fraction=0.06, pad=0.03, format=FuncFormatter(clock))
    bar.locator = clock_ticks(trajectory.time[0], trajectory.time[-1], 6)
    bar.ax.tick_params(labelsize=6)
    bar.set_label("time", fontsize=7)


def time_colours():
    """viridis without its palest end, which vanishes on white paper."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    return ListedColormap(colormaps["viridis"](np.linspace(0, 0.82, 256)))


CLOCK_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600)


def clock_ticks(start: float, end: float, most: int):
    """Ticks on whole seconds, minutes or hours, at most `most` of them."""
    from matplotlib.ticker import MultipleLocator
    span = max(end - start, 1e-9)
    step = next((step for step in CLOCK_STEPS if span / step <= most), 3600 * math.ceil(span / 3600 / most))
    return MultipleLocator(step)


def clock(seconds: float, _position=None) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour."""
    minutes, second = divmod(int(round(seconds)), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"


VALENCE = {"color": "black", "linestyle": "-", "linewidth": 1.3}
AROUSAL = {"color": "#CC79A7", "linestyle": (0, (4, 1.5)), "linewidth": 1.5}
START = {"marker": "o", "markersize": 6, "markerfacecolor": "white", "markeredgecolor": "black", "linestyle": "",
         "clip_on": False}
END = {"marker": "s", "markersize": 5, "color": "black", "linestyle": "", "clip_on": False}
MARKER_REACH = max(START["markersize"], END["markersize"]) / 2      # points a marker reaches past its centre
LABEL_OFFSET = MARKER_REACH + 2          # points between the plane's top edge and its upper quadrant names
BOTTOM_LABEL_OFFSET = 15                 # points below its bottom edge: past the ticks and their labels


def legend_handles() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    return [Line2D([], [], label="valence", **VALENCE), Line2D([], [], label="arousal", **AROUSAL),
            Line2D([], [], label="start", **START), Line2D([], [], label="end", **END),
            *(Patch(facecolor=colour, hatch=hatch, edgecolor="0.2", linewidth=0, label=f"{number} {name}")
              for number, (name, colour, hatch) in QUADRANTS.items())]


# ------------------------------------------------------------------ writing

def output_paths(out: Path, pages: int) -> list[Path]:
    """PDF: one file of `pages` pages. PNG and SVG: one image, or OUT-1,
    OUT-2, ... when there are several pages."""
    if out.suffix.lower() == ".pdf" or pages == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, pages + 1)]


def save(pages: list, out: Path) -> list[Path]:
    """Each page into `output_paths`; returns the paths written."""
    try:
        if out.suffix.lower() == ".pdf":
            from matplotlib.backends.backend_pdf import PdfPages
            with PdfPages(out, metadata={"Creator": "rt-mer plot"}) as pdf:
                for figure in pages:
                    pdf.savefig(figure)
            return [out]
        paths = output_paths(out, len(pages))
        for figure, path in zip(pages, paths):
            figure.savefig(path, dpi=DPI)
        return paths
    except OSError as error:
        raise PlotError(f"{getattr(error, 'filename', None) or out}: cannot write ({error.strerror})") from None


def plot(inputs: list[Path], out: Path) -> list[tuple[Path, int, list[str]]]:
    """Draw every input into `out`; returns each file written with its
    page count and the titles of its sections. Raises PlotError."""
    check_output(out)
    require_matplotlib()
    trajectories = [trajectory for path in inputs for trajectory in read_trajectories(path)]
    pages = figures(trajectories)
    refuse_overwriting([("-o", path) for path in output_paths(out, len(pages))], [("", path) for path in inputs],
                       PlotError)
    titles = [t.title for t in trajectories]
    paths = save(pages, out)
    if len(paths) == 1:
        return [(paths[0], len(pages), titles)]
    per_page = SECTIONS_PER_PAGE
    return [(path, 1, titles[i * per_page:(i + 1) * per_page]) for i, path in enumerate(paths)]
