"""Smoothing of the (valence, arousal) trajectory: off, an exponential
moving average, or the one-euro filter (Casiez, Roussel and Vogel, CHI
2012), which smooths steady passages hard and follows real changes fast."""
from __future__ import annotations

import math

SMOOTHERS = ("off", "ema", "one-euro")
ONE_EURO_BETA = 0.5           # the one-euro filter's speed gain, 1/(value units)
ONE_EURO_DERIVATIVE_CUTOFF = 1.0   # Hz: how smooth the speed that opens it is


class Passthrough:
    def __call__(self, value: float, dt: float) -> float:
        return value


class Ema:
    def __init__(self, time_constant: float) -> None:
        self.time_constant, self.value = time_constant, None

    def __call__(self, value: float, dt: float) -> float:
        alpha = 1.0 - math.exp(-dt / self.time_constant)
        self.value = value if self.value is None else self.value + alpha * (value - self.value)
        return self.value


class OneEuro:
    """min_cutoff (Hz) sets smoothing at rest; beta how fast speed opens it."""

    def __init__(self, min_cutoff: float, beta: float = 0.5, derivative_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.derivative_cutoff = min_cutoff, beta, derivative_cutoff
        self.value, self.speed = None, 0.0

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, value: float, dt: float) -> float:
        if self.value is None:
            self.value = value
            return value
        speed = (value - self.value) / dt
        self.speed += self._alpha(self.derivative_cutoff, dt) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * abs(self.speed)
        self.value += self._alpha(cutoff, dt) * (value - self.value)
        return self.value


def make_smoother(kind: str, time_constant: float, beta: float = ONE_EURO_BETA,
                  derivative_cutoff: float = ONE_EURO_DERIVATIVE_CUTOFF):
    """One smoother per signal; `time_constant` (s) for ema, and as
    1 / (2 pi min_cutoff) for one-euro, with `beta` and `derivative_cutoff`."""
    if kind == "off":
        return Passthrough()
    if kind == "ema":
        return Ema(time_constant)
    if kind == "one-euro":
        return OneEuro(1.0 / (2 * math.pi * time_constant), beta, derivative_cutoff)
    raise ValueError(f"unknown smoothing {kind!r}; choose from {', '.join(SMOOTHERS)}")
