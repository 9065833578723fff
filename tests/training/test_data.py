"""Training clips: windows cropped from them, the teacher's targets per window."""
from __future__ import annotations

import numpy as np

from rt_mer.dsp import frontend
from rt_mer.training.data.clips import crop, padded, teacher_target

from support.training_clips import taught_clip


def test_teacher_targets_follow_the_window():
    """A window's target is the mean of the teacher's 3 s patches centred in
    it (patch k is centred at (k + 0.5) * 2.992 s), else the nearest one."""
    patches = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)   # patch k is all k
    clip = taught_clip(patches)
    fps = frontend.FRAMES_PER_SECOND
    assert teacher_target(clip, "penultimate", 0)[0] == 0             # 0..4 s holds the centre at 1.5 s
    assert teacher_target(clip, "penultimate", int(3 * fps))[0] == 1  # 3..7 s holds 4.5 s
    assert teacher_target(clip, "penultimate", int(1.0 * fps))[0] == 0.5   # 1..5 s: 1.5 s and 4.5 s
    assert teacher_target(clip, "tags", 0) is None                     # not taught: no target


def test_a_crop_is_a_window_of_the_clip_and_a_short_clip_begins_in_silence():
    frames = frontend.WINDOW_FRAMES
    spec = np.arange(5 * 100, dtype=np.float32).reshape(5, 100)
    window, start = crop(spec, np.random.default_rng(1))
    assert window.shape == (5, frames) and np.array_equal(window, spec[:, start:start + frames])
    short, start = crop(spec[:, :30], np.random.default_rng(0))
    assert start == 0 and short.shape == (5, frames)
    assert np.array_equal(short[:, -30:], spec[:, :30]) and (short[:, :-30] == frontend.FLOOR_DB).all()
    assert padded(spec) is spec
