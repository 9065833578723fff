"""Post-processing shared by live and offline analysis: the Russell quadrant
of a (valence, arousal) point. Its mood word comes from a vocabulary
(moods.py)."""
from __future__ import annotations


QUADRANT_NAMES = {1: "happy", 2: "tense", 3: "sad", 4: "calm"}     # how the README, dashboard and plots name them


def quadrant(valence: float, arousal: float) -> int:
    """1 = +valence +arousal, 2 = -valence +arousal, 3 = -valence -arousal,
    4 = +valence -arousal (Russell's convention; zero counts as positive)."""
    if arousal >= 0:
        return 1 if valence >= 0 else 2
    return 4 if valence >= 0 else 3
