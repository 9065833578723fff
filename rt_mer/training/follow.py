"""The follow benchmark: how fast the published valence and arousal follow a
hard cut from one clip to another, and how steady they are within a clip.

    python -m rt_mer.training.follow                  # today's smoothing and the raw values
    python -m rt_mer.training.follow --grid           # every setting of the grid and the choice (docs/follow.md)
    python -m rt_mer.training.follow --model 'folds/fold{fold}-seed0.onnx'   # fold models: held out
    python -m rt_mer.training.follow --clips mine.csv  # your own clips (file,quadrant per row)

Pairs of 4Q clips within each artist-fold validation fold (the split
training uses), 20 s each, butted together, go through the live path's
StreamAnalyzer (the front-end, windows and the engine as `rt-mer run
--stdin` drives them, as fast as the machine allows). The model's raw
outputs per window are cached per pair and model, so every smoothing
setting replays them through the analyzer's `emit` without inference.
With the shipped model these clips were in its training data: the step
response is mostly a property of the window and the smoothing, but the
numbers are not held out until --model names fold models. --clips pairs
other labelled clips instead, all of them in one group.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import AudioError, open_audio, read_audio
from ..dsp.frontend import SAMPLE_RATE, WINDOW_SECONDS
from ..inference import default_model, open_engine
from ..inference.base import WINDOW_SHAPE, EngineError
from ..messages import AXES, quadrant
from ..paths import refuse_overwriting
from ..stream.analyzer import DueWindow, StreamAnalyzer
from ..stream.smoothing import ONE_EURO_BETA, ONE_EURO_DERIVATIVE_CUTOFF, make_smoother
from ..stream.windows import DEFAULT_HOP, hop_frames
from .data import corpus
from .data.clips import HIGH_AROUSAL, POSITIVE_VALENCE, fourq_folds
from .data.corpus import write_whole

CLIP_SECONDS = 20.0            # of each clip; the cut is at this stream time
SETTLE_SECONDS = 8.0           # steadiness is measured over the first clip from here to the cut
MIN_STEP = 0.2                 # the two clips' levels must differ this much for the pair to count on an axis
SIDES = {"valence": POSITIVE_VALENCE, "arousal": HIGH_AROUSAL}
CHOOSE_FOLDS, CONFIRM_FOLDS = [0, 1, 2], [3, 4]     # --grid chooses on the first, confirms on the second
CONFIRM_MEDIAN_SECONDS = 2.0                        # the goal: a cut followed within 2 s (median, smoothed)


class JumpEma:
    """A lever under test here, not offered live: an EMA of `time` s that is
    pulled along when a fast EMA (`fast` s) of the same values leaves it by
    more than `threshold`: steady within a clip, quick after a cut."""

    def __init__(self, time: float, fast: float, threshold: float) -> None:
        self.slow, self.quick = make_smoother("ema", time), make_smoother("ema", fast)
        self.threshold = threshold

    def __call__(self, value: float, dt: float) -> float:
        slow, quick = self.slow(value, dt), self.quick(value, dt)
        if abs(quick - slow) > self.threshold:
            self.slow.value = quick - np.copysign(self.threshold, quick - slow)
        return self.slow.value


@dataclass(frozen=True)
class Setting:
    """A smoothing of the published values: `kind` and `time` as --smooth
    and --smooth-time give them; `beta` and `derivative` (Hz) the one-euro
    filter's speed gain and the cutoff of the speed it reads; `fast` and
    `threshold` those of JumpEma."""
    kind: str
    time: float = 2.0
    beta: float = ONE_EURO_BETA
    derivative: float = ONE_EURO_DERIVATIVE_CUTOFF
    fast: float = 0.5
    threshold: float = 0.15

    @property
    def name(self) -> str:
        extra = {"one-euro": f" beta {self.beta:g} d {self.derivative:g}",
                 "jump": f" fast {self.fast:g} k {self.threshold:g}"}
        return "raw" if self.kind == "off" else f"{self.kind} {self.time:g} s{extra.get(self.kind, '')}"

    def smoother(self):
        if self.kind == "jump":
            return JumpEma(self.time, self.fast, self.threshold)
        return make_smoother(self.kind, self.time, self.beta, self.derivative)


TODAY = Setting("ema", 2.0)
GRID = ([Setting("ema", t) for t in (0.5, 0.75, 1.0, 1.5, 2.0)]
        + [Setting("one-euro", t, b) for t in (1.0, 2.0, 3.0, 4.0, 6.0) for b in (0.5, 1, 2, 4, 8, 16, 32)]
        # The first grid's beta opened the filter on noise (no setting as steady as today's EMA): a
        # smoother speed (derivative cutoff below the 1 Hz a 0.5 s hop can hold), lower beta, longer rest.
        + [Setting("one-euro", t, b, d) for d in (0.1, 0.3) for t in (2.0, 4.0, 8.0, 16.0)
           for b in (0.05, 0.1, 0.2, 0.5, 1, 2, 4)]
        + [Setting("jump", t, fast=f, threshold=k) for t in (2.0, 4.0, 8.0) for f in (0.5, 1.0)
           for k in (0.05, 0.1, 0.15, 0.2)])


def labelled_clips(table: Path) -> tuple[list[Path], list[int]]:
    """Clips and their quadrants from a CSV with the columns `file` (relative
    to the CSV's folder, or absolute) and `quadrant` (1-4 or Q1-Q4), as
    4Q's labels.csv has them."""
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "quadrant"} <= rows[0].keys():
        raise ValueError(f"{table}: needs a header with the columns file and quadrant, and a row per clip")
    quadrants = []
    for line, row in enumerate(rows, start=2):
        try:
            if not row["file"]:
                raise ValueError("a file is missing")
            quadrants.append(corpus.quadrant_label(row["quadrant"]))
        except ValueError as error:
            raise ValueError(f"{table}, line {line} ({row['file']!r}, {row['quadrant']!r}): {error}") from None
    return [table.parent / row["file"] for row in rows], quadrants


