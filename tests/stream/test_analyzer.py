"""The per-stream analyzer (rt_mer.stream.analyzer): the last window of a
stream short of a hop, and when a window's last sample was captured."""
from __future__ import annotations

import numpy as np
import pytest

from rt_mer.dsp.frontend import FRAME_HOP, WINDOW_FRAMES
from rt_mer.stream.analyzer import StreamAnalyzer

from support.music import chord_music


@pytest.mark.parametrize("rate", [44100, 48000])
def test_a_stream_ending_just_short_of_a_hop_still_meters_its_last_window(rate):
    """The resampler's flush completes the window; the input never reached
    the hop's boundary in input samples."""
    analyzer = StreamAnalyzer("x", rate)
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(WINDOW_FRAMES * FRAME_HOP * rate // 16000 - 1) / rate)
    [due] = analyzer.push(tone.astype(np.float32), last=True)
    message = analyzer.emit(due, 0.0, 0.0)
    assert (message.level_dbfs, message.peak_dbfs) == pytest.approx((-9.03, -6.02), abs=0.1)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_a_window_knows_when_its_last_sample_was_captured(rate):
    """A sound card's 20 ms blocks, each stamped with its last sample's
    capture time: a window's `wall` is its own last sample's, whatever the
    resampler holds back, and `buffering` is the audio that came after it."""
    analyzer, block = StreamAnalyzer("x", rate), rate // 50
    music = chord_music(12, rate, 1, seed=3)[:, 0]
    windows = []
    for start in range(0, len(music) - block, block):
        captured = (start + block) / rate                       # the block's last sample
        windows += [(due, captured) for due in analyzer.push(music[start:start + block], capture_time=captured)]
    assert len(windows) >= 10
    for due, captured in windows:
        assert due.wall == pytest.approx(due.end * FRAME_HOP / 16000, abs=1 / rate)
        assert due.buffering == pytest.approx(captured - due.wall)
        assert 0 <= due.buffering < 0.1 and due.frontend > 0
