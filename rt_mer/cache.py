"""Where rt-mer keeps what it builds (TensorRT plans, renders, features):
never in git, never inside the installed package."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$RT_MER_CACHE, else $XDG_CACHE_HOME/rt-mer, else ~/.cache/rt-mer."""
    if os.environ.get("RT_MER_CACHE"):
        return Path(os.environ["RT_MER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rt-mer"
