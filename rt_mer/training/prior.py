"""A class prior: offsets added to the valence and arousal logits, so that
the model's two thresholds sit where real recordings split.

    python -m rt_mer.training.prior trial.runs.jsonl       # what a prior buys, by nested cross-validation
    python -m rt_mer.training.prior trial.runs.jsonl --apply plain/rt-mer.onnx --out new/rt-mer.onnx

The network learns from piano renders and procedural clips besides the
recordings, and its logits need not split the recordings' quadrants at zero.
Offsets are chosen on held-out logits (the cross-validation's fold runs,
each clip scored by a model that never heard its artist): on a grid, the
pair that gives the best four-quadrant accuracy, ties to the smallest.
Nested, each fold run gets the offsets chosen on its seed's other folds and
is scored on its own fold and on EMOPIA validation: what the prior buys,
measured on clips it was not chosen on. The shipped model takes the offsets
chosen on every run's held-out clips pooled (`python -m rt_mer.training`
does this after its cross-validation; --apply puts them into a model
trained without them, of the trial's recipe). They go into the heads' one
bias, so every engine, and the drivers `rt-mer explain` shows, see them.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from ..paths import refuse_overwriting
from .compare import runs_file
from .data import corpus
from .data.corpus import write_whole
from .data.clips import HIGH_AROUSAL, POSITIVE_VALENCE, emopia_clips, fourq_folds
from .evaluation import clip_logits, labelled_quadrants, predicted_quadrants, scores
from .export import export, save_weights
from .network import HarmonicCNN, trained
from .recipe import in_full

GRID = np.round(np.arange(-2.0, 2.0 + 1e-9, 0.05), 2)        # logit offsets tried on each axis


def choose(logits: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The (valence, arousal) offsets from GRID under which `logits`
    [clips, 2] give the most quadrants 0..3 of `truth` right; ties to the
    smallest |offsets|."""
    valence_right = ((logits[:, 0] + GRID[:, None]) > 0) == POSITIVE_VALENCE[truth]      # [grid, clips]
    arousal_right = ((logits[:, 1] + GRID[:, None]) > 0) == HIGH_AROUSAL[truth]
    right = valence_right.astype(np.int64) @ arousal_right.T.astype(np.int64)            # [valence grid, arousal grid]
    size = np.abs(GRID)[:, None] + np.abs(GRID)[None, :]
    best = np.flatnonzero((right == right.max()).ravel())
    v, a = np.unravel_index(best[np.argmin(size.ravel()[best])], right.shape)
    return np.array([GRID[v], GRID[a]])


def before_after(logits: list, truth: np.ndarray, offsets: np.ndarray) -> dict[str, dict[str, float]]:
    """Four-quadrant, valence and arousal accuracy without the offsets and with them."""
    return {"without": scores(predicted_quadrants(np.asarray(logits)), truth),
            "with": scores(predicted_quadrants(np.asarray(logits) + offsets), truth)}


def nested(runs: list[dict], folds: list[np.ndarray], quadrants: np.ndarray, piano: np.ndarray) -> dict:
    """Each fold run (seed, fold, recordings_logits, emopia_logits) with the
    offsets chosen on its seed's other fold runs, scored before and after
    on its held-out clips (`quadrants[folds[fold]]`, 0..3) and on EMOPIA
    validation (`piano`); the means, each seed's gain, and the offsets
    chosen on every run pooled."""
    def truth(run: dict) -> np.ndarray:
        return quadrants[folds[run["fold"]]]

    scored = []
    for run in runs:
        if len(run["recordings_logits"]) != len(folds[run["fold"]]) or len(run["emopia_logits"]) != len(piano):
            raise ValueError(f"seed {run['seed']} fold {run['fold']}: its logits are not of these clips")
        others = [o for o in runs if o["seed"] == run["seed"] and o["fold"] != run["fold"]]
        if not others:
            raise ValueError(f"seed {run['seed']}: one fold run; the nested choice needs another")
        offsets = choose(np.concatenate([o["recordings_logits"] for o in others]),
                         np.concatenate([truth(o) for o in others]))
        scored.append({"seed": run["seed"], "fold": run["fold"], "offsets": offsets.tolist(),
                       "recordings": before_after(run["recordings_logits"], truth(run), offsets),
                       "emopia_val": before_after(run["emopia_logits"], piano, offsets)})

    def mean(name: str, which: str) -> dict[str, float]:
        return {key: round(float(np.mean([s[name][which][key] for s in scored])), 4)
                for key in ("quadrant", "valence", "arousal")}

    def spread(name: str) -> dict:
        return {"without": mean(name, "without"), "with": mean(name, "with"),
                "std_with": round(float(np.std([s[name]["with"]["quadrant"] for s in scored])), 4)}

    def gain(run: dict) -> float:
        return run["recordings"]["with"]["quadrant"] - run["recordings"]["without"]["quadrant"]

    return {"runs": scored, "recordings": spread("recordings"), "emopia_val": spread("emopia_val"),
            "gain_per_seed": {str(seed): round(float(np.mean([gain(s) for s in scored if s["seed"] == seed])), 4)
                              for seed in sorted({s["seed"] for s in scored})},
            "offsets": choose(np.concatenate([run["recordings_logits"] for run in runs]),
                              np.concatenate([truth(run) for run in runs])).tolist()}