def pairs(quadrants: list[int], fold: np.ndarray, seed: int) -> list[tuple[int, int]]:
    """Each clip A of the fold, shuffled, with the next one after it (in that
    cyclic order) whose quadrant differs."""
    order = np.random.default_rng(seed).permutation(fold)
    found = []
    for i, a in enumerate(order):
        following = np.roll(order, -i)[1:]
        b = next((b for b in following if quadrants[b] != quadrants[a]), None)
        if b is not None:
            found.append((int(a), int(b)))
    return found


def step_time(t: np.ndarray, values: np.ndarray, cut: float, before: float, after: float) -> float:
    """Seconds from `cut` to the end of the window from which `values` stay
    past halfway from `before` to `after` for good (inf: they never do)."""
    halfway, sign = (before + after) / 2, np.sign(after - before)
    later = t > cut
    past = sign * (values[later] - halfway) > 0
    if not past.size or not past[-1]:
        return np.inf
    short = np.flatnonzero(~past)
    first = short[-1] + 1 if short.size else 0
    return float(t[later][first] - cut)


def steadiness(t: np.ndarray, values: np.ndarray, start: float, stop: float) -> float:
    """The standard deviation of `values` at window ends in [start, stop]."""
    return float(values[(t >= start) & (t <= stop)].std())


def levels(t: np.ndarray, raw: np.ndarray, cut: float) -> tuple[float, float]:
    """The mean raw value over the windows wholly before and wholly after the cut."""
    return float(raw[t <= cut].mean()), float(raw[t >= cut + WINDOW_SECONDS].mean())


