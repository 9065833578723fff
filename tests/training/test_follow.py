"""The follow benchmark: its measures on synthetic step sequences, its
pairing, and its replay through the analyzer's smoothing."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rt_mer.training.follow import (JumpEma, Setting, labelled_clips, levels, pairs, published, steadiness, step_time,
                                    summary)

T = np.arange(1, 81) * 0.5            # window ends every 0.5 s over a 40 s stream; the cut at 20 s


def ramp(before: float, after: float, seconds: float = 2.0) -> np.ndarray:
    """`before` up to the cut, then a linear move to `after` over `seconds`."""
    share = np.clip((T - 20) / seconds, 0, 1)
    return before + share * (after - before)


def test_step_time_is_when_the_values_stay_past_halfway():
    up = ramp(0.0, 1.0)                              # halfway (0.5) at 21 s exactly: not past; 21.5 s is
    assert step_time(T, up, 20.0, 0.0, 1.0) == 1.5
    assert step_time(T, ramp(1.0, -1.0, 4.0), 20.0, 1.0, -1.0) == 2.5     # downwards: 0 at 22 s, below at 22.5 s
    dipped = up.copy()
    dipped[T == 30] = 0.4                            # one window back below halfway: it crossed for good after it
    assert step_time(T, dipped, 20.0, 0.0, 1.0) == 10.5
    before_cut = up.copy()
    before_cut[T == 10] = 0.9                        # past halfway before the cut does not count
    assert step_time(T, before_cut, 20.0, 0.0, 1.0) == 1.5
    ends_short = up.copy()
    ends_short[-1] = 0.2
    assert step_time(T, ends_short, 20.0, 0.0, 1.0) == math.inf


def test_steadiness_is_the_spread_within_the_range_only():
    values = np.where(np.arange(len(T)) % 2, 0.1, -0.1) + 3.0
    values[T > 19.5] = 50.0                          # outside the range measured
    values[T < 8] = -50.0
    assert steadiness(T, values, 8.0, 19.5) == pytest.approx(0.1)      # 24 windows, half each way
    assert steadiness(T, np.full(len(T), 0.3), 8.0, 20.0) == 0.0


def test_levels_are_the_windows_wholly_on_each_side():
    raw = np.where(T <= 20, 0.2, -0.6)
    raw[(T > 20) & (T < 24)] = 5.0                   # windows straddling the cut (4 s) are in neither level
    assert levels(T, raw, 20.0) == pytest.approx((0.2, -0.6))


def test_summary_pools_axes_and_keeps_never_as_infinite():
    measures = [{"steps": {"valence": [1.0, 2.0], "arousal": [3.0, math.inf]}, "steadiness": [0.1, 0.3],
                 "levels": {"valence": [-0.5, 0.5], "arousal": [0.0, 0.0]}, "agree": [1.0, 0.5]}]
    result = summary(measures)
    assert result["median"] == 2.0 and result["p90"] == math.inf and result["never"] == 1 and result["steps"] == 4
    assert result["median_valence"] == 1.0 and result["steadiness"] == pytest.approx(0.2)
    assert result["spread"] == pytest.approx(0.25) and result["relative"] == pytest.approx(0.8)
    assert result["accuracy"] == pytest.approx(0.75)


def test_relative_steadiness_does_not_favour_a_narrower_output_range():
    wide = {"steps": {"valence": [1.0], "arousal": [1.0]}, "steadiness": [0.2, 0.2],
            "levels": {"valence": [-0.8, 0.8], "arousal": [-0.4, 0.4]}, "agree": [1.0]}
    narrow = {**wide, "steadiness": [0.1, 0.1], "levels": {"valence": [-0.4, 0.4], "arousal": [-0.2, 0.2]}}
    assert summary([narrow])["steadiness"] < summary([wide])["steadiness"]
    assert summary([narrow])["relative"] == pytest.approx(summary([wide])["relative"])


def test_pairs_stay_in_the_fold_and_differ_in_quadrant():
    quadrants = [1, 1, 2, 3, 4, 1, 1, 1]
    fold = np.array([0, 1, 2, 3, 4])
    found = pairs(quadrants, fold, seed=0)
    assert sorted(a for a, _ in found) == [0, 1, 2, 3, 4]           # every clip once as the first
    assert all(b in fold and quadrants[a] != quadrants[b] for a, b in found)
    assert pairs([1, 1, 1], np.array([0, 1, 2]), seed=0) == []       # nothing to cut to


def test_labelled_clips_read_4qs_columns_and_refuse_other_labels(tmp_path):
    table = tmp_path / "clips.csv"
    table.write_text(f"file,artist,quadrant\na.flac,x,Q2\n{tmp_path / 'b.mp3'},y, 4\n")
    assert labelled_clips(table) == ([tmp_path / "a.flac", tmp_path / "b.mp3"], [2, 4])
    table.write_text("file,quadrant\na.flac,Q5\n")
    with pytest.raises(ValueError, match=r"line 2 \('a.flac', 'Q5'\): a quadrant is 1-4 or Q1-Q4, got 'Q5'"):
        labelled_clips(table)
    table.write_text("file,quadrant\na.flac,Q1\nb.flac\n")                 # a cell missing
    with pytest.raises(ValueError, match=r"line 3 \('b.flac', None\): a quadrant is 1-4 or Q1-Q4, got None"):
        labelled_clips(table)
    table.write_text("file,quadrant\n,Q1\n")
    with pytest.raises(ValueError, match=r"line 2 \('', 'Q1'\): a file is missing"):
        labelled_clips(table)
    table.write_text("path,label\na.flac,Q1\n")
    with pytest.raises(ValueError, match="columns file and quadrant"):
        labelled_clips(table)


def test_the_replay_is_the_analyzers_smoothing():
    ends = np.arange(64, 64 + 8 * 20, 8)             # every 0.5 s from the first full window
    raw = {"end": ends, "valence": np.r_[np.zeros(10), np.ones(10)], "arousal": np.linspace(-1, 1, 20)}
    t, values = published(raw, Setting("off"), 0.5)
    assert np.allclose(values["valence"], raw["valence"]) and np.allclose(t, ends / 16)
    _, smoothed = published(raw, Setting("ema", 2.0), 0.5)
    alpha = 1 - math.exp(-0.5 / 2.0)
    assert smoothed["valence"][10] == pytest.approx(alpha)           # one step of the EMA after the jump
    _, fast = published(raw, Setting("one-euro", 2.0, 32), 0.5)
    _, slow = published(raw, Setting("one-euro", 2.0, 0.5), 0.5)
    assert fast["valence"][11] > slow["valence"][11]                 # beta opens the filter on a step


def test_the_jump_ema_is_the_slow_ema_until_a_fast_one_leaves_it():
    jump, slow = JumpEma(8.0, 0.5, 0.2), Setting("ema", 8.0).smoother()
    small = [0.0, 0.1, -0.1, 0.1, 0.0]              # within the threshold: exactly the slow EMA
    assert [jump(x, 0.5) for x in small] == [slow(x, 0.5) for x in small]
    after = [jump(1.0, 0.5) for _ in range(6)]      # a step of 1: pulled along, threshold behind the fast EMA
    fast = Setting("ema", 0.5).smoother()
    quick = [fast(x, 0.5) for x in small + [1.0] * 6][-6:]
    assert all(q - 0.2 - 1e-12 <= a < q for a, q in zip(after, quick))
    assert after[1] == pytest.approx(quick[1] - 0.2) and slow(1.0, 0.5) < 0.2    # the slow EMA alone lags
