"""The shipped model (engines/): ONNX Runtime equals the PyTorch network,
the drivers are exact, and it behaves as the music-psychology literature
says on audio rendered here."""
from __future__ import annotations

import numpy as np
import pytest

from rt_mer.contract import DRIVERS, WINDOW_SHAPE
from rt_mer.inference import open_engine, shipped_weights
from rt_mer.stream.offline import analyze_file

from support.music import LAYERED_SOUNDFONT, render_passage

PARITY_TOLERANCE = 1e-4          # valence/arousal in [-1, 1], float32 both sides
GAIN_TOLERANCE = 0.02            # |change| of a file's mean valence or arousal under +-12 dB


@pytest.fixture(scope="module")
def engine():
    return open_engine()


@pytest.fixture(scope="module")
def passages(tmp_path_factory):
    """The same notes played four ways (rt_mer.training.data.procedural renders)."""
    folder = tmp_path_factory.mktemp("passages")
    return {
        "energetic": render_passage(folder, "energetic", tempo_bpm=170, velocity=118, staccato=1.0, density=4,
                                    drums=True),
        "quiet": render_passage(folder, "quiet", tempo_bpm=60, velocity=35, staccato=0.0, density=4),
        "major": render_passage(folder, "major", major=True),
        "minor": render_passage(folder, "minor", major=False),
        # FluidR3's piano changes only its level with velocity: soft and hard differ in nothing else there
        "soft": render_passage(folder, "soft", LAYERED_SOUNDFONT, velocity=35),
        "hard": render_passage(folder, "hard", LAYERED_SOUNDFONT, velocity=115),
    }


def means(engine, path):
    trajectory = analyze_file(path, engine)
    return float(trajectory.valence.mean()), float(trajectory.arousal.mean())


@pytest.fixture(scope="module")
def network():
    pytest.importorskip("torch")
    from rt_mer.training.network import trained
    if not shipped_weights().is_file():
        pytest.skip(f"no {shipped_weights()} here (a wheel ships the ONNX model only)")
    return trained(shipped_weights())


@pytest.mark.slow
def test_onnx_runtime_equals_pytorch(engine, network, passages):
    import torch

    from rt_mer.audio.io import read_audio
    from rt_mer.dsp.frontend import WINDOW_FRAMES, harmonic_stack, spectrogram
    stacked = harmonic_stack(spectrogram(read_audio(passages["energetic"])))
    windows = np.stack([stacked[..., end - WINDOW_FRAMES:end] for end in range(WINDOW_FRAMES, stacked.shape[-1], 16)])
    ours = engine.infer(windows)
    with torch.no_grad():
        theirs = network(torch.from_numpy(windows))
    np.testing.assert_allclose(ours.valence, theirs.valence.numpy(), atol=PARITY_TOLERANCE)
    np.testing.assert_allclose(ours.arousal, theirs.arousal.numpy(), atol=PARITY_TOLERANCE)
    np.testing.assert_allclose(ours.drivers, theirs.drivers.numpy(), atol=1e-3)
    # where roots tie (silence), which one is credited is arbitrary: compare over pitch classes
    np.testing.assert_allclose(ours.explanation.sum(axis=2), theirs.explanation.numpy().sum(axis=2), atol=1e-3)


def logit(value):
    return np.log((1 + value) / (1 - value))          # inverse of 2 sigmoid(x) - 1


@pytest.mark.slow
def test_drivers_are_exact(engine, network, passages):
    """The five branches' terms sum, with the heads' one bias, to the logit
    (valence = 2 sigmoid(logit) - 1); the harmony map's mean is the harmony
    and key terms. Through the shipped ONNX model, on real audio."""
    trajectory = analyze_file(passages["major"], engine)
    assert trajectory.drivers.shape == (len(trajectory.valence), 2, len(DRIVERS))
    logits = np.stack([logit(trajectory.valence), logit(trajectory.arousal)], axis=1)
    bias = network.emotion_temporal.bias.detach().numpy()
    np.testing.assert_allclose(trajectory.drivers.sum(axis=2) + bias, logits, atol=1e-3)
    harmony, key = DRIVERS.index("harmony"), DRIVERS.index("key")
    np.testing.assert_allclose(trajectory.explanation.mean(axis=(2, 3)),
                               trajectory.drivers[:, :, harmony] + trajectory.drivers[:, :, key], atol=1e-4)
    assert np.abs(trajectory.drivers).max(axis=(0, 1)).min() > 0.01       # every branch has its say


def test_training_logits_are_the_drivers_sum(network):
    """forward's logits, which training fits, are the served ones."""
    import torch
    windows = torch.from_numpy(np.random.default_rng(0).normal(-60, 20, (3, *WINDOW_SHAPE)).astype(np.float32))
    with torch.no_grad():
        out = network(windows)
    torch.testing.assert_close(out.logits, out.drivers.sum(dim=2) + network.emotion_temporal.bias)
    torch.testing.assert_close(out.valence, 2 * torch.sigmoid(out.logits[:, 0]) - 1)
    torch.testing.assert_close(out.explanation.mean(dim=(2, 3)), out.drivers[:, :, :2].sum(dim=2))


@pytest.mark.slow
def test_fast_loud_staccato_is_more_aroused_than_slow_soft_legato(engine, passages):
    _, energetic = means(engine, passages["energetic"])
    _, quiet = means(engine, passages["quiet"])
    assert energetic > quiet + 0.2, (energetic, quiet)


@pytest.mark.slow
def test_major_is_more_positive_than_minor(engine, passages):
    major, _ = means(engine, passages["major"])
    minor, _ = means(engine, passages["minor"])
    assert major > minor + 0.1, (major, minor)


def peak_normalised(path, out):
    import soundfile
    audio, rate = soundfile.read(path, dtype="float32")
    soundfile.write(out, audio * (0.5 / np.abs(audio).max()), rate, subtype="FLOAT")
    return out


@pytest.mark.slow
def test_soft_playing_is_calmer_than_hard_playing_at_the_same_peak_level(engine, passages, tmp_path):
    """The same notes at MIDI velocity 35 and 115 on a piano sampled at
    several velocities, both brought to one peak level: soft playing is
    heard in the timbre (a darker attack), not the fader."""
    _, soft = means(engine, peak_normalised(passages["soft"], tmp_path / "soft.wav"))
    _, hard = means(engine, peak_normalised(passages["hard"], tmp_path / "hard.wav"))
    assert hard > soft + 0.1, (hard, soft)


@pytest.mark.slow
@pytest.mark.parametrize("gain_db", [-12, 12])
def test_gain_changes_little(engine, passages, tmp_path, gain_db):
    import soundfile
    audio, rate = soundfile.read(passages["major"], dtype="float32")
    scaled = tmp_path / "scaled.wav"
    soundfile.write(scaled, audio * 10 ** (gain_db / 20), rate, subtype="FLOAT")
    reference = np.array(means(engine, passages["major"]))
    changed = np.array(means(engine, scaled))
    assert np.abs(changed - reference).max() < GAIN_TOLERANCE, (gain_db, reference, changed)
