"""What training does to its windows: changes that should not change the
perceived emotion (`augment`), mixup within a corpus (`mixing_matrix`,
`mix_windows`, `mixed`), and the harmonic stack the network reads (`stack`)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..dsp import frontend
from .network import DYNAMIC_RANGE_DB


def augment(spec: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Changes that should not change perceived emotion, applied to a batch
    of log spectrograms [B, bins, frames] in dB: what microphones, speakers,
    rooms and codecs do to a recording (gain, EQ tilt and colouring, band
    limits, reverberation, noise) and transposition by up to two semitones
    (time shifts come from random crops)."""
    def uniform(like: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.rand(len(like), 1, 1, generator=generator) * (high - low) + low

    def sometimes(p: float, change, spec: torch.Tensor) -> torch.Tensor:
        chosen = torch.rand(len(spec), generator=generator) < p
        if chosen.any():
            spec = spec.clone()
            spec[chosen] = change(spec[chosen])
        return spec

    octaves = (torch.arange(spec.shape[1]) - spec.shape[1] / 2)[None, :, None] / (12 * frontend.BINS_PER_SEMITONE)

    def colour(spec: torch.Tensor) -> torch.Tensor:
        """Gain, tilt and a smooth random EQ curve (+-9 dB at most)."""
        curve = sum(uniform(spec, -3, 3) * torch.cos(2 * np.pi * uniform(spec, 0.3, 2.0) * octaves
                                                     + uniform(spec, 0, 2 * np.pi)) for _ in range(3))
        return spec + uniform(spec, -12, 12) + uniform(spec, -3, 3) * octaves + curve

    def band_limit(spec: torch.Tensor) -> torch.Tensor:
        """A codec's or small speaker's pass band: steep roll-offs below a
        high pass (60 .. 250 Hz) and above a low pass (3 .. 7 kHz)."""
        hz = torch.from_numpy(frontend.bin_frequencies()).float()[None, :, None]
        below = torch.log2(uniform(spec, 60, 250) / hz).clamp(min=0)
        above = torch.log2(hz / uniform(spec, 3000, 7000)).clamp(min=0)
        return spec - 24 * below - 48 * above

    def reverberate(spec: torch.Tensor) -> torch.Tensor:
        """A room: every frame's power decays into the next ones
        (reverberation time 0.3 .. 2 s), mixed 0 .. 10 dB below the direct
        sound."""
        batch, bins, frames = spec.shape
        taps = 24
        decay_db = 60 / uniform(spec, 0.3, 2.0) / frontend.FRAMES_PER_SECOND
        tail_db = -decay_db * torch.arange(1, taps + 1)[None, None, :] - uniform(spec, 0, 10)
        kernel = torch.flip(10 ** (tail_db / 10), dims=[2]).repeat_interleave(bins, dim=0)
        power = F.pad(10 ** (spec / 10), (taps, 0)).reshape(1, batch * bins, -1)
        tail = F.conv1d(power, kernel, groups=batch * bins)[..., :frames].reshape(batch, bins, frames)
        return power_sum(spec, 10 * torch.log10(tail + 1e-30))

    def add_noise(spec: torch.Tensor) -> torch.Tensor:
        """Coloured noise 30 .. 60 dB below the peak: a room, a crowd, hiss."""
        peak = spec.amax(dim=(1, 2), keepdim=True)
        noise = (peak - uniform(spec, 30, 60) + uniform(spec, -3, 0) * octaves
                 + 3 * torch.randn(spec.shape, generator=generator))
        return power_sum(spec, noise)

    spec = sometimes(0.5, add_noise, sometimes(0.3, reverberate, sometimes(0.3, band_limit, colour(spec))))
    return transpose(spec, torch.randint(-6, 7, (len(spec),), generator=generator).tolist())


def power_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(10 ** (a / 10) + 10 ** (b / 10))


def transpose(spec: torch.Tensor, shifts: list[int]) -> torch.Tensor:
    bins = spec.shape[1]
    shifted = torch.full_like(spec, frontend.FLOOR_DB)
    for i, shift in enumerate(shifts):
        src = spec[i, max(0, -shift):bins - max(0, shift)]
        shifted[i, max(0, shift):max(0, shift) + src.shape[0]] = src
    return shifted


def mixing_matrix(groups: list[tuple[int, float]], rng: np.random.Generator) -> np.ndarray:
    """Mixup (Zhang et al. 2018) within each corpus of a batch (`groups`:
    its consecutive clips and its alpha; 0: not mixed): row i holds window
    i's share, drawn from Beta(alpha, alpha), and the rest for a random
    partner of its corpus."""
    total = sum(size for size, _ in groups)
    mixing = np.zeros((total, total), np.float32)
    first = 0
    for size, alpha in groups:
        rows = np.arange(first, first + size)
        share = rng.beta(alpha, alpha, size) if alpha else np.ones(size)
        mixing[rows, rows] += share
        mixing[rows, first + rng.permutation(size)] += 1 - share
        first += size
    return mixing


def mix_windows(spec: torch.Tensor, mixing: np.ndarray) -> torch.Tensor:
    """Windows [B, bins, frames] in dB mixed as sounds: powers added by the
    rows' shares, every window first brought to the same peak (so a share
    is what a listener hears of it), the result at the row's own level. The
    floor stays silence, and a silent window's peak is taken as the network
    takes it (60 dB above the floor), so it is not raised to full scale."""
    peaks = spec.amax(dim=(1, 2), keepdim=True).clamp(min=frontend.FLOOR_DB + DYNAMIC_RANGE_DB)
    power = torch.where(spec > frontend.FLOOR_DB, 10 ** ((spec - peaks) / 10), 0.0)
    mix = torch.einsum("ij,jft->ift", torch.from_numpy(mixing), power)
    return (10 * torch.log10(mix.clamp(min=1e-30)) + peaks).clamp(min=frontend.FLOOR_DB)


def mixed(targets: list, mixing: np.ndarray | None) -> list:
    """Per-window targets mixed as their windows were: None where a window
    in the mix has none."""
    if mixing is None:
        return targets
    return [None if any(targets[j] is None for j in np.flatnonzero(row))
            else sum(row[j] * targets[j] for j in np.flatnonzero(row)) for row in mixing]


def stack(spec: torch.Tensor) -> torch.Tensor:
    """Torch twin of frontend.harmonic_stack: harmonic k of bin p is bin
    p + offset_k, the floor above the top bin."""
    floor = torch.full_like(spec, frontend.FLOOR_DB)
    padded = torch.cat([spec, floor], dim=1)
    return torch.stack([padded[:, offset:offset + spec.shape[1]] for offset in frontend.harmonic_offsets()], dim=1)
