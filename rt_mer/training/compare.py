"""Compare two cross-validation trials run by run, as the model card does.

    python -m rt_mer.training.compare trial.runs.jsonl engines/cross-validation.json:distill_window_4s_steps_19200

A trial is a `<out>.runs.jsonl` from `python -m rt_mer.training` (complete or cut
short: its last recipe's runs), a `<out>.json` report, or a key of
`engines/cross-validation.json` (`path:key`). Prints the trial's table (four
quadrant / valence / arousal per fold and seed, each seed's total over all
clips, EMOPIA validation per fold model) and, against a reference, every
seed's total side by side and how many fold runs are better, equal and
worse: a recipe is worth shipping when it wins for every seed, not on one
lucky fold.

    python -m rt_mer.training.compare trial.runs.jsonl --record width_1.25

puts the trial into engines/cross-validation.json under that key (recording
again, as a resumed trial adds runs, replaces it), marked as stopped while a
seed lacks fold runs (say in the file's "about" which seeds were planned).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..inference import default_model
from .data.corpus import FOLDS, write_whole
from .recipe import in_full

METRICS = ("quadrant", "valence", "arousal")
REPORTED = ("seed", "fold", "recordings", "emopia_val")   # what a report keeps of a fold run (no logits)


class Trial:
    """Fold runs keyed by (seed, fold), each complete seed's total, and the
    recipe they ran."""

    def __init__(self, runs: list[dict], totals: dict[int, dict] | None = None, recipe: dict | None = None):
        if not runs:
            raise ValueError("no fold runs")
        self.runs = {(run["seed"], run["fold"]): run for run in runs}
        self.seeds = sorted({seed for seed, _ in self.runs})
        self.folds = range(FOLDS)
        self.totals = totals if totals is not None else self.pooled_totals()
        self.recipe = recipe

    def pooled_totals(self) -> dict[int, dict]:
        """Accuracy over every held-out clip of a seed: the folds' accuracies
        weighted by their clip counts (seeds with every fold run only)."""
        totals = {}
        for seed in self.seeds:
            runs = [self.runs.get((seed, fold)) for fold in self.folds]
            if all(runs):
                counts = np.array([len(run["recordings_logits"]) for run in runs])
                totals[seed] = {metric: float(np.average([run["recordings"][metric] for run in runs],
                                                         weights=counts)) for metric in METRICS}
        return totals

    def values(self, corpus: str, metric: str = "quadrant") -> np.ndarray:
        return np.array([run[corpus][metric] for run in self.runs.values()])


def summarise(runs: list[dict]) -> dict:
    """Mean, standard deviation, minimum and maximum over runs (folds x seeds)."""
    summary = {}
    for corpus_name in ("recordings", "emopia_val"):
        for metric in METRICS:
            values = np.array([run[corpus_name][metric] for run in runs])
            summary[f"{corpus_name}_{metric}"] = {"mean": round(float(values.mean()), 4),
                                                  "std": round(float(values.std()), 4),
                                                  "min": round(float(values.min()), 4),
                                                  "max": round(float(values.max()), 4)}
    return summary


def record(trial: Trial, path: Path, key: str) -> None:
    """The trial as a key of `path` (cross-validation.json's form: runs
    without their logits, each complete seed's total, the summary)."""
    runs = [{field: trial.runs[seed_fold][field] for field in REPORTED}
            for seed_fold in sorted(trial.runs)]
    block: dict = {"runs": runs,
                   "total": {str(seed): {metric: round(value, 4) for metric, value in total.items()}
                             for seed, total in trial.totals.items()},
                   "summary": summarise(runs)}
    if len(trial.totals) < len(trial.seeds):
        complete = ", ".join(map(str, trial.totals)) or "none"
        block["stopped"] = (f"{len(runs)} fold runs, seeds with every fold: {complete} "
                            "(cut short; python -m rt_mer.training --resume continues)")
    reports = json.loads(path.read_text())
    reports[key] = {"recipe": trial.recipe, "cross_validation": block}
    write_whole(path, json.dumps(reports, indent=2) + "\n")


def runs_file(path: Path) -> Trial:
    """The runs of the file's last recipe (a trial resumed with another
    recipe appends to the same file; one resumed after a field was added
    to Recipe still counts its earlier runs)."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    recipe = entries[-1].get("recipe") if entries else None
    return Trial([entry for entry in entries if in_full(entry.get("recipe")) == in_full(recipe)], recipe=recipe)


def report(path: Path, key: str) -> Trial:
    """A training report, or a key of cross-validation.json (some older
    keys hold the cross-validation block itself)."""
    block = json.loads(path.read_text())
    if key:
        if key not in block:
            raise ValueError(f"no {key!r}; it has {', '.join(block)}")
        block = block[key]
    cross_validation = block.get("cross_validation", block)
    totals = {int(seed): total for seed, total in cross_validation["total"].items()}
    return Trial(cross_validation["runs"], totals, block.get("recipe"))


def load(source: str) -> Trial:
    """`runs.jsonl`, `report.json` or `report.json:key`; one line and exit 1
    for what holds no fold runs."""
    path, colon, key = source.rpartition(":")
    if not colon or Path(source).exists():
        path, key = source, ""
    try:
        return runs_file(Path(path)) if path.endswith(".jsonl") else report(Path(path), key)
    except OSError as error:
        sys.exit(f"compare: {path}: {error.strerror}")
    except (ValueError, KeyError, TypeError, AttributeError) as error:   # not JSON, or not a trial's
        sys.exit(f"compare: no fold runs in {source} ({type(error).__name__}: {error})")


def triple(scores: dict) -> str:
    return " / ".join(f"{scores[metric]:.3f}" for metric in METRICS)


def mean_sd(values: np.ndarray) -> str:
    return f"{values.mean():.3f} ± {values.std():.3f}"


def table(trial: Trial) -> list[str]:
    """The model card's table: folds by seeds, then totals and spread."""
    seeds = trial.seeds
    lines = ["| fold | " + " | ".join(f"seed {seed}" for seed in seeds)
             + f" | EMOPIA val (seeds {', '.join(map(str, seeds))}) |",
             "|---" * (len(seeds) + 2) + "|"]
    for fold in trial.folds:
        runs = [trial.runs.get((seed, fold)) for seed in seeds]
        lines.append(f"| {fold} | " + " | ".join(triple(run["recordings"]) if run else "-" for run in runs) + " | "
                     + ", ".join(f"{run['emopia_val']['quadrant']:.3f}" if run else "-" for run in runs) + " |")

    def total(seed: int) -> str:
        scored = trial.totals.get(seed)
        return f"**{scored['quadrant']:.3f}** / {scored['valence']:.3f} / {scored['arousal']:.3f}" if scored else "-"

    lines.append("| all clips | " + " | ".join(total(seed) for seed in seeds) + " | |")
    recordings, emopia = trial.values("recordings"), trial.values("emopia_val")
    lines.append(f"runs {len(recordings)}: four quadrants {mean_sd(recordings)} ({recordings.min():.3f} to "
                 f"{recordings.max():.3f}), valence {trial.values('recordings', 'valence').mean():.3f}, "
                 f"arousal {trial.values('recordings', 'arousal').mean():.3f}; EMOPIA val {mean_sd(emopia)}")
    return lines


def paired(trial: Trial, reference: Trial) -> list[str]:
    """Seed totals side by side, and the fold runs both trials made,
    counted better, equal and worse on each corpus."""
    lines = []
    for seed in trial.seeds:
        if seed in trial.totals and seed in reference.totals:
            lines.append(f"seed {seed} total: {trial.totals[seed]['quadrant']:.3f} against "
                         f"{reference.totals[seed]['quadrant']:.3f}")
    shared = sorted(set(trial.runs) & set(reference.runs))
    if not shared:
        return lines + ["no fold runs in common (seed and fold)"]
    for corpus in ("recordings", "emopia_val"):
        change = np.array([trial.runs[key][corpus]["quadrant"] - reference.runs[key][corpus]["quadrant"]
                           for key in shared])
        worse = ", ".join(f"seed {seed} fold {fold} {delta:+.3f}" for (seed, fold), delta in zip(shared, change)
                          if delta < 0)
        lines.append(f"{corpus}: {int((change > 0).sum())} better, {int((change == 0).sum())} equal, "
                     f"{int((change < 0).sum())} worse of {len(shared)} fold runs; mean change {change.mean():+.4f}"
                     + (f" (worse: {worse})" if worse else ""))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rt_mer.training.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trial", help="<out>.runs.jsonl, <out>.json, or engines/cross-validation.json:KEY")
    parser.add_argument("reference", nargs="?", help="the trial to compare with, in the same forms")
    parser.add_argument("--record", metavar="KEY", help="put the trial into --into under KEY")
    parser.add_argument("--into", type=Path, default=default_model().with_name("cross-validation.json"),
                        help="the reports --record writes to (default: %(default)s, beside the shipped model)")
    args = parser.parse_args()
    trial = load(args.trial)
    lines = [f"{args.trial}: recipe {json.dumps(trial.recipe)}", *table(trial)]
    if args.reference:
        reference = load(args.reference)
        lines += [f"against {args.reference}: recipe {json.dumps(reference.recipe)}", *paired(trial, reference)]
    if args.record:
        try:
            record(trial, args.into, args.record)
        except OSError as error:
            sys.exit(f"compare: {args.into}: {error.strerror}")
        except ValueError as error:                     # not JSON
            sys.exit(f"compare: {args.into} is not a JSON report ({error})")
        lines.append(f"recorded as {args.into}:{args.record}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
