"""Training as a user runs it: `python -m rt_mer.training` (a smoke run,
resume, distillation, bad options), `...compare`, and the follow benchmark
end to end on rendered clips."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rt_mer.contract import WINDOW_SHAPE
from rt_mer.inference import open_engine
from rt_mer.training.data import corpus
from rt_mer.training.network import HarmonicCNN
from rt_mer.training.recipe import Recipe

from support.music import render_passage


def fold_runs(seed: int, quadrant_by_fold: list[float], clips_by_fold: list[int], emopia: float = 0.6,
              recipe: dict | None = None) -> list[dict]:
    """Lines of a runs.jsonl as training writes them (scores made up)."""
    return [{"recipe": recipe or {"steps": 8}, "seed": seed, "fold": fold, "recordings_logits": [[0.0, 0.0]] * clips,
             "recordings": {"quadrant": quadrant, "valence": 0.8, "arousal": 0.9},
             "emopia_val": {"quadrant": emopia, "valence": 0.7, "arousal": 0.9}}
            for fold, (quadrant, clips) in enumerate(zip(quadrant_by_fold, clips_by_fold))]


def compare_py(*sources: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rt_mer.training.compare", *sources],
                          capture_output=True, text=True, timeout=120)


def test_compare_pairs_two_trials_run_by_run(tmp_path):
    """A seed's total weighs its folds by their clips; a seed cut short has
    none; fold runs are paired by seed and fold and counted; only the runs
    of the file's last recipe count, those written before a field was added
    to it among them; a report key of cross-validation.json serves as the
    reference."""
    trial = tmp_path / "trial.runs.jsonl"
    runs = (fold_runs(0, [0.1] * 5, [20] * 5, recipe={"steps": 4})            # an earlier recipe's trial
            + fold_runs(0, [0.7, 0.8, 0.6, 0.7, 0.5], [10, 30, 20, 20, 20])
            + fold_runs(1, [0.7, 0.7], [20, 20], recipe={"steps": 8, "answers": 0.0}))   # resumed after --answers came
    trial.write_text("".join(json.dumps(run) + "\n" for run in runs))
    reference = fold_runs(0, [0.6, 0.8, 0.7, 0.6, 0.4], [20] * 5, emopia=0.65) + fold_runs(1, [0.6] * 5, [20] * 5)
    report = tmp_path / "cross-validation.json"
    report.write_text(json.dumps({"about": "", "old": {"recipe": {"steps": 2}, "cross_validation": {
        "runs": reference, "total": {"0": {"quadrant": 0.62}, "1": {"quadrant": 0.6}}}}}))
    result = compare_py(str(trial), f"{report}:old")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f'{trial}: recipe {{"steps": 8, "answers": 0.0}}'
    assert f'against {report}:old: recipe {{"steps": 2}}' in lines
    assert "| all clips | **0.670** / 0.800 / 0.900 | - | |" in lines    # (7 + 24 + 12 + 14 + 10) / 100
    assert "| 4 | 0.500 / 0.800 / 0.900 | - | 0.600, - |" in lines
    assert "seed 0 total: 0.670 against 0.620" in lines and "seed 1 total" not in result.stdout
    assert "runs 7: four quadrants" in result.stdout                      # not the earlier recipe's 5
    assert "recordings: 5 better, 1 equal, 1 worse of 7 fold runs" in result.stdout
    assert "(worse: seed 0 fold 2 -0.100)" in result.stdout
    assert "emopia_val: 0 better, 2 equal, 5 worse of 7 fold runs" in result.stdout


def test_compare_says_what_it_cannot_read(tmp_path):
    """One line and a non-zero exit for what holds no fold runs."""
    report, runs = tmp_path / "cross-validation.json", tmp_path / "trial.runs.jsonl"
    report.write_text(json.dumps({"about": "text", "old": {}}))
    cases = {str(tmp_path / "none.runs.jsonl"): f"compare: {tmp_path / 'none.runs.jsonl'}: No such file or directory",
             f"{report}:new": f"compare: no fold runs in {report}:new (ValueError: no 'new'; it has about, old)",
             f"{report}:old": f"compare: no fold runs in {report}:old (KeyError: 'total')",
             f"{report}:about": f"compare: no fold runs in {report}:about (AttributeError:",
             str(runs): f"compare: no fold runs in {runs} (ValueError: no fold runs)"}
    runs.write_text("")
    for source, expected in cases.items():
        result = compare_py(source)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith(expected), result.stderr
    runs.write_text(json.dumps(fold_runs(0, [0.5], [20])[0]) + "\n" + '{"recipe": {"ste')    # cut off mid-line
    cut = compare_py(str(runs))
    assert cut.returncode != 0 and cut.stderr.strip().startswith(f"compare: no fold runs in {runs} (JSONDecodeError")


def test_compare_records_a_trial_into_the_reports(tmp_path):
    """--record puts the runs (without their logits), each complete seed's
    total and the summary under a key, marked as stopped while a seed lacks
    folds; recording again replaces the key and keeps the others."""
    trial, reports = tmp_path / "trial.runs.jsonl", tmp_path / "cross-validation.json"
    reports.write_text(json.dumps({"about": "text", "old": {"recipe": {}}}))
    runs = fold_runs(0, [0.7, 0.8, 0.6, 0.7, 0.5], [10, 30, 20, 20, 20]) + fold_runs(1, [0.7, 0.7], [20, 20])
    cut_short = "7 fold runs, seeds with every fold: 0 (cut short; python -m rt_mer.training --resume continues)"
    for count, stopped in ((7, cut_short), (5, None)):
        trial.write_text("".join(json.dumps(run) + "\n" for run in runs[:count]))
        result = compare_py(str(trial), "--record", "probe", "--into", str(reports))
        assert result.returncode == 0 and result.stdout.endswith(f"recorded as {reports}:probe\n"), result.stderr
        written = json.loads(reports.read_text())
        assert written["about"] == "text" and written["old"] == {"recipe": {}}
        block = written["probe"]["cross_validation"]
        assert written["probe"]["recipe"] == {"steps": 8} and block.get("stopped") == stopped
        assert len(block["runs"]) == count and "recordings_logits" not in block["runs"][0]
        assert block["total"] == {"0": {"quadrant": 0.67, "valence": 0.8, "arousal": 0.9}}
        assert block["summary"]["recordings_quadrant"]["max"] == 0.8
    missing = compare_py(str(trial), "--record", "probe", "--into", str(tmp_path / "none.json"))
    assert missing.returncode != 0
    assert missing.stderr.strip() == f"compare: {tmp_path / 'none.json'}: No such file or directory"


def test_the_benchmark_runs_end_to_end_on_rendered_clips(tmp_path):
    """Five artists, each a lively and a gloomy rendered clip: every fold
    holds one pair of opposite quadrants each way, through the real engine."""
    lively = render_passage(tmp_path, "lively", tempo_bpm=170, velocity=120, staccato=1.0, drums=True,
                            register=1, density=4, seconds=21.0)
    gloomy = render_passage(tmp_path, "gloomy", major=False, tempo_bpm=55, velocity=40, staccato=0.0,
                            register=-1, density=1, dissonance=0.8, seconds=21.0)
    (tmp_path / "audio").mkdir()
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["file", "artist", "quadrant"])
        for artist in range(5):
            for name, source, quadrant in (("lively", lively, "Q1"), ("gloomy", gloomy, "Q3")):
                shutil.copy(source, tmp_path / "audio" / f"{name}{artist}.flac")
                rows.writerow([f"audio/{name}{artist}.flac", f"artist {artist}", quadrant])
    out = tmp_path / "follow.json"
    command = [sys.executable, "-m", "rt_mer.training.follow", "--fourq", str(tmp_path), "--folds", "0",
               "--json", str(out)]
    env = {**os.environ, "RT_MER_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "fold 0: 2 pairs of 2 clips" in done.stderr and "TRAINING DATA" in done.stdout
    report = json.loads(out.read_text())["folds 0"]
    assert set(report) == {"raw", "ema 2 s"}
    for row in report.values():                      # both pairs move on both axes, and follow the cut
        assert row["steps"] == 4 and row["never"] == 0 and 0 < row["median"] <= 20
    assert 0 < report["ema 2 s"]["steadiness"] < report["raw"]["steadiness"]
    assert len(list((tmp_path / "cache" / "follow").glob("*.npz"))) == 1        # raw outputs cached once
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and json.loads(out.read_text())["folds 0"] == report
    # Other labelled clips, all in one group: ten pairs, and the published quadrant mostly the label's.
    clips = subprocess.run(command[:3] + ["--clips", str(tmp_path / "labels.csv"), "--json", str(out)],
                           env=env, capture_output=True, text=True, timeout=600)
    assert clips.returncode == 0 and "clips: 10 pairs of 10 clips" in clips.stderr, clips.stderr
    assert "on the clips of" in clips.stdout
    for row in json.loads(out.read_text())["clips"].values():
        assert row["steps"] == 20 and row["accuracy"] > 0.5


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rt_mer.training.follow", "--fourq", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1 and "labels.csv" in done.stderr
    (tmp_path / "clips.csv").write_text("file,quadrant\nnone.flac,Q1\nnone.flac,Q3\n")
    for extra, said in ((["--grid"], "not both"), (["--model", "f{fold}.onnx"], "not both"), ([], "none.flac"),
                        (["--json", str(tmp_path / "clips.csv")], "would overwrite the --clips input")):
        done = subprocess.run([sys.executable, "-m", "rt_mer.training.follow", "--clips", str(tmp_path / "clips.csv"),
                               *extra], capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1 and said in done.stderr


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
    out, folds = tmp_path / "model.onnx", tmp_path / "folds"
    result = tiny(cache, "--distill", "0", "--answers", "0", "--cv-seeds", "0", "--jobs", "1", "--out", str(out),
                  "--fold-models", str(folds))
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
    prior = report["cross_validation"]["prior"]        # chosen on the held-out logits; in the shipped model
    assert len(prior["runs"]) == 5 and report["prior"] == prior["offsets"]
    assert f"offsets on every run {prior['offsets']}" in result.stdout
    written = ["folds", "model.json", "model.onnx", "model.pt", "model.runs.jsonl"]
    assert sorted(path.name for path in tmp_path.iterdir()) == written     # no partial files left
    assert sorted(path.name for path in folds.iterdir()) == sorted(f"fold{fold}-seed0.{kind}" for fold in range(5)
                                                                   for kind in ("onnx", "pt"))
    windows = np.random.default_rng(0).normal(-40.0, 10.0, (2, *WINDOW_SHAPE)).astype(np.float32)
    shipped, *held_out = [open_engine(model=path).infer(windows) for path in [out, *sorted(folds.glob("*.onnx"))]]
    assert shipped.valence.shape == (2,) and np.all(np.abs(shipped.valence) <= 1)
    assert all(not np.allclose(model.valence, shipped.valence) for model in held_out)   # each its own weights


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
    folds = tmp_path / "folds"
    with_models = tiny(cache, *trial, "--cv-seeds", "0", "--resume", "--fold-models", str(folds))
    assert "5 fold runs to go" in with_models.stdout                  # kept runs without their model: run again
    assert len(list(folds.glob("*.onnx"))) == 5
    kept = tiny(cache, *trial, "--cv-seeds", "0", "--resume", "--fold-models", str(folds))
    assert f"0 fold runs to go, 5 kept from {progress}" in kept.stdout


@pytest.mark.slow
@needs_data
def test_distillation_needs_the_teachers_outputs_and_uses_them(tmp_path, cache):
    out = tmp_path / "model.onnx"
    folder = cache / "teacher" / corpus.TEACHER_VERSION        # what the teacher writes, made up
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def teach(paths):
        for path in paths:
            embedding = rng.normal(size=(10, 200)).astype(np.float16)
            np.savez(folder / f"{corpus.cache_key(path)}.npz", penultimate=embedding)

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
