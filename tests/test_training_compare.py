"""python -m rt_mer.training.compare: two cross-validation trials run by run,
and a trial recorded into the reports."""
import json
import subprocess
import sys


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
    assert lines[0] == f'{trial}: recipe {{"steps": 8, "answers": 0.0}}' and f'against {report}:old: recipe {{"steps": 2}}' in lines
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
    assert missing.returncode != 0 and missing.stderr.strip() == f"compare: {tmp_path / 'none.json'}: No such file or directory"
