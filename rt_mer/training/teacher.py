"""The teacher's view of every training clip, for distillation (training
only: nothing of it ships or runs at serving time).

    bash tools/teacher.sh                    # makes .venv-teacher, then runs this in it
    bash tools/teacher.sh --procedural 800   # for python -m rt_mer.training --procedural 800

musicnn (Pons and Serra, 2019; ISC licence; its MSD_musicnn weights ship
inside its PyPI wheel), trained on the Million Song Dataset's 50 most used
Last.fm tags, tags every 3 s patch of a clip. Kept per clip, per patch: the
50 tag probabilities and the 200-unit penultimate layer, under
$RT_MER_CACHE/teacher/<VERSION>/, where training finds them.

musicnn 0.1.0 was written for TensorFlow 1 and pins numpy < 1.17: it is
installed without its dependencies beside TensorFlow 2 and tf-keras (the
TF 1 layers), and its log-mel input is computed here in float32 (its own
float16 copy overflows on loud records and then gives NaN).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")     # musicnn builds tf.compat.v1.layers
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from musicnn import configuration, models  # noqa: E402

from .data import corpus, procedural  # noqa: E402

MODEL = "MSD_musicnn"
PATCH_FRAMES = 187              # musicnn's 3 s input: librosa.time_to_frames(3, 16000, 256, 512) + 1
assert corpus.TEACHER_VERSION.startswith(MODEL)
assert corpus.TEACHER_PATCH_SECONDS == PATCH_FRAMES * configuration.FFT_HOP / configuration.SR


def log_mel_patches(path: Path) -> np.ndarray:
    """The clip as musicnn's input: log-compressed mel patches [P, 187, 96],
    one every 3 s, none overlapping."""
    audio, _ = librosa.load(path, sr=configuration.SR)
    mel = librosa.feature.melspectrogram(y=audio, sr=configuration.SR, hop_length=configuration.FFT_HOP,
                                         n_fft=configuration.FFT_SIZE, n_mels=configuration.N_MELS).T
    mel = np.log10(10000 * mel.astype(np.float32) + 1)
    count = max(1, (len(mel) - PATCH_FRAMES) // PATCH_FRAMES + 1)
    mel = np.pad(mel, ((0, max(0, PATCH_FRAMES - len(mel))), (0, 0)))
    return np.stack([mel[i * PATCH_FRAMES:(i + 1) * PATCH_FRAMES] for i in range(count)])


class Teacher:
    def __init__(self) -> None:
        tf.compat.v1.disable_eager_execution()
        with tf.name_scope("model"):
            self.x = tf.compat.v1.placeholder(tf.float32, [None, PATCH_FRAMES, configuration.N_MELS])
            self.training = tf.compat.v1.placeholder(tf.bool)
            logits, *_, penultimate = models.define_model(self.x, self.training, MODEL,
                                                          len(configuration.MSD_LABELS))
            self.outputs = [tf.nn.sigmoid(logits), penultimate]
        self.session = tf.compat.v1.Session()
        self.session.run(tf.compat.v1.global_variables_initializer())
        weights = Path(models.__file__).parent / MODEL
        tf.compat.v1.train.Saver().restore(self.session, f"{weights}/")

    def __call__(self, path: Path) -> dict[str, np.ndarray]:
        tags, penultimate = self.session.run(self.outputs, {self.x: log_mel_patches(path), self.training: False})
        return {"tags": tags.astype(np.float16), "penultimate": penultimate.astype(np.float16)}


def training_audio(procedural_clips: int, emopia: Path, fourq: Path) -> list[Path]:
    """Every clip training trains on: 4Q, EMOPIA's renders, the
    procedural renders (each rendered here first if not yet)."""
    paths = [path for path, *_ in corpus.fourq_clips(fourq)]
    for split in ("train", "val"):
        paths += [path for path, _ in corpus.emopia_split(split, folder=emopia)]
    return paths + [path for path, _, _ in procedural.make_corpus(corpus.CACHE / "procedural", procedural_clips)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rt_mer.training.teacher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procedural", type=int, default=procedural.CLIPS,
                        help="procedural clips, as python -m rt_mer.training --procedural")
    parser.add_argument("--emopia", type=Path, default=corpus.EMOPIA, help="the EMOPIA dataset (default: %(default)s)")
    parser.add_argument("--fourq", type=Path, default=corpus.FOURQ, help="the 4Q recordings (default: %(default)s)")
    args = parser.parse_args()
    folder = corpus.CACHE / "teacher" / corpus.TEACHER_VERSION
    folder.mkdir(parents=True, exist_ok=True)
    paths = [path for path in training_audio(args.procedural, args.emopia, args.fourq)
             if not (folder / f"{corpus.cache_key(path)}.npz").exists()]
    print(f"{len(paths)} clips to tag with {MODEL}", flush=True)
    teacher, started = Teacher(), time.time()
    for i, path in enumerate(paths, 1):
        np.savez(folder / f"{corpus.cache_key(path)}.npz", **teacher(path))
        if i % 100 == 0:
            print(f"{i}/{len(paths)}  {time.time() - started:.0f} s", flush=True)
    print(f"wrote {folder}", flush=True)


if __name__ == "__main__":
    main()
