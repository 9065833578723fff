"""The handcrafted-descriptor baseline the network must beat: loudness, onset
rate, tempo, spectral centroid, chroma, major/minor key-profile correlation
and pitch height per clip (librosa), into a logistic regression and a random
forest, trained and scored on the same splits as the network."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import librosa
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rt_mer.audio.io import read_audio
from rt_mer.dsp.frontend import SAMPLE_RATE

# Krumhansl-Kessler key profiles.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_correlation(chroma: np.ndarray, profile: np.ndarray) -> float:
    return max(np.corrcoef(chroma, np.roll(profile, shift))[0, 1] for shift in range(12))


def descriptors(path: Path) -> np.ndarray:
    audio = read_audio(path)
    rms_db = librosa.amplitude_to_db(librosa.feature.rms(y=audio)[0] + 1e-6)
    onset_envelope = librosa.onset.onset_strength(y=audio, sr=SAMPLE_RATE)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_envelope, sr=SAMPLE_RATE)
    tempo = librosa.feature.tempo(onset_envelope=onset_envelope, sr=SAMPLE_RATE)[0]
    centroid = librosa.feature.spectral_centroid(y=audio, sr=SAMPLE_RATE)[0]
    chroma = librosa.feature.chroma_stft(y=audio, sr=SAMPLE_RATE).mean(axis=1)
    pitches, magnitudes = librosa.piptrack(y=audio, sr=SAMPLE_RATE, fmin=50, fmax=4000)
    height = np.average(librosa.hz_to_midi(pitches[magnitudes > 0]), weights=magnitudes[magnitudes > 0]) \
        if (magnitudes > 0).any() else 0.0
    major, minor = key_correlation(chroma, MAJOR_PROFILE), key_correlation(chroma, MINOR_PROFILE)
    return np.concatenate([[rms_db.mean(), rms_db.std(), len(onsets) / (len(audio) / SAMPLE_RATE), tempo,
                            centroid.mean(), centroid.std(), major, minor, major - minor, height],
                           chroma / (chroma.sum() + 1e-9)])


def descriptor_matrix(clips: list) -> np.ndarray:
    with ProcessPoolExecutor() as pool:
        return np.stack(list(pool.map(descriptors, [clip.path for clip in clips], chunksize=8)))


def descriptor_baseline(train_clips: list, val_clips: list) -> dict[str, float]:
    """Four-quadrant validation accuracy of both classifiers."""
    x_train, x_val = descriptor_matrix(train_clips), descriptor_matrix(val_clips)
    y_train = [clip.quadrant for clip in train_clips]
    y_val = np.array([clip.quadrant for clip in val_clips])
    classifiers = {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5)),
        "random_forest": RandomForestClassifier(n_estimators=500, min_samples_leaf=2, random_state=0),
    }
    return {name: float((model.fit(x_train, y_train).predict(x_val) == y_val).mean())
            for name, model in classifiers.items()}
