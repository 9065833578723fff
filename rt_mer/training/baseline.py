"""The handcrafted-descriptor baseline the network must beat: loudness,
spectral shape and contrast, MFCC, chroma, key-profile correlation, onset
rate and tempo per clip (librosa), into a logistic regression and an SVM,
trained and scored on the same splits as the network."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import librosa
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ..audio.io import read_audio
from ..dsp.frontend import SAMPLE_RATE
from .data.corpus import cached_array

DESCRIPTORS_VERSION = 2
# Krumhansl-Kessler key profiles.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_correlation(chroma: np.ndarray, profile: np.ndarray) -> float:
    return max(np.corrcoef(chroma, np.roll(profile, shift))[0, 1] for shift in range(12))


def mean_and_std(frames: np.ndarray) -> np.ndarray:
    """[features, frames] -> [2 * features]: the usual clip-level summary."""
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)])


def descriptors(path: Path) -> np.ndarray:
    audio = read_audio(path)
    spectrum = np.abs(librosa.stft(audio, n_fft=2048, hop_length=512))
    rms_db = librosa.amplitude_to_db(librosa.feature.rms(S=spectrum)[0] + 1e-6)
    onset_envelope = librosa.onset.onset_strength(y=audio, sr=SAMPLE_RATE)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_envelope, sr=SAMPLE_RATE)
    tempo = librosa.feature.tempo(onset_envelope=onset_envelope, sr=SAMPLE_RATE)[0]
    shape = np.stack([librosa.feature.spectral_centroid(S=spectrum, sr=SAMPLE_RATE)[0],
                      librosa.feature.spectral_bandwidth(S=spectrum, sr=SAMPLE_RATE)[0],
                      librosa.feature.spectral_rolloff(S=spectrum, sr=SAMPLE_RATE)[0],
                      librosa.feature.spectral_flatness(S=spectrum)[0],
                      librosa.feature.zero_crossing_rate(audio)[0]])
    contrast = librosa.feature.spectral_contrast(S=spectrum, sr=SAMPLE_RATE)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=spectrum ** 2)), n_mfcc=20)
    chroma = librosa.feature.chroma_stft(S=spectrum, sr=SAMPLE_RATE).mean(axis=1)
    major, minor = key_correlation(chroma, MAJOR_PROFILE), key_correlation(chroma, MINOR_PROFILE)
    return np.concatenate([[rms_db.mean(), rms_db.std(), rms_db.max() - np.median(rms_db),
                            len(onsets) / (len(audio) / SAMPLE_RATE), tempo, major, minor, major - minor],
                           mean_and_std(shape), mean_and_std(contrast), mean_and_std(mfcc),
                           chroma / (chroma.sum() + 1e-9)]).astype(np.float32)


def cached_descriptors(path: Path) -> np.ndarray:
    return cached_array("descriptors", f"v{DESCRIPTORS_VERSION}", path, descriptors)


def descriptor_matrix(paths: list[Path]) -> np.ndarray:
    with ProcessPoolExecutor() as pool:
        return np.stack(list(pool.map(cached_descriptors, paths, chunksize=8)))


CLASSIFIERS = {
    "logistic_regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.1)),
    "svm": lambda: make_pipeline(StandardScaler(), SVC(C=1.0, gamma="scale")),
}


def baseline_predictions(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> dict[str, np.ndarray]:
    """Quadrant predictions of each classifier, trained on one split."""
    return {name: make().fit(x_train, y_train).predict(x_test) for name, make in CLASSIFIERS.items()}
