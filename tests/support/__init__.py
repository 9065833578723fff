"""Helpers the tests share: files, music, the wire, processes, GPUs, the
dashboard's messages and the virtual audio device. `tests/` is on the
import path through pytest's `pythonpath` setting (setup.cfg)."""
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent                             # the checkout
