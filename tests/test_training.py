"""A few steps of tools/train.py on a tiny corpus, end to end: render,
features, baseline, training, validation, ONNX export that our engine opens."""
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


@pytest.mark.skipif(not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists(), reason="fluid-soundfont-gm missing")
def test_training_smoke(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "model.onnx"
    env = {**os.environ, "RT_MER_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--limit", "8", "--procedural", "4",
                             "--steps", "3", "--batch", "6", "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "step 3/3" in result.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    for key in ("quadrant_accuracy", "valence_accuracy", "arousal_accuracy"):
        assert 0.0 <= report["model"][key] <= 1.0
    assert set(report["baseline"]) == {"logistic_regression", "random_forest"}
    assert report["procedural_clips"] == 4
    engine = open_engine(model=out)
    prediction = engine.infer(np.full((2, *WINDOW_SHAPE), -40.0, np.float32))
    assert prediction.valence.shape == (2,) and np.all(np.abs(prediction.valence) <= 1)
