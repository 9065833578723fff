"""Post-processing shared by live and offline analysis: Russell quadrant and
a mood word for a (valence, arousal) point."""
from __future__ import annotations

import math

# Mood words at their angle on Russell's (1980) circumplex, degrees
# counter-clockwise from +valence.
MOODS = ((0, "pleased"), (25, "happy"), (50, "excited"), (80, "alert"), (105, "tense"), (130, "angry"),
         (155, "distressed"), (180, "sad"), (205, "gloomy"), (235, "depressed"), (260, "tired"),
         (290, "calm"), (315, "relaxed"), (340, "content"))
NEUTRAL_RADIUS = 0.15


def quadrant(valence: float, arousal: float) -> int:
    """1 = +valence +arousal, 2 = -valence +arousal, 3 = -valence -arousal,
    4 = +valence -arousal (Russell's convention; zero counts as positive)."""
    if arousal >= 0:
        return 1 if valence >= 0 else 2
    return 4 if valence >= 0 else 3


def mood(valence: float, arousal: float) -> str:
    """The circumplex word nearest in angle; "neutral" near the centre."""
    if math.hypot(valence, arousal) < NEUTRAL_RADIUS:
        return "neutral"
    angle = math.degrees(math.atan2(arousal, valence)) % 360
    return min(MOODS, key=lambda m: min(abs(angle - m[0]), 360 - abs(angle - m[0])))[1]
