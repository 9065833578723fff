"""The model's input/output contract, shared by the front-end's consumers,
every engine, the training network and the wire schema: one home.

A window is float32 [*WINDOW_SHAPE] (harmonics x pitch bins x frames, dB),
fed to the model as INPUT_NAME; the model answers with OUTPUT_NAMES.
"""
from __future__ import annotations

from .dsp.frontend import HARMONICS, N_BINS, WINDOW_FRAMES

INPUT_NAME = "spectrogram"
OUTPUT_NAMES = ("valence", "arousal", "explanation", "drivers")
# The model's branches, in the order of the drivers output: each one's term
# of the valence and arousal logits, which sum to them with a constant bias.
DRIVERS = ("harmony", "key", "register", "timbre", "rhythm")
WINDOW_SHAPE = (len(HARMONICS), N_BINS, WINDOW_FRAMES)
