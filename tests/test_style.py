"""The code reads one way: flake8 (its settings in setup.cfg) finds nothing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_flake8_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "flake8", "rt_mer", "tests", "tools"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