@torch.no_grad()
def apply(network: HarmonicCNN, offsets: list[float]) -> None:
    """Add the offsets to the logits: the heads' one bias."""
    network.emotion_temporal.bias += torch.tensor(offsets, dtype=network.emotion_temporal.bias.dtype)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rt_mer.training.prior", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a trial's <out>.runs.jsonl (fold runs with their held-out logits)")
    parser.add_argument("--fourq", type=Path, default=corpus.FOURQ, help="the 4Q recordings (default: %(default)s)")
    parser.add_argument("--emopia", type=Path, default=corpus.EMOPIA, help="EMOPIA (default: %(default)s)")
    parser.add_argument("--apply", type=Path, metavar="MODEL",
                        help="put the pooled offsets into MODEL (its weights beside it, .pt) and write it to --out")
    parser.add_argument("--out", type=Path, help="where --apply writes the model (.onnx, with its .pt and .json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as error:   # one line, non-zero exit
        sys.exit(f"prior: {error}")


def run(args: argparse.Namespace) -> int:
    trial = runs_file(args.runs)                          # the file's last recipe
    model_report = args.apply and plain_report(args.apply, args.out, trial.recipe)
    if args.apply:
        refuse_overwriting([("--out", args.out.with_suffix(suffix)) for suffix in (".onnx", ".pt", ".json")],
                           [("", args.runs)], ValueError)
    runs = list(trial.runs.values())
    _, quadrants, folds = fourq_folds(args.fourq)
    piano = np.array([q for _, q in corpus.emopia_rows("val", folder=args.emopia)]) - 1
    report = nested(runs, folds, np.array(quadrants) - 1, piano)

    def change(scored: dict) -> str:
        return f"{scored['without']['quadrant']:.3f} -> {scored['with']['quadrant']:.3f}"

    for s in report["runs"]:
        print(f"seed {s['seed']} fold {s['fold']}: offsets {s['offsets'][0]:+.2f} {s['offsets'][1]:+.2f}  "
              f"recordings {change(s['recordings'])}  EMOPIA val {change(s['emopia_val'])}")
    for name in ("recordings", "emopia_val"):
        r = report[name]
        print(f"{name}: four quadrants {change(r)} ± {r['std_with']:.3f}, valence {r['with']['valence']:.3f}, "
              f"arousal {r['with']['arousal']:.3f} (mean over {len(runs)} fold runs)")
    print("gain per seed: " + ", ".join(f"{seed} {gain:+.3f}" for seed, gain in report["gain_per_seed"].items()))
    valence, arousal = report["offsets"]
    print(f"offsets chosen on every run pooled: valence {valence:+.2f}, arousal {arousal:+.2f}")
    if args.apply:
        write_with_prior(args.apply, model_report, args.out, report, args.emopia)
    return 0


def plain_report(model: Path, out: Path | None, recipe: dict | None) -> dict:
    """The report beside `model` (none beside a fold model), once sure that
    --apply may write `out` from it: another model's files, a model without
    a prior, of the trial's recipe."""
    if not out or out.suffix != ".onnx" or out.resolve().with_suffix("") == model.resolve().with_suffix(""):
        raise ValueError("--apply needs an --out (.onnx) whose files are not the model's it reads")
    beside = model.with_suffix(".json")
    report = json.loads(beside.read_text()) if beside.exists() else {}
    if any(report.get("prior", [0.0, 0.0])):
        raise ValueError(f"{model} already has a prior ({report['prior']}): apply it to the weights trained without")
    if "recipe" in report and in_full(report["recipe"]) != in_full(recipe):
        raise ValueError(f"{model} was trained with another recipe than the trial's runs")
    return report


def write_with_prior(model: Path, report: dict, out: Path, prior: dict, emopia: Path) -> None:
    """`model`'s weights with the pooled offsets of `prior` (nested's
    report), exported to `out` with its weights and `report` (the offsets,
    what they bought nested, EMOPIA validation scored again), each written
    whole."""
    network = trained(model.with_suffix(".pt"))
    apply(network, prior["offsets"])
    val = emopia_clips("val", None, emopia)
    logits = np.stack([clip_logits(network, clip) for clip in val])
    nested_summary = {key: prior[key] for key in ("recordings", "emopia_val", "gain_per_seed")}
    # Where a training report keeps the cross-validation's nested prior (cross_validation.prior).
    report.setdefault("cross_validation", {})["prior"] = nested_summary
    report.update(prior=prior["offsets"],
                  emopia_val=scores(predicted_quadrants(logits), labelled_quadrants(val)))
    out.parent.mkdir(parents=True, exist_ok=True)
    export(network, out)
    save_weights(network, out.with_suffix(".pt"))
    write_whole(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    print(f"wrote {out} (EMOPIA val {report['emopia_val']})")


if __name__ == "__main__":
    sys.exit(main())
