"""Artist-grouped cross-validation over the 4Q recordings: every clip
scored once by a model that never heard its artist, each fold model also
scored on EMOPIA's validation split; the handcrafted-descriptor baseline on
the same folds; the class prior their held-out logits choose
(rt_mer.training.prior). Fold runs are appended to a JSON-lines file as
they finish, so a trial cut short keeps them and `resume` runs only the
rest. Fold models can be kept, for measures that need held-out music (the
follow benchmark)."""
from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch

from .compare import REPORTED, summarise
from .data.clips import Clip
from .export import export, save_weights
from .evaluation import clip_logits, labelled_quadrants, predicted_quadrants, scores
from .loop import train
from .prior import nested
from .recipe import Recipe, same_recipe

CORPORA: dict[str, list[Clip]] = {}       # loaded once; forked workers share them


def fold_model(folder: Path, fold: int, seed: int) -> Path:
    return folder / f"fold{fold}-seed{seed}.onnx"


def fold_run(task: tuple[int, int, Recipe, Path | None]) -> dict:
    """Train on every fold but one and score the held-out fold and EMOPIA's
    validation split: the logits of both. The model goes to `models` if given."""
    fold, seed, recipe, models = task
    torch.set_num_threads(1)
    recordings, held_out = CORPORA["recordings"], CORPORA["folds"][fold]
    training = [recordings[i] for i in np.setdiff1d(np.arange(len(recordings)), held_out)]
    network = train(training, CORPORA["emopia"], CORPORA["procedural"], recipe, seed, log=lambda line: None)
    if models:     # the weights too: the fold model can be exported again with another serving graph
        model = fold_model(models, fold, seed)
        save_weights(network, model.with_suffix(".pt"))
        export(network, model)
    return {"fold": fold, "seed": seed,
            "recordings": np.stack([clip_logits(network, recordings[i]) for i in held_out]),
            "emopia": np.stack([clip_logits(network, clip) for clip in CORPORA["emopia_val"]])}


def cross_validate(recipe: Recipe, seeds: list[int], jobs: int, progress: Path, resume: bool = False,
                   models: Path | None = None) -> dict:
    """Every fold run of every seed; each run's scores and held-out logits
    are appended to `progress` (JSON lines) as it finishes, so an
    interrupted trial keeps the runs it completed, and with `resume` the
    runs of the same recipe found there are not run again (a kept run
    whose model `models` lacks is run again)."""
    recordings, folds = CORPORA["recordings"], CORPORA["folds"]
    kept = kept_runs(progress) if resume and progress.exists() else []
    done = {(run["seed"], run["fold"]): run for run in kept if same_recipe(run.get("recipe"), recipe)
            and (models is None or fold_model(models, run["fold"], run["seed"]).is_file())}
    if models:
        models.mkdir(parents=True, exist_ok=True)
    tasks = [(fold, seed, recipe, models) for seed in seeds for fold in range(len(folds)) if (seed, fold) not in done]
    print(f"{len(tasks)} fold runs to go" + (f", {len(done)} kept from {progress}" if done else ""), flush=True)
    # Appending (not rewriting) the kept runs: a trial cut short at any moment loses none.
    with ProcessPoolExecutor(jobs) as pool, progress.open("a" if resume else "w") as log:
        for finished in as_completed([pool.submit(fold_run, task) for task in tasks]):
            run = finished.result()
            held_out = folds[run["fold"]]
            entry = {"recipe": recipe.__dict__, "seed": run["seed"], "fold": run["fold"],
                     "recordings": scores(predicted_quadrants(run["recordings"]),
                                          labelled_quadrants(recordings)[held_out]),
                     "emopia_val": scores(predicted_quadrants(run["emopia"]),
                                          labelled_quadrants(CORPORA["emopia_val"])),
                     "recordings_logits": run["recordings"].tolist(), "emopia_logits": run["emopia"].tolist()}
            done[run["seed"], run["fold"]] = entry
            log.write(json.dumps(entry) + "\n")
            log.flush()
            print(f"seed {run['seed']} fold {run['fold']}: 4Q {entry['recordings']}  EMOPIA val {entry['emopia_val']}",
                  flush=True)
    report: dict = {"runs": [{key: done[seed, fold][key] for key in REPORTED}
                             for seed in seeds for fold in range(len(folds))], "total": {}}
    for seed in seeds:
        logits = np.zeros((len(recordings), 2), np.float32)
        for fold, held_out in enumerate(folds):
            logits[held_out] = done[seed, fold]["recordings_logits"]
        report["total"][seed] = scores(predicted_quadrants(logits), labelled_quadrants(recordings))
        print(f"seed {seed} all {len(recordings)} clips: {report['total'][seed]}", flush=True)
    report["prior"] = nested([done[seed, fold] for seed in seeds for fold in range(len(folds))], folds,
                             labelled_quadrants(recordings), labelled_quadrants(CORPORA["emopia_val"]))
    real, piano = (report["prior"][name] for name in ("recordings", "emopia_val"))
    print(f"prior (nested): recordings {real['without']['quadrant']:.3f} -> {real['with']['quadrant']:.3f}, "
          f"EMOPIA val {piano['without']['quadrant']:.3f} -> {piano['with']['quadrant']:.3f}; "
          f"offsets on every run {report['prior']['offsets']}", flush=True)
    report["summary"] = summarise(report["runs"])
    print("summary", json.dumps(report["summary"]), flush=True)
    return report


def kept_runs(progress: Path) -> list[dict]:
    """The runs a trial wrote. A last line cut off mid-write (the trial
    killed while writing, a full disk) is cut from the file, so that the
    runs appended next start on a line of their own; that run runs again."""
    text = progress.read_text()
    whole = text[:text.rfind("\n") + 1]
    if whole != text:
        print(f"{progress}: the last line was cut off mid-write; dropped (that run runs again)", flush=True)
        with progress.open("r+") as file:
            file.truncate(len(whole.encode()))
    return [json.loads(line) for line in whole.splitlines()]


def baseline_on_folds() -> dict:
    """The handcrafted-descriptor baseline on the same artist folds, and, where
    the teacher has run, the same classifiers on its embedding (musicnn's
    penultimate layer, mean over the clip): the linear probe the network
    should beat."""
    from .baseline import baseline_predictions, descriptor_matrix
    recordings, folds = CORPORA["recordings"], CORPORA["folds"]
    y = labelled_quadrants(recordings)
    inputs = {"": descriptor_matrix([clip.path for clip in recordings])}
    if all("penultimate" in clip.teacher for clip in recordings):
        inputs["musicnn_"] = np.stack([clip.teacher["penultimate"].astype(np.float32).mean(axis=0)
                                       for clip in recordings])
    predicted: dict[str, np.ndarray] = {}
    report: dict = {"folds": []}
    for prefix, x in inputs.items():
        for fold, held_out in enumerate(folds):
            training = np.setdiff1d(np.arange(len(recordings)), held_out)
            for name, guess in baseline_predictions(x[training], y[training], x[held_out]).items():
                predicted.setdefault(prefix + name, np.zeros(len(recordings), int))[held_out] = guess
                report["folds"].append({"fold": fold, "classifier": prefix + name, **scores(guess, y[held_out])})
    report["total"] = {name: scores(guess, y) for name, guess in predicted.items()}
    print("baseline", json.dumps(report["total"]), flush=True)
    return report
