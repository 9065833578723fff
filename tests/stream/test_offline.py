"""Offline analysis (rt_mer.stream.offline) and the Python API: channel count
and rate do not change the answer; what it found is shown."""
from __future__ import annotations

import numpy as np
import pytest

import rt_mer
from rt_mer.stream.offline import analyze_file

from support.files import HEADER
from support.music import chord_music, windows_in, write


def test_channel_count_and_rate_do_not_change_the_answer(tmp_path):
    """The same music as 16 kHz mono and 48 kHz stereo gives nearly the same
    trajectory: downmix and resampling are transparent."""
    mono = chord_music(12, 48000, 1, seed=9)[:, 0]
    a = analyze_file(write(tmp_path / "a.wav", np.stack([mono, mono], 1), 48000, subtype="FLOAT"))
    b = analyze_file(write(tmp_path / "b.wav", mono, 48000, subtype="FLOAT"))
    np.testing.assert_allclose(a.valence, b.valence, atol=1e-4)
    np.testing.assert_allclose(a.arousal, b.arousal, atol=1e-4)


def test_python_api(good_files):
    trajectory = rt_mer.analyze_file(good_files[0])
    assert len(trajectory.valence) == len(trajectory.t_end) == len(trajectory.quadrants) == windows_in(12, 0.5)
    assert trajectory.explanation.shape[1:3] == (2, 12)
    valence, arousal, quadrant, mood = trajectory.summary()
    assert valence == pytest.approx(float(np.mean(trajectory.valence)))


def test_python_api_shows_what_it_found(good_files):
    """print() summarises the whole file (not five bare fields), and
    to_rows() gives every window with its quadrant, mood and drivers by name."""
    from rt_mer.contract import DRIVERS
    trajectory = rt_mer.analyze_file(good_files[0])
    shown = repr(trajectory)
    valence, arousal, quadrant, mood = trajectory.summary()
    windows = len(trajectory.valence)
    assert len(shown) < 400 and "array(" not in shown
    for part in (f"{trajectory.t_end[-1]:.1f} s", f"{windows} windows", "every 0.5 s", f"valence {valence:+.2f}",
                 f"arousal {arousal:+.2f}", f"quadrant {quadrant}, {mood}", trajectory.moods[0]):
        assert part in shown, (part, shown)
    assert f"1/2/3/4: {'/'.join(str(trajectory.quadrants.count(q)) for q in range(1, 5))}" in shown

    rows = trajectory.to_rows()
    assert len(rows) == windows
    assert list(rows[0])[:7] == HEADER
    assert [row["mood"] for row in rows] == trajectory.moods
    assert [row["quadrant"] for row in rows] == trajectory.quadrants
    for i, row in enumerate(rows):
        assert row["t_end"] == trajectory.t_end[i] and row["valence"] == pytest.approx(trajectory.valence[i])
        for a, axis in enumerate(("valence", "arousal")):
            assert [row[f"{axis}_{name}"] for name in DRIVERS] == pytest.approx(trajectory.drivers[i, a].tolist())
