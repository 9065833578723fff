"""Files the tests write and read: CSV tables, JSON lines, mood files,
images, and a name a terminal would act on."""
from __future__ import annotations

import csv
import json

import numpy as np

HEADER = ["file", "t_start", "t_end", "valence", "arousal", "quadrant", "mood"]
HOSTILE = "a\x1b[31mred\nline\x07"          # ESC, a newline and BEL, as a file name may hold them
SHOWN = "a\\x1b[31mred\\nline\\x07"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def vocabulary(text, tmp_path, name="moods.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def image(path):
    """The PNG as greyscale pixels, 0-255."""
    from PIL import Image          # matplotlib's own dependency: the [plot] extra
    with Image.open(path) as picture:
        return np.asarray(picture.convert("L"), dtype=float)


def panel_rows(pixels):
    """The plane panels found in the image: runs of rows where a long dark
    horizontal frame line crosses the right third (each plane's top and
    bottom edge), two per panel."""
    right = pixels[:, pixels.shape[1] * 2 // 3:]
    dark_rows = np.flatnonzero((right < 80).sum(axis=1) > right.shape[1] * 0.5)
    runs = np.split(dark_rows, np.flatnonzero(np.diff(dark_rows) > 1) + 1) if len(dark_rows) else []
    return len(runs) // 2
