"""`--explain` in a live run: the drivers published add up to its prediction."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from rt_mer.contract import DRIVERS
from rt_mer.stream.offline import analyze_file

from support.files import read_jsonl
from support.music import chord_music, write
from support.processes import CLI
from support.wire import free_endpoint


def logit(value):
    return np.log((1 + value) / (1 - value))


@pytest.mark.slow
def test_live_run_publishes_drivers_that_add_up_to_its_prediction(tmp_path):
    """`rt-mer run --explain`: every emotion message carries the drivers and
    the harmony map; they equal offline analysis, the drivers sum to the
    prediction's logit (the same bias in every window) and the map's mean
    is the harmony and key terms. Without --explain, neither is sent."""
    song = write(tmp_path / "song.wav", chord_music(12, 16000, 1, seed=5), 16000)
    records = {}
    for flag in ("--explain", None):
        records[flag] = tmp_path / f"{flag or 'plain'}.jsonl"
        result = subprocess.run([*CLI, "run", "--no-dash", "--file", str(song),
                                 "--pub", free_endpoint(), "--record", str(records[flag]), *[flag] * bool(flag)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    live = [m for m in read_jsonl(records["--explain"]) if m["type"] == "emotion"]
    offline = analyze_file(song)
    assert len(live) == len(offline.valence) > 3
    drivers = np.array([[list(m["drivers"][axis].values()) for axis in ("valence", "arousal")] for m in live])
    assert all(list(m["drivers"]["arousal"]) == list(DRIVERS) for m in live)
    np.testing.assert_allclose(drivers, offline.drivers, atol=2e-3)
    raw = np.array([[m["valence_raw"], m["arousal_raw"]] for m in live])
    bias = logit(raw) - drivers.sum(axis=2)
    assert np.ptp(bias, axis=0).max() < 0.01, bias                     # a constant: the heads' bias
    maps = np.array([[m["explanation"][axis] for axis in ("valence", "arousal")] for m in live])
    assert maps.shape[1:3] == (2, 12) and maps.shape[3] == offline.explanation.shape[3]
    np.testing.assert_allclose(maps.mean(axis=(2, 3)), drivers[:, :, 0] + drivers[:, :, 1], atol=2e-3)
    plain = [m for m in read_jsonl(records[None]) if m["type"] == "emotion"]
    assert plain and not any("drivers" in m or "explanation" in m for m in plain)