def raw_outputs(engine, first: np.ndarray, second: np.ndarray, hop: float) -> dict[str, np.ndarray]:
    """The cut stream through a StreamAnalyzer as `run --stdin` drives one
    (blocks of a hop, no clock): window ends and raw model outputs."""
    analyzer = StreamAnalyzer("follow", SAMPLE_RATE, hop, smoothing="off")
    audio = np.concatenate([first, second])
    block = int(hop * SAMPLE_RATE)
    windows, ends = [], []
    for start in range(0, len(audio), block):
        for due in analyzer.push(audio[start:start + block], last=start + block >= len(audio)):
            windows.append(np.empty(WINDOW_SHAPE, np.float32))
            analyzer.window(due, windows[-1])
            ends.append(due.end)
    prediction = engine.infer(np.stack(windows))
    return {"end": np.array(ends), "valence": prediction.valence, "arousal": prediction.arousal}


def published(raw: dict[str, np.ndarray], setting: Setting, hop: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Replay raw outputs through a StreamAnalyzer's emit with `setting`:
    the message times and the published (smoothed) values per axis."""
    analyzer = StreamAnalyzer("follow", SAMPLE_RATE, hop, smoothing="off")
    analyzer.smooth = [setting.smoother() for _ in AXES]     # emit as live, with the setting under test
    messages = [analyzer.emit(DueWindow(int(end), None), float(v), float(a))
                for end, v, a in zip(raw["end"], raw["valence"], raw["arousal"])]
    return np.array([m.t for m in messages]), {axis: np.array([getattr(m, axis) for m in messages]) for axis in AXES}


def clip_audio(path: Path) -> np.ndarray:
    """The first CLIP_SECONDS of a clip, mono at SAMPLE_RATE."""
    audio = read_audio(path)[:int(CLIP_SECONDS * SAMPLE_RATE)]
    if len(audio) < CLIP_SECONDS * SAMPLE_RATE:
        raise AudioError(f"{path}: decodes to less than {CLIP_SECONDS:g} s")
    return audio


def long_enough(path: Path) -> bool:
    with open_audio(path) as source:
        return source.frames >= CLIP_SECONDS * source.samplerate


def cached_fold(engine, model: Path, paths: list[Path], fold_pairs: list[tuple[int, int]], hop: float,
                log) -> list[dict[str, np.ndarray]]:
    """Raw outputs of every pair, cached under CACHE/follow/ by model, hop and pairs."""
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    names = "|".join(f"{paths[a].name}>{paths[b].name}" for a, b in fold_pairs)
    key = hashlib.sha256(f"{digest} {hop:g} {CLIP_SECONDS:g} {names}".encode()).hexdigest()[:20]
    cached = corpus.CACHE / "follow" / f"{key}.npz"
    if cached.exists():
        with np.load(cached) as saved:
            return [{k: saved[f"{k}{i}"] for k in ("end", *AXES)} for i in range(len(fold_pairs))]
    audio: dict[int, np.ndarray] = {}            # decoded once per clip
    outputs = []
    for i, (a, b) in enumerate(fold_pairs):
        for c in (a, b):
            if c not in audio:
                audio[c] = clip_audio(paths[c])
        outputs.append(raw_outputs(engine, audio[a], audio[b], hop))
        if (i + 1) % 20 == 0:
            log(f"  {i + 1}/{len(fold_pairs)} pairs")
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part.npz")          # written whole or not at all
    np.savez(partial, **{f"{k}{i}": out[k] for i, out in enumerate(outputs) for k in out})
    os.replace(partial, cached)
    return outputs


def measure(raws: list[dict], labels: list[tuple[int, int]], setting: Setting, hop: float) -> dict:
    """Step times per axis (pairs that count), steadiness per pair and axis,
    the first clip's level per pair and axis, and per pair the share of the
    messages within the first clip (from one window on) whose quadrant is
    its label."""
    steps: dict[str, list[float]] = {axis: [] for axis in AXES}
    first: dict[str, list[float]] = {axis: [] for axis in AXES}
    steady: list[float] = []
    agree: list[float] = []
    for raw, (qa, qb) in zip(raws, labels):
        t, values = published(raw, setting, hop)
        shown = (t >= WINDOW_SECONDS) & (t <= CLIP_SECONDS)
        agree.append(np.mean([quadrant(v, a) == qa
                              for v, a in zip(values["valence"][shown], values["arousal"][shown])]))
        for axis in AXES:
            steady.append(steadiness(t, values[axis], SETTLE_SECONDS, CLIP_SECONDS))
            before, after = levels(t, raw[axis], CLIP_SECONDS)
            first[axis].append(before)
            if SIDES[axis][qa - 1] != SIDES[axis][qb - 1] and abs(after - before) >= MIN_STEP:
                steps[axis].append(step_time(t, values[axis], CLIP_SECONDS, before, after))
    return {"steps": steps, "steadiness": steady, "levels": first, "agree": agree}


def summary(measures: list[dict]) -> dict:
    """Median and 90th percentile of the step times (both axes pooled, and
    per axis), the never-crossed count, the mean steadiness, the accuracy
    of the published values (mean share of a first clip's messages in its
    quadrant), and the spread
    of the clips' levels (their standard deviation, mean over the axes):
    steadiness is in output units, so a model whose outputs span less looks
    steadier; `relative` (steadiness / spread) compares models."""
    per_axis = {axis: np.array([s for m in measures for s in m["steps"][axis]]) for axis in AXES}
    pooled = np.concatenate(list(per_axis.values()))

    def q(x: np.ndarray, p: float) -> float:
        return float(np.quantile(x, p, method="inverted_cdf")) if x.size else float("nan")   # inf stays inf

    steady = float(np.mean([s for m in measures for s in m["steadiness"]]))
    spread = float(np.mean([np.std([v for m in measures for v in m["levels"][axis]]) for axis in AXES]))
    return {"median": q(pooled, 0.5), "p90": q(pooled, 0.9), "steps": int(pooled.size),
            "never": int(np.isinf(pooled).sum()),
            **{f"median_{axis}": q(x, 0.5) for axis, x in per_axis.items()},
            "steadiness": steady, "accuracy": float(np.mean([a for m in measures for a in m["agree"]])),
            "spread": spread, "relative": steady / spread if spread else float("nan")}


def table(rows: dict[str, dict]) -> str:
    lines = [f"{'setting':34} {'median':>6} {'p90':>6} {'med V':>6} {'med A':>6} {'steady':>7} {'rel':>6} {'steps':>6} "
             f"{'never':>5} {'acc':>5}"]
    for name, r in rows.items():
        lines.append(f"{name:34} {r['median']:6.2f} {r['p90']:6.2f} {r['median_valence']:6.2f} "
                     f"{r['median_arousal']:6.2f} {r['steadiness']:7.4f} {r['relative']:6.3f} {r['steps']:6d} "
                     f"{r['never']:5d} {r['accuracy']:5.3f}")
    return "\n".join(lines)


def choose(rows: dict[Setting, dict]) -> Setting | None:
    """docs/follow.md's rule: the lowest median step among the settings no
    less steady than today's EMA."""
    allowed = [s for s, r in rows.items() if s.kind != "off" and r["steadiness"] <= rows[TODAY]["steadiness"]]
    return min(allowed, key=lambda s: (rows[s]["median"], rows[s]["steadiness"]), default=None)


def hop(text: str) -> float:
    try:
        hop_frames(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return float(text)


def fold_list(text: str) -> list[int]:
    folds = [int(f) for f in text.split(",")]
    if not all(0 <= f < corpus.FOLDS for f in folds):
        raise argparse.ArgumentTypeError(f"folds are 0 to {corpus.FOLDS - 1}, got {text}")
    return folds


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rt_mer.training.follow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fourq", type=Path, default=corpus.FOURQ, help="the 4Q recordings (default: %(default)s)")
    parser.add_argument("--clips", type=Path, metavar="CSV",
                        help="pair these labelled clips instead of 4Q's folds (columns file and quadrant)")
    parser.add_argument("--model", default=None,
                        help="ONNX model; '{fold}' in it names one per fold (default: the shipped model)")
    parser.add_argument("--folds", type=fold_list, default="0,1,2,3,4",
                        help="validation folds to pair within (default: %(default)s)")
    parser.add_argument("--hop", type=hop, default=DEFAULT_HOP, help="seconds between windows (default: %(default)s)")
    parser.add_argument("--grid", action="store_true", help="every setting of the grid; choose on folds 0-2, "
                        "confirm on 3-4 (docs/follow.md)")
    parser.add_argument("--json", type=Path, help="write every setting's summary per fold group here")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return benchmark(parser().parse_args(argv))
    except (OSError, AudioError, EngineError, ValueError) as error:     # one line, non-zero exit
        sys.exit(f"follow: {error}")


def benchmark(args: argparse.Namespace) -> int:
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.clips and (args.grid or "{fold}" in (args.model or "")):
        raise ValueError("--grid and fold models are 4Q's folds; --clips pairs other clips: not both")
    refuse_overwriting([("--json", args.json)], [("--clips", args.clips), ("--model", args.model)], ValueError)
    if args.clips:
        paths, quadrants = labelled_clips(args.clips)
        folds, args.folds = [np.arange(len(paths))], [0]             # one group: every clip
    else:
        paths, quadrants, folds = fourq_folds(args.fourq)         # the split training's cross-validation holds out
    measured: dict[int, tuple[list, list]] = {}
    for fold in args.folds:
        model = Path(args.model.format(fold=fold)) if args.model else default_model()
        engine = open_engine("onnxruntime", model, threads=1)
        usable = np.array([i for i in folds[fold] if long_enough(paths[i])])     # shorter clips are left out
        fold_pairs = pairs(quadrants, usable, seed=fold)
        group = "clips" if args.clips else f"fold {fold}"
        log(f"{group}: {len(fold_pairs)} pairs of {len(folds[fold])} clips ({model.name})")
        raws = cached_fold(engine, model, paths, fold_pairs, args.hop, log)
        measured[fold] = (raws, [(quadrants[a], quadrants[b]) for a, b in fold_pairs])
    where = (f"on the clips of {args.clips}" if args.clips else
             "on held-out folds" if args.model and "{fold}" in args.model else
             "with the shipped model: these clips were in its TRAINING DATA (not held out)")
    print("step response (s) and steadiness " + where)
    settings = [Setting("off"), *GRID] if args.grid else [Setting("off"), TODAY]
    groups = [CHOOSE_FOLDS, CONFIRM_FOLDS] if args.grid else [args.folds]
    report: dict = {}
    for group in groups:
        fold_list = [f for f in group if f in measured]
        if not fold_list:
            continue
        name = "clips" if args.clips else "folds " + ",".join(map(str, fold_list))
        results = {s: summary([measure(*measured[f], s, args.hop) for f in fold_list]) for s in settings}
        report[name] = {s.name: r for s, r in results.items()}
        print(f"\n{name} (raw = unsmoothed; steady = mean standard deviation within a clip; "
              "rel = steady over the spread of the clips' levels)")
        print(table(report[name]))
        if group is CHOOSE_FOLDS:
            winner = choose(results)
            report["chosen"] = winner.name if winner else None
            print(f"chosen on {name}: {report['chosen']}")
        elif group is CONFIRM_FOLDS and report.get("chosen"):
            chosen, today = report[name][report["chosen"]], report[name][TODAY.name]
            report["confirmed"] = (chosen["median"] <= CONFIRM_MEDIAN_SECONDS
                                   and chosen["steadiness"] <= today["steadiness"])
            print(f"confirmed on {name} (median at most {CONFIRM_MEDIAN_SECONDS:g} s, as steady as "
                  f"{TODAY.name}): {'yes' if report['confirmed'] else 'no'}")
    if args.json:
        write_whole(args.json, json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
