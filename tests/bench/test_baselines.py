"""The PyTorch baseline is the shipped model, or is skipped with the reason
(never random weights timed)."""
from __future__ import annotations

import numpy as np
import pytest

from rt_mer.bench.baselines import trained_network
from rt_mer.bench.feed import demo_windows
from rt_mer.inference import open_engine, shipped_weights


@pytest.mark.slow
def test_pytorch_baseline_is_the_shipped_model_or_is_skipped_with_the_reason(tmp_path):
    pytest.importorskip("torch")
    absent = tmp_path / "rt-mer.pt"
    network, reason = trained_network(absent)
    assert network is None and str(absent) in reason and "not here" in reason
    absent.write_bytes(b"not weights")
    network, reason = trained_network(absent)
    assert network is None and "do not load" in reason
    if not shipped_weights().is_file():
        pytest.skip("no engines/rt-mer.pt in this checkout")
    import torch

    from rt_mer.training.network import ExportWrapper
    network, reason = trained_network()
    if network is None:                    # weights of another version of the network: skipped, and said so
        assert "do not load" in reason and "\n" not in reason
        pytest.skip(reason)
    windows = demo_windows(4)
    with torch.no_grad():
        valence, arousal, _, drivers = ExportWrapper(network).eval()(torch.from_numpy(windows))
    shipped = open_engine("onnxruntime").infer(windows)          # the ONNX model is the shipped one
    np.testing.assert_allclose(valence.numpy(), shipped.valence, atol=1e-3)
    np.testing.assert_allclose(arousal.numpy(), shipped.arousal, atol=1e-3)
    np.testing.assert_allclose(drivers.numpy(), shipped.drivers, atol=1e-3)
