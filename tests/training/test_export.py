"""The ONNX export is the single source of what ships: the network built
from the shipped weights exports a graph whose outputs are the shipped
model's."""
from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

from rt_mer.audio import demo_path
from rt_mer.audio.io import read_audio
from rt_mer.contract import INPUT_NAME, OUTPUT_NAMES, WINDOW_SHAPE
from rt_mer.dsp.frontend import WINDOW_FRAMES, harmonic_stack, spectrogram
from rt_mer.inference import default_model, shipped_weights
from rt_mer.training.export import export, save_weights
from rt_mer.training.network import HarmonicCNN, trained

EXPORT_TOLERANCE = 1e-6


def outputs(model, windows: np.ndarray) -> dict[str, np.ndarray]:
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {INPUT_NAME: windows})))


def test_the_shipped_weights_export_the_shipped_graph(tmp_path):
    if not shipped_weights().is_file():
        pytest.skip(f"no {shipped_weights()} here (a wheel ships the ONNX model only)")
    exported = tmp_path / "rt-mer.onnx"
    export(trained(shipped_weights()), exported)
    assert not list(tmp_path.glob("*.part*"))                    # written whole, under its name
    stacked = harmonic_stack(spectrogram(read_audio(demo_path())[:30 * 16000]))
    music = np.stack([stacked[..., end - WINDOW_FRAMES:end] for end in range(WINDOW_FRAMES, stacked.shape[-1], 97)])
    noise = np.random.default_rng(0).uniform(-120, -10, (8, *WINDOW_SHAPE)).astype(np.float32)
    for windows in (music, noise):
        ours, shipped = outputs(exported, windows), outputs(default_model(), windows)
        for name in OUTPUT_NAMES:
            np.testing.assert_allclose(ours[name], shipped[name], rtol=0, atol=EXPORT_TOLERANCE, err_msg=name)


def test_weights_without_a_report_load_at_the_width_they_were_trained_at(tmp_path):
    """A fold model's weights (--fold-models) have no training report beside them."""
    torch.manual_seed(0)
    network = HarmonicCNN(1.5).eval()
    save_weights(network, tmp_path / "fold0-seed0.pt")
    loaded = trained(tmp_path / "fold0-seed0.pt")
    windows = torch.from_numpy(np.random.default_rng(0).uniform(-120, -10, (2, *WINDOW_SHAPE)).astype(np.float32))
    assert loaded.emotion_timbre.in_features == network.emotion_timbre.in_features == 96      # not width 1's 64
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(windows).logits.numpy(), network(windows).logits.numpy())
