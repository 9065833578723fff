"""Training corpora: real recordings of every genre (the 4Q audio emotion
dataset), EMOPIA rendered to audio, and a procedurally generated,
rule-labelled corpus that widens the timbre beyond piano.

Renders are build artefacts, cached under rt_mer.cache.cache_dir() ($RT_MER_CACHE,
else $XDG_CACHE_HOME/rt-mer, else ~/.cache/rt-mer), never in git. The
datasets are read from --emopia and --fourq (defaults: $RT_MER_EMOPIA and
$RT_MER_4Q, else ../shared/data/emopia and ../shared/data/4q from the
working directory).

    python -m rt_mer.training.data.corpus emopia          # render the EMOPIA train/val MIDI
    python -m rt_mer.training.data.corpus procedural      # write and render the rule corpus
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from ...cache import cache_dir

EMOPIA = Path(os.environ.get("RT_MER_EMOPIA", Path("..", "shared", "data", "emopia")))
FOURQ = Path(os.environ.get("RT_MER_4Q", Path("..", "shared", "data", "4q")))
CACHE = cache_dir()
FOLDS = 5                                # artist-grouped cross-validation folds of the 4Q recordings
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# A piano sampled at several velocities: soft notes are darker, not only quieter (FluidR3's are not).
LAYERED_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
SOUNDFONT_PACKAGES = {SOUNDFONT: "fluid-soundfont-gm", LAYERED_SOUNDFONT: "musescore-general-soundfont-small"}
RENDER_RATE = 22050


TEACHER_VERSION = "MSD_musicnn-v1"       # rt_mer.training.teacher's outputs, under CACHE/teacher/
TEACHER_PATCH_SECONDS = 187 * 256 / 16000  # musicnn's input patch: 187 frames of 256 samples at 16 kHz


def write_whole(path: Path, text: str) -> None:
    """`text` to `path`, written whole or not at all (a report, a table)."""
    partial = path.with_suffix(".part" + path.suffix)
    partial.write_text(text)
    partial.replace(path)


def cache_key(path: Path) -> str:
    """A clip's name in the caches: unique across the corpora's folders."""
    return f"{path.parent.name}-{path.stem}"


def cached_array(kind: str, version: str, path: Path, compute: Callable[[Path], np.ndarray]) -> np.ndarray:
    """`compute(path)`, cached as CACHE/kind/version/<folder>-<stem>.npy:
    bump `version` whenever what `compute` returns changes."""
    cached = CACHE / kind / version / f"{cache_key(path)}.npy"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, compute(path))
    return np.load(cached)


def render(midi: Path, out: Path, soundfont: Path = SOUNDFONT) -> Path:
    """Render one MIDI file with FluidSynth (cached: skipped if present)."""
    if out.exists():
        return out
    if shutil.which("fluidsynth") is None or not soundfont.exists():
        sys.exit(f"fluidsynth and {soundfont} are needed: apt-get install fluidsynth {SOUNDFONT_PACKAGES[soundfont]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part.flac")
    subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(RENDER_RATE), "-T", "flac", "-F", str(partial),
                    str(soundfont), str(midi)], check=True, stdout=subprocess.DEVNULL)
    partial.rename(out)
    return out


def render_all(pairs: list[tuple[Path, Path]], jobs: int = os.cpu_count() or 1) -> list[Path]:
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda pair: render(*pair), pairs))


def quadrant_label(text: str | None) -> int:
    """A quadrant as the datasets write it ("Q3", "3") -> 3; anything else is a ValueError."""
    label = (text or "").strip().upper().removeprefix("Q")
    if label not in {"1", "2", "3", "4"}:
        raise ValueError(f"a quadrant is 1-4 or Q1-Q4, got {text!r}")
    return int(label)


def emopia_rows(split: str, limit: int | None = None, folder: Path = EMOPIA) -> list[tuple[str, int]]:
    """An EMOPIA split ("train" or "val"): each piece's name and quadrant (1..4)."""
    with open(folder / f"{split}.csv", newline="") as f:
        return [(row["fname"], quadrant_label(row["label"])) for row in list(csv.DictReader(f))[:limit]]


def emopia_split(split: str, limit: int | None = None, folder: Path = EMOPIA) -> list[tuple[Path, int]]:
    """Rendered clips of an EMOPIA split with their quadrant (1..4),
    rendering whatever is not cached yet."""
    rows = emopia_rows(split, limit, folder)
    audio = render_all([(folder / "midi" / f"{name}.mid", CACHE / "emopia" / f"{name}.flac") for name, _ in rows])
    return [(path, quadrant) for path, (_, quadrant) in zip(audio, rows)]


def fourq_clips(folder: Path = FOURQ) -> list[tuple[Path, int, str]]:
    """The 4Q recordings: (MP3 path, quadrant 1..4, artist), in labels.csv order."""
    with open(folder / "labels.csv", newline="") as f:
        return [(folder / row["file"], quadrant_label(row["quadrant"]), row["artist"]) for row in csv.DictReader(f)]


def main() -> None:
    from .procedural import CLIPS, make_corpus
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", choices=["emopia", "procedural"])
    parser.add_argument("--count", type=int, default=CLIPS, help="procedural clips to make")
    parser.add_argument("--emopia", type=Path, default=EMOPIA, help="the EMOPIA dataset (default: %(default)s)")
    args = parser.parse_args()
    if args.corpus == "emopia":
        for split in ("train", "val"):
            print(split, len(emopia_split(split, folder=args.emopia)), "clips")
    else:
        print("procedural", len(make_corpus(CACHE / "procedural", args.count)), "clips")


if __name__ == "__main__":
    main()
