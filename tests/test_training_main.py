"""python -m rt_mer.training on a tiny corpus, end to end: render, features,
baseline and training on artist folds, validation, ONNX export that our
engine opens; a trial cut short resumes; distillation needs the teacher."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rt_mer.inference import open_engine
from rt_mer.contract import WINDOW_SHAPE
from rt_mer.training.data import corpus
from rt_mer.training.network import HarmonicCNN
from rt_mer.training.recipe import Recipe

needs_data = pytest.mark.skipif(
    not corpus.SOUNDFONT.exists() or not (corpus.EMOPIA / "train.csv").exists()
    or not (corpus.FOURQ / "labels.csv").exists(),
    reason=f"fluid-soundfont-gm or the training data ({corpus.EMOPIA}, {corpus.FOURQ}; "
           "set RT_MER_EMOPIA and RT_MER_4Q) missing")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache of renders and features for the module's training runs."""
    return tmp_path_factory.mktemp("cache")


def training(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RT_MER_CACHE": str(cache)} if cache else None
    return subprocess.run([sys.executable, "-m", "rt_mer.training", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def tiny(cache: Path, *args: str) -> subprocess.CompletedProcess:
    """A few steps on 20 clips per corpus and 4 procedural ones."""
    return training("--limit", "20", "--procedural", "4", "--steps", "3", "--batch", "6", *args, cache=cache)


@pytest.mark.slow
@needs_data
def test_training_smoke(tmp_path, cache):
    out = tmp_path / "model.onnx"
    result = tiny(cache, "--distill", "0", "--answers", "0", "--cv-seeds", "0", "--jobs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "step 3/3" in result.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    runs = report["cross_validation"]["runs"]
    assert sorted(run["fold"] for run in runs) == [0, 1, 2, 3, 4]
    for run in runs:
        for corpus_name in ("recordings", "emopia_val"):
            assert set(run[corpus_name]) == {"quadrant", "valence", "arousal"}
            assert all(0.0 <= value <= 1.0 for value in run[corpus_name].values())
    progress = [json.loads(line) for line in out.with_suffix(".runs.jsonl").read_text().splitlines()]
    assert sorted(run["fold"] for run in progress) == [0, 1, 2, 3, 4]     # every run kept as it finished
    assert sum(len(run["recordings_logits"]) for run in progress) == 20   # each clip held out once
    assert {run["fold"]: run["recordings"] for run in progress} == {run["fold"]: run["recordings"] for run in runs}
    assert set(report["baseline"]["total"]) == {"logistic_regression", "svm"}
    assert report["procedural_clips"] == 4
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.json", "model.onnx", "model.pt",
                                                                 "model.runs.jsonl"]     # no partial files left
    engine = open_engine(model=out)
    prediction = engine.infer(np.full((2, *WINDOW_SHAPE), -40.0, np.float32))
    assert prediction.valence.shape == (2,) and np.all(np.abs(prediction.valence) <= 1)


@pytest.mark.slow
@needs_data
def test_a_trial_cut_short_resumes_with_the_runs_it_kept(tmp_path, cache):
    out = tmp_path / "trial.onnx"
    trial = ("--distill", "0", "--answers", "0", "--no-baseline", "--cv-only", "--jobs", "2", "--out", str(out))
    first = tiny(cache, *trial, "--cv-seeds", "0")
    assert first.returncode == 0, first.stderr[-2000:]
    progress = out.with_suffix(".runs.jsonl")
    kept = progress.read_text().splitlines()
    progress.write_text("\n".join(kept[:3]) + "\n" + kept[3][:50])   # cut short after three runs, mid-write
    resumed = tiny(cache, *trial, "--cv-seeds", "0,1", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{progress}: the last line was cut off mid-write; dropped" in resumed.stdout
    assert f"7 fold runs to go, 3 kept from {progress}" in resumed.stdout
    assert len([json.loads(line) for line in progress.read_text().splitlines()]) == 10   # whole lines only
    runs = json.loads(out.with_suffix(".json").read_text())["cross_validation"]["runs"]
    assert sorted((run["seed"], run["fold"]) for run in runs) == [(seed, fold) for seed in (0, 1) for fold in range(5)]
    assert progress.read_text().splitlines()[:3] == kept[:3]           # the kept runs, as they were
    again = tiny(cache, *trial, "--cv-seeds", "0,1", "--resume", "--steps", "2")   # another recipe: none kept
    assert "10 fold runs to go" in again.stdout


@pytest.mark.slow
@needs_data
def test_distillation_needs_the_teachers_outputs_and_uses_them(tmp_path, cache):
    out = tmp_path / "model.onnx"
    folder = cache / "teacher" / corpus.TEACHER_VERSION        # what the teacher writes, made up
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def teach(paths):
        for path in paths:
            np.savez(folder / f"{corpus.cache_key(path)}.npz", penultimate=rng.normal(size=(10, 200)).astype(np.float16))

    for taught_so_far, paths, term in (("0 of 44", [], ("--distill", "1")),
                                       ("20 of 44", [path for path, *_ in corpus.fourq_clips()],
                                        ("--distill", "0", "--answers", "1"))):
        teach(paths)        # none, then the recordings only: either way, not the recipe
        untaught = tiny(cache, *term, "--no-cv", "--no-baseline", "--out", str(out))
        last_line = untaught.stderr.strip().splitlines()[-1]
        assert untaught.returncode != 0
        assert f"{taught_so_far} training clips: run bash tools/teacher.sh --procedural 4" in last_line
        assert not out.exists()
    teach(sorted(cache.glob("**/*.flac")))
    taught = tiny(cache, "--distill", "1", "--mixup", "0.4", "--procedural-share", "0.1", "--width", "1.25",
                  "--answers", "1", "--answers-through", "timbre,rhythm", "--no-cv", "--no-baseline", "--out", str(out))
    assert taught.returncode == 0, taught.stderr[-2000:]
    assert "distilling the teacher's penultimate on 44 of 44 training clips" in taught.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["taught_clips"] == 44 and report["recipe"]["mixup"] == 0.4
    assert report["recipe"]["procedural"] == 0.1 and report["recipe"]["recordings"] == Recipe.recordings
    assert report["recipe"]["answers"] == 1 and report["recipe"]["answers_through"] == "timbre,rhythm"
    assert report["recipe"]["width"] == 1.25 != Recipe.width
    assert report["parameters"] == sum(p.numel() for p in HarmonicCNN(1.25).parameters())
    assert report["parameters"] > 1.25 * sum(p.numel() for p in HarmonicCNN().parameters())    # wider branches
    window = np.random.default_rng(1).normal(-40.0, 10.0, (1, *WINDOW_SHAPE)).astype(np.float32)
    exported = open_engine(model=out).infer(window)
    out.unlink()
    again = training("--export-only", "--out", str(out))          # reloads the weights at their width
    assert again.returncode == 0, again.stderr[-2000:]
    np.testing.assert_allclose(open_engine(model=out).infer(window).valence, exported.valence, atol=1e-6)


@pytest.mark.parametrize("options, message", [
    (["--answers-through", "timbre,melody"],
     "--answers-through names branches from harmony,key,register,timbre,rhythm, or is all"),
    (["--answers-until", "0"], "--answers-until is a share of the steps: above 0, at most 1"),
    (["--recordings-share", "0.7", "--procedural-share", "0.4"], "each from 0, together at most 1"),
    (["--running-level"], "unrecognized arguments: --running-level"),        # a probe that did not ship
])
def test_options_out_of_range_are_refused_in_one_line(options, message):
    refused = training(*options)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].endswith(message)
