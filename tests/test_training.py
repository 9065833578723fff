"""A few steps of tools/train.py on a tiny corpus, end to end: render,
features, baseline and training on artist folds, validation, ONNX export
that our engine opens."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rt_mer.engines import open_engine
from rt_mer.engines.base import WINDOW_SHAPE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from corpus import EMOPIA, FOURQ  # noqa: E402


@pytest.mark.skipif(not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists(), reason="fluid-soundfont-gm missing")
@pytest.mark.skipif(not (EMOPIA / "train.csv").exists() or not (FOURQ / "labels.csv").exists(),
                    reason=f"training data not found at {EMOPIA} and {FOURQ} (set RT_MER_EMOPIA and RT_MER_4Q)")
def test_training_smoke(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "model.onnx"
    env = {**os.environ, "RT_MER_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--limit", "20", "--procedural", "4",
                             "--steps", "3", "--batch", "6", "--cv-seeds", "0", "--jobs", "1", "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "step 3/3" in result.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    runs = report["cross_validation"]["runs"]
    assert sorted(run["fold"] for run in runs) == [0, 1, 2, 3, 4]
    for run in runs:
        for corpus_name in ("recordings", "emopia_val"):
            assert set(run[corpus_name]) == {"quadrant", "valence", "arousal"}
            assert all(0.0 <= value <= 1.0 for value in run[corpus_name].values())
    assert set(report["baseline"]["total"]) == {"logistic_regression", "svm"}
    assert report["procedural_clips"] == 4
    engine = open_engine(model=out)
    prediction = engine.infer(np.full((2, *WINDOW_SHAPE), -40.0, np.float32))
    assert prediction.valence.shape == (2,) and np.all(np.abs(prediction.valence) <= 1)
