"""Train the shipped model on real recordings (4Q), EMOPIA piano renders and
the procedural corpus; validate it by artist; export it to ONNX.

    python -m rt_mer.training --seed 0                  # folds, baseline, then the shipped model
    python -m rt_mer.training --seed 0 --no-cv --no-baseline --prior=-0.25,0   # the same weights, bit for bit, alone
    python -m rt_mer.training --export-only             # rt-mer.pt -> rt-mer.onnx, no training

First, artist-grouped 5-fold cross-validation over the 4Q recordings (no
artist in two folds; every clip scored once by a model that never heard its
artist) for each of --cv-seeds, each fold model also scored on the EMOPIA
validation split, and the handcrafted-descriptor baseline on the same folds.
Each fold run's scores and held-out logits go to <out>.runs.jsonl as it
finishes: an interrupted trial keeps them, and --resume runs only the rest
(without it a run starts afresh). --fold-models DIR keeps each fold's model
(DIR/fold{fold}-seed{seed}.onnx), for measures on held-out music:
`python -m rt_mer.training.follow --model 'DIR/fold{fold}-seed0.onnx'`.
The report goes to <out>.json;
`python -m rt_mer.training.compare` sets a trial beside another, run by run.
Then the shipped model: the same recipe on all of it, with --seed, its
logits offset by the class prior the cross-validation chose (or --prior;
rt_mer.training.prior), written to --out (default: the shipped model,
rt_mer.inference.default_model()), its weights beside it (.pt) and its
report (.json).

Renders and features are cached under $RT_MER_CACHE (~/.cache/rt-mer).
Needs the [train] extra and Debian's fluidsynth and fluid-soundfont-gm.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

from ..inference import default_model
from ..contract import DRIVERS
from .cross_validation import CORPORA, baseline_on_folds, cross_validate
from .data import corpus, procedural
from .data.corpus import write_whole
from .data.clips import artist_folds, emopia_clips, procedural_clips, recording_clips
from .evaluation import clip_logits, labelled_quadrants, predicted_quadrants, scores
from .export import export, export_saved, save_weights
from .loop import train
from .prior import apply
from .recipe import Recipe


def seed_list(text: str) -> list[int]:
    return [int(seed) for seed in text.split(",")]


def offsets(text: str) -> list[float]:
    try:
        valence, arousal = (float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"two logit offsets, valence,arousal: got {text}") from None
    if not all(abs(value) <= 5 for value in (valence, arousal)):         # NaN fails too
        raise argparse.ArgumentTypeError(f"logit offsets are numbers within ±5: got {text}")
    return [valence, arousal]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rt_mer.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed of the shipped model")
    parser.add_argument("--cv-seeds", type=seed_list, default=[0, 1, 2], help="seeds of the cross-validation")
    parser.add_argument("--no-cv", action="store_true", help="train the shipped model only")
    parser.add_argument("--cv-only", action="store_true", help="cross-validate, then stop (recipe trials)")
    parser.add_argument("--fold-models", type=Path, default=None, metavar="DIR",
                        help="keep each fold run's model as DIR/fold{fold}-seed{seed}.onnx, with its weights (.pt)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the fold runs of this recipe already in <out>.runs.jsonl (a trial cut short)")
    parser.add_argument("--jobs", type=int, default=2, help="cross-validation runs at once, one thread each")
    parser.add_argument("--steps", type=int, default=Recipe.steps)
    parser.add_argument("--batch", type=int, default=Recipe.batch)
    parser.add_argument("--distill", type=float, default=Recipe.distill,
                        help="weight of the teacher's loss (needs bash tools/teacher.sh first; 0: none)")
    parser.add_argument("--mixup", type=float, default=Recipe.mixup,
                        help="mix each rendered window with another of its corpus, share ~ Beta(MIXUP, MIXUP) "
                             "(0: none)")
    parser.add_argument("--teacher-output", choices=["penultimate", "tags"], default=Recipe.teacher_output)
    parser.add_argument("--procedural", type=int, default=procedural.CLIPS, help="procedural clips (0: none)")
    parser.add_argument("--recordings-share", type=float, default=Recipe.recordings,
                        help="share of each batch from the 4Q recordings")
    parser.add_argument("--procedural-share", type=float, default=Recipe.procedural,
                        help="share of each batch from the procedural corpus (EMOPIA has the rest)")
    parser.add_argument("--width", type=float, default=Recipe.width,
                        help="channels of the branches after the harmonic filters, times this")
    parser.add_argument("--answers", type=float, default=Recipe.answers,
                        help="weight of the teacher's answer per window (its linear probe's valence and arousal, "
                             "fitted out of fold; needs bash tools/teacher.sh first; 0: none)")
    parser.add_argument("--answers-through", default=Recipe.answers_through,
                        help="the branches the answers train, comma-separated from "
                             f"{','.join(DRIVERS)} (all: every branch and the bias)")
    parser.add_argument("--answers-until", type=float, default=Recipe.answers_until,
                        help="share of the steps the answers train (then the labels alone fine-tune; 1: all)")
    parser.add_argument("--limit", type=int, default=None, help="clips per corpus (smoke tests)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--emopia", type=Path, default=corpus.EMOPIA,
                        help="the EMOPIA dataset: train.csv, val.csv, midi/ "
                             "(default: $RT_MER_EMOPIA, else %(default)s)")
    parser.add_argument("--fourq", type=Path, default=corpus.FOURQ,
                        help="the 4Q recordings: labels.csv and the MP3s (default: $RT_MER_4Q, else %(default)s)")
    parser.add_argument("--out", type=Path, default=default_model(), help="the ONNX model (default: %(default)s)")
    parser.add_argument("--prior", type=offsets, default=None, metavar="V,A",
                        help="logit offsets for the shipped model, written --prior=V,A (default: the "
                             "cross-validation's choice; none without it)")
    parser.add_argument("--export-only", action="store_true",
                        help="export the weights saved beside --out (its .pt) to --out, no training")
    return parser


def main() -> None:
    options = parser()
    args = options.parse_args()
    if min(args.recordings_share, args.procedural_share) < 0 or args.recordings_share + args.procedural_share > 1:
        options.error("--recordings-share and --procedural-share are shares of a batch: "
                      "each from 0, together at most 1")
    if args.answers_through != "all" and not set(args.answers_through.split(",")) <= set(DRIVERS):
        options.error(f"--answers-through names branches from {','.join(DRIVERS)}, or is all")
    if not 0 < args.answers_until <= 1:
        options.error("--answers-until is a share of the steps: above 0, at most 1")
    if args.export_only:
        export_saved(args.out)
        print(f"wrote {args.out}", flush=True)
        return
    recipe = Recipe(steps=args.steps, batch=args.batch, recordings=args.recordings_share,
                    procedural=args.procedural_share, distill=args.distill, teacher_output=args.teacher_output,
                    mixup=args.mixup, width=args.width, answers=args.answers, answers_through=args.answers_through,
                    answers_until=args.answers_until)
    random.seed(args.seed)
    # Summation order, hence the weights after thousands of steps, depends on
    # the thread count: one thread gives the same model whatever the cores.
    torch.set_num_threads(1)

    CORPORA.update(recordings=recording_clips(args.limit, args.fourq),
                   emopia=emopia_clips("train", args.limit, args.emopia),
                   emopia_val=emopia_clips("val", args.limit, args.emopia),
                   procedural=procedural_clips(args.procedural))
    CORPORA["folds"] = artist_folds(CORPORA["recordings"])
    print(", ".join(f"{name} {len(clips)}" for name, clips in CORPORA.items()), "clips", flush=True)
    report: dict = {"seed": args.seed, "recipe": recipe.__dict__, "procedural_clips": len(CORPORA["procedural"])}
    if recipe.distill or recipe.answers:
        training = CORPORA["recordings"] + CORPORA["emopia"] + CORPORA["procedural"]
        report["taught_clips"] = sum(recipe.teacher_output in clip.teacher for clip in training)
        if report["taught_clips"] < len(training):      # a partial teacher is another recipe
            sys.exit(f"the recipe distils a teacher whose outputs are in {corpus.CACHE / 'teacher'} for only "
                     f"{report['taught_clips']} of {len(training)} training clips: "
                     f"run bash tools/teacher.sh --procedural {args.procedural} "
                     "(or train without it: --distill 0 --answers 0)")
        print(f"distilling the teacher's {recipe.teacher_output} on {report['taught_clips']} of {len(training)} "
              "training clips", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_baseline:
        report["baseline"] = baseline_on_folds()
    if not args.no_cv:
        report["cross_validation"] = cross_validate(recipe, args.cv_seeds, args.jobs,
                                                    args.out.with_suffix(".runs.jsonl"), args.resume, args.fold_models)
    if args.cv_only:
        write_whole(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
        return

    network = train(CORPORA["recordings"], CORPORA["emopia"], CORPORA["procedural"], recipe, args.seed,
                    log=lambda line: print(line, flush=True))
    chosen = None if args.no_cv else report["cross_validation"]["prior"]["offsets"]
    report["prior"] = args.prior or chosen or [0.0, 0.0]
    apply(network, report["prior"])
    print(f"class prior (logit offsets, valence and arousal): {report['prior']}"
          + ("" if args.prior or chosen else " (no cross-validation to choose one; --prior=V,A gives it)"), flush=True)
    logits = np.stack([clip_logits(network, clip) for clip in CORPORA["emopia_val"]])
    report["emopia_val"] = scores(predicted_quadrants(logits), labelled_quadrants(CORPORA["emopia_val"]))
    report["parameters"] = sum(p.numel() for p in network.parameters())
    print("shipped model, EMOPIA val", json.dumps(report["emopia_val"]), flush=True)

    export(network, args.out)
    save_weights(network, args.out.with_suffix(".pt"))
    write_whole(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
