"""The class prior: the offsets it chooses, its nested scoring, and the
model it writes."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rt_mer.contract import WINDOW_SHAPE
from rt_mer.training.data.clips import HIGH_AROUSAL, POSITIVE_VALENCE
from rt_mer.training.__main__ import offsets
from rt_mer.training.network import HarmonicCNN
from rt_mer.training.prior import GRID, apply, choose, nested, plain_report

VALENCE_SIGN = np.where(POSITIVE_VALENCE, 1, -1)          # quadrants 0..3
AROUSAL_SIGN = np.where(HIGH_AROUSAL, 1, -1)


def leaning(truth: np.ndarray, valence_lean: float, rng: np.random.Generator) -> np.ndarray:
    """Logits on the right side of zero by 0.1 to 1, then `valence_lean` added."""
    size = rng.uniform(0.1, 1.0, (len(truth), 2))
    return np.stack([VALENCE_SIGN[truth] * size[:, 0] + valence_lean, AROUSAL_SIGN[truth] * size[:, 1]], axis=1)


def test_the_offsets_undo_a_lean_and_prefer_the_smallest():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 400)
    logits = leaning(truth, 0.5, rng)
    offsets = choose(logits, truth)
    assert -0.6 <= offsets[0] <= -0.4 and offsets[1] == 0.0        # every clip right again; arousal needs none
    assert (np.sign(logits[:, 0] + offsets[0]) == VALENCE_SIGN[truth]).all()
    assert choose(leaning(truth, 0.0, rng), truth).tolist() == [0.0, 0.0]    # right already: no offset
    assert set(GRID) >= {-2.0, 0.0, 2.0}


def test_each_run_is_scored_with_offsets_chosen_on_its_seeds_other_folds():
    rng = np.random.default_rng(1)
    quadrants = rng.integers(0, 4, 200)
    folds = [np.arange(f, 200, 4) for f in range(4)]
    piano = rng.integers(0, 4, 12)
    lean = {0: 0.5, 1: 0.5, 2: 0.5, 3: -0.2}                       # fold 3 leans the other way
    runs = [{"seed": seed, "fold": f, "recordings_logits": leaning(quadrants[folds[f]], lean[f], rng).tolist(),
             "emopia_logits": leaning(piano, 0.5, rng).tolist()} for seed in (0, 1) for f in range(4)]
    report = nested(runs, folds, quadrants, piano)
    by_fold = {(r["seed"], r["fold"]): r for r in report["runs"]}
    others = [run for run in runs if run["seed"] == 0 and run["fold"] != 3]
    assert by_fold[0, 3]["offsets"] == choose(np.concatenate([run["recordings_logits"] for run in others]),
                                              quadrants[np.concatenate(folds[:3])]).tolist()
    assert by_fold[0, 3]["offsets"][0] < -0.3                       # folds 0-2 lean +0.5
    assert by_fold[0, 3]["recordings"]["with"]["quadrant"] < by_fold[0, 3]["recordings"]["without"]["quadrant"]
    assert by_fold[0, 0]["recordings"]["with"]["quadrant"] == 1.0 > by_fold[0, 0]["recordings"]["without"]["quadrant"]
    assert set(report["gain_per_seed"]) == {"0", "1"}
    assert report["emopia_val"]["with"]["quadrant"] > report["emopia_val"]["without"]["quadrant"]     # leans +0.5 too
    with pytest.raises(ValueError, match="one fold run"):
        nested(runs[:1], folds, quadrants, piano)
    with pytest.raises(ValueError, match="not of these clips"):
        nested(runs, folds, quadrants, piano[:5])


def test_the_offsets_go_into_the_logits():
    network = HarmonicCNN().eval()
    window = torch.from_numpy(np.random.default_rng(2).normal(-40, 10, (2, *WINDOW_SHAPE)).astype(np.float32))
    with torch.no_grad():
        before = network(window).logits
        apply(network, [-0.25, 0.5])
        after = network(window).logits
    assert torch.allclose(after - before, torch.tensor([-0.25, 0.5]).expand(2, 2), atol=1e-5)


def prior(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rt_mer.training.prior", *args], capture_output=True, text=True,
                          timeout=120)


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path):
    runs = tmp_path / "trial.runs.jsonl"
    done = prior(str(runs))
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1 and "No such file" in done.stderr
    runs.write_text(json.dumps({"seed": 0, "fold": 0, "recordings_logits": [[0.0, 0.0]], "emopia_logits": []}) + "\n")
    done = prior(str(runs), "--fourq", str(tmp_path))
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1 and "labels.csv" in done.stderr
    kept = tmp_path / "new.json"                    # the runs, where --out's report would go
    kept.write_text(runs.read_text())
    done = prior(str(kept), "--apply", str(tmp_path / "model.onnx"), "--out", str(tmp_path / "new.onnx"))
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert "--out" in done.stderr and "would overwrite the input" in done.stderr
    assert kept.read_text() == runs.read_text()


def test_apply_writes_only_another_models_files_from_weights_without_a_prior(tmp_path):
    model, recipe = tmp_path / "rt-mer.onnx", {"steps": 10}
    assert plain_report(model, tmp_path / "new.onnx", recipe) == {}              # a fold model: no report beside it
    for out in (None, tmp_path / "new.pt", model.with_suffix(".pt"), model):
        with pytest.raises(ValueError, match="needs an --out"):
            plain_report(model, out, recipe)
    model.with_suffix(".json").write_text(json.dumps({"prior": [-0.25, 0.0], "recipe": recipe}))
    with pytest.raises(ValueError, match=r"already has a prior \(\[-0.25, 0.0\]\)"):
        plain_report(model, tmp_path / "new.onnx", recipe)
    model.with_suffix(".json").write_text(json.dumps({"prior": [0.0, 0.0], "recipe": recipe}))
    assert plain_report(model, tmp_path / "new.onnx", recipe)["recipe"] == recipe
    with pytest.raises(ValueError, match="another recipe"):
        plain_report(model, tmp_path / "new.onnx", {"steps": 20})


@pytest.mark.parametrize("text", ["0,nan", "0", "6,0", "a,b", "0,0,0"])
def test_the_training_option_takes_two_finite_offsets_within_5(text):
    with pytest.raises(argparse.ArgumentTypeError):
        offsets(text)
    assert offsets("-0.25,0") == [-0.25, 0.0]
