"""The harmonic-filter CNN (imports torch: the [train] extra; what ships is its ONNX export, `export`).

After Fong, Kumar and Sudhir (2024): filters whose support follows the
harmonic series see a note and its overtones together, octave folding gives
pitch classes, and a circular convolution over pitch classes detects
intervals whatever the key. A key branch applies the same idea to the
window's mean pitch-class profile, as key finding does (Krumhansl), since
mode is heard over seconds, not in one chord. Real recordings need more
than harmony: a timbre branch reads per-frame band levels, spectral contrast
(peaks against valleys: tonal against noisy), spectral flux (attacks) and
the frame level (dynamics within the window), as the timbral filters of
musicnn do; a rhythm branch reads the autocorrelation of the onset envelope
over the window (tempo and pulse clarity). Pooling each interval template at
its best root, and every branch by a mean before linear heads, keeps the
class activation map exact: its mean over (pitch class, time) is the
harmony branches' term of the output logit.

Input: [batch, harmonics, pitch bins, frames] in dB, as
`rt_mer.dsp.frontend.harmonic_stack` makes it.
Outputs (`Outputs`): valence and arousal in [-1, 1] (2 * P(positive) - 1),
the explanation [batch, 2, 12, frames / 4] (the harmony branches' valence
and arousal logit maps over pitch class and time), the drivers [batch, 2, 5]
(each branch's term of the two logits, which sum to them with the bias),
the logits, and quadrant logits [batch, 4] for training.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

from ..dsp.frontend import BINS_PER_SEMITONE, FLOOR_DB, HARMONICS, N_OCTAVES
from ..contract import DRIVERS

DYNAMIC_RANGE_DB = 60.0        # below the window's peak; the -160 dB floor stays out of sight
TIME_POOL = 4                  # frames per step of the explanation map
HARMONY_POOL = 2               # the harmony branches run at 8 frames/s: chords change slower than attacks
BAND_BINS = 4 * BINS_PER_SEMITONE       # timbre bands of 4 semitones: a third of an octave
RHYTHM_LAGS = 48               # onset autocorrelation up to 3 s: tempi down to 20 bpm, bars at 80 bpm


def level_reference(x: torch.Tensor) -> torch.Tensor:
    """The window's loudest bin [B, 1, 1], never below the floor plus the
    range, so silence maps to 0 rather than to a full-scale flat spectrum."""
    return x[:, 0].amax(dim=(1, 2), keepdim=True).clamp(min=FLOOR_DB + DYNAMIC_RANGE_DB)


def normalise_level(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """dB relative to the window's loudest bin, mapped [-60, 0] dB -> [0, 1]:
    a gain change leaves it unchanged, so the network learns from dynamics
    within the window, not from the input's arbitrary absolute level."""
    return torch.clamp((x - reference) / DYNAMIC_RANGE_DB + 1.0, 0.0, 1.0)


def harmony_pool(x: torch.Tensor) -> torch.Tensor:
    """Mean of each HARMONY_POOL frames. The same numbers two ways, each the
    fastest where it runs: a pooling layer in the ONNX graph, strided slices
    in torch."""
    if torch.onnx.is_in_onnx_export():
        return F.avg_pool2d(x, (1, HARMONY_POOL))
    return sum(x[..., offset::HARMONY_POOL] for offset in range(HARMONY_POOL)) / HARMONY_POOL


def wrap(chroma: torch.Tensor) -> torch.Tensor:
    """Append the first 11 pitch classes, so a kernel of 12 over the result
    is a circular convolution: every interval above each root."""
    return torch.cat([chroma, chroma[:, :, :11]], dim=2)


def at_best_root(pitch_map: torch.Tensor) -> torch.Tensor:
    """Key invariance: each interval template counts at the root where it
    matches best. Keeping only that root's value (times 12) makes the mean
    over pitch classes equal the max, so a map built on it stays exact."""
    roots = torch.arange(12, device=pitch_map.device).view(1, 1, 12, 1)
    return pitch_map * (roots == pitch_map.argmax(dim=2, keepdim=True)) * 12.0


def timbre_descriptors(level: torch.Tensor) -> torch.Tensor:
    """Normalised spectrogram [B, bins, T] -> the timbre descriptors
    [B, 3 * bands + 1, T]: band levels, band contrast (peak over mean), band
    flux (rises only: attacks; none at the window's first frame) and the
    frame's level (dynamics)."""
    batch, bins, frames = level.shape
    bands = level.reshape(batch, bins // BAND_BINS, BAND_BINS, frames)
    band_level = bands.mean(dim=2)
    flux = F.relu(band_level[:, :, 1:] - band_level[:, :, :-1])
    flux = torch.cat([torch.zeros_like(flux[:, :, :1]), flux], dim=2)
    return torch.cat([band_level, bands.amax(dim=2) - band_level, flux, level.amax(dim=1, keepdim=True)], dim=1)


def octave_sums(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Harmonic filter outputs [B, c, 12 * octaves, T] -> pitch classes
    (octaves folded) [B, c, 12, T] and per-octave energies [B, c * octaves, T]."""
    batch, c, _, frames = h.shape
    octaves = h.reshape(batch, c, N_OCTAVES, 12, frames)
    return octaves.sum(dim=2), octaves.sum(dim=3).reshape(batch, c * N_OCTAVES, frames)


def onset_envelope(descriptors: torch.Tensor) -> torch.Tensor:
    """The mean band flux of timbre descriptors [B, 3 * bands + 1, T] -> [B, T]."""
    bands = (descriptors.shape[1] - 1) // 3
    return descriptors[:, 2 * bands:3 * bands].mean(dim=1)


def onset_autocorrelation(onsets: torch.Tensor) -> torch.Tensor:
    """Normalised autocorrelation of the onset envelope [B, T] at lags 1 ..
    RHYTHM_LAGS frames [B, RHYTHM_LAGS]: peaks at the beat period, their
    height is pulse clarity."""
    onsets = onsets - onsets.mean(dim=1, keepdim=True)
    energy = (onsets * onsets).sum(dim=1, keepdim=True) + 1e-6
    frames = onsets.shape[1]
    # one gather for every lag: row l holds the envelope shifted by l + 1, zero past the end
    shifted = torch.arange(1, RHYTHM_LAGS + 1)[:, None] + torch.arange(frames)[None, :]
    padded = torch.cat([onsets, torch.zeros_like(onsets[:, :RHYTHM_LAGS])], dim=1)
    later = padded[:, shifted]                                           # [B, lags, T]
    return (later * onsets[:, None, :]).sum(dim=2) / energy


def conv_block(conv: nn.Module, channels: int, norm: type = nn.BatchNorm2d) -> nn.Sequential:
    return nn.Sequential(conv, norm(channels), nn.ReLU())


class Outputs(NamedTuple):
    """What the network computes. The logits are the sum of the drivers,
    each branch's term in DRIVERS order (harmony: the interval map's mean;
    key; register: per-octave energies over time; timbre; rhythm), plus
    the only bias of the heads, emotion_temporal's."""
    valence: torch.Tensor          # [B] in [-1, 1]: 2 * sigmoid(logit) - 1
    arousal: torch.Tensor          # [B]
    explanation: torch.Tensor      # [B, 2, 12, T/4]: the harmony map, intervals at best root + key
    drivers: torch.Tensor          # [B, 2, 5]: (valence, arousal) x branch, logit terms
    logits: torch.Tensor           # [B, 2]: drivers.sum(-1) + bias
    quadrant_logits: torch.Tensor  # [B, 4], for training
    embedding: torch.Tensor        # [B, 216]: every branch pooled, what the heads read (training: distillation)


TIMBRE_CHANNELS = 64           # the timbre branch's channels at width 1


class HarmonicCNN(nn.Module):
    def __init__(self, width: float = 1.0, harmonic_channels: int = 24, interval_channels: int = 48,
                 temporal_channels: int = 48, key_channels: int = 32, timbre_channels: int = TIMBRE_CHANNELS,
                 rhythm_channels: int = 24, dropout: float = 0.3) -> None:
        """`width` scales every branch after the harmonic filters, which
        run at full frequency resolution and cost the most to widen."""
        super().__init__()
        c = harmonic_channels
        interval_channels, temporal_channels, key_channels, timbre_channels, rhythm_channels = (
            round(width * n) for n in (interval_channels, temporal_channels, key_channels, timbre_channels,
                                       rhythm_channels))
        # Non-contiguous harmonic filters: harmonics are the input channels,
        # so each filter weighs a pitch's partials (and a third of a
        # semitone around each) at once; stride folds bins into semitones.
        self.harmonic = conv_block(nn.Conv2d(len(HARMONICS), c, (BINS_PER_SEMITONE, 1), (BINS_PER_SEMITONE, 1)), c)
        # Intervals: a kernel spanning all 12 pitch classes, applied
        # circularly, sees every interval above each root.
        self.interval = nn.Sequential(
            conv_block(nn.Conv2d(c, interval_channels, (12, 1)), interval_channels),
            conv_block(nn.Conv2d(interval_channels, interval_channels, (1, 5), padding=(0, 2)),
                       interval_channels))
        # Key: interval templates over the whole window's pitch-class profile.
        self.key = conv_block(nn.Conv2d(c, key_channels, (12, 1)), key_channels)
        # Register, density and articulation: per-octave energies over time.
        self.temporal = nn.Sequential(
            conv_block(nn.Conv1d(c * N_OCTAVES, temporal_channels, 5, padding=2), temporal_channels,
                       nn.BatchNorm1d),
            nn.MaxPool1d(2),
            conv_block(nn.Conv1d(temporal_channels, temporal_channels, 5, padding=4, dilation=2),
                       temporal_channels, nn.BatchNorm1d))
        # Timbre, texture and dynamics: per-frame band descriptors over time.
        descriptors = 3 * (N_OCTAVES * 12 * BINS_PER_SEMITONE // BAND_BINS) + 1
        self.timbre = nn.Sequential(
            conv_block(nn.Conv1d(descriptors, timbre_channels, 5, padding=2), timbre_channels, nn.BatchNorm1d),
            nn.MaxPool1d(2),
            conv_block(nn.Conv1d(timbre_channels, timbre_channels, 5, padding=4, dilation=2),
                       timbre_channels, nn.BatchNorm1d),
            nn.MaxPool1d(2))
        # Rhythm: tempo and pulse clarity from the onset envelope's periodicity.
        self.rhythm = nn.Sequential(nn.Linear(RHYTHM_LAGS, rhythm_channels), nn.BatchNorm1d(rhythm_channels), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.emotion_interval = nn.Linear(interval_channels, 2, bias=False)
        self.emotion_key = nn.Linear(key_channels, 2, bias=False)
        self.emotion_temporal = nn.Linear(temporal_channels, 2)
        self.emotion_timbre = nn.Linear(timbre_channels, 2, bias=False)
        self.emotion_rhythm = nn.Linear(rhythm_channels, 2, bias=False)
        self.quadrant = nn.Linear(interval_channels + key_channels + temporal_channels + timbre_channels
                                  + rhythm_channels, 4)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> pitch-class map [B, C, 12, T/4], key map [B, K, 12, 1], register
        map [B, C, T/4], timbre map [B, C, T/4] and rhythm [B, C]."""
        reference = level_reference(x)
        h = self.harmonic(normalise_level(harmony_pool(x), reference[:, None]))    # [B, c, 84, T/2]
        pitch_classes, energies = octave_sums(h)
        descriptors = timbre_descriptors(normalise_level(x[:, 0], reference))
        chroma = F.max_pool2d(pitch_classes, (1, TIME_POOL // HARMONY_POOL))       # [B, c, 12, T/4]
        pitch_map = self.interval(wrap(chroma))                         # [B, C, 12, T/4]
        time_map, timbre_map = self.temporal(energies), self.timbre(descriptors)
        key_map = self.key(wrap(chroma.mean(dim=3, keepdim=True)))       # [B, K, 12, 1]
        rhythm = self.rhythm(onset_autocorrelation(onset_envelope(descriptors)))
        return pitch_map, key_map, time_map, timbre_map, rhythm

    def emotion(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each branch's logit term [B, 2] by name -> the drivers [B, 2, 5]
        (DRIVERS order), the logits (their sum and the only bias) and
        valence and arousal in [-1, 1] [B, 2]."""
        drivers = torch.stack([terms[name] for name in DRIVERS], dim=2)
        logits = drivers.sum(dim=2) + self.emotion_temporal.bias
        return drivers, logits, 2.0 * torch.sigmoid(logits) - 1.0

    def forward(self, x: torch.Tensor) -> Outputs:
        pitch_map, key_map, time_map, timbre_map, rhythm = self.features(x)
        strongest, key = at_best_root(pitch_map), at_best_root(key_map)
        pooled = torch.cat([strongest.mean(dim=(2, 3)), key.mean(dim=(2, 3)), time_map.mean(dim=2),
                            timbre_map.mean(dim=2), rhythm], dim=1)
        quadrant_logits = self.quadrant(self.dropout(pooled))
        # Each branch's term of the logits, the linear heads applied after
        # the mean pooling (which is exact: they are linear). The harmony
        # heads are applied before it, at every (pitch class, time): the
        # class activation map, whose mean is their term. Dropout is drawn
        # in the order training has always drawn it.
        register = F.linear(self.dropout(time_map).mean(dim=2), self.emotion_temporal.weight)
        timbre = F.linear(self.dropout(timbre_map).mean(dim=2), self.emotion_timbre.weight)
        interval_map = torch.einsum("oc,bckt->bokt", self.emotion_interval.weight, self.dropout(strongest))
        key_terms = torch.einsum("oc,bckt->bokt", self.emotion_key.weight, self.dropout(key))   # [B, 2, 12, 1]
        terms = {"harmony": interval_map.mean(dim=(2, 3)), "key": key_terms.mean(dim=(2, 3)), "register": register,
                 "timbre": timbre, "rhythm": F.linear(self.dropout(rhythm), self.emotion_rhythm.weight)}
        drivers, logits, emotion = self.emotion(terms)
        return Outputs(emotion[:, 0], emotion[:, 1], interval_map + key_terms, drivers, logits, quadrant_logits,
                       pooled)


def trained(weights: Path) -> HarmonicCNN:
    """The network with `weights` (a state dict), at the width they were
    trained at: the weights say it (the timbre head reads its branch's
    channels), so a fold model's weights need no report beside them."""
    state = torch.load(weights, weights_only=True, map_location="cpu")
    network = HarmonicCNN(state["emotion_timbre.weight"].shape[1] / TIMBRE_CHANNELS)
    network.load_state_dict(state)
    return network.eval()


class ExportWrapper(nn.Module):
    """The serving graph: valence, arousal, explanation and drivers
    (rt_mer.inference.base.OUTPUT_NAMES)."""

    def __init__(self, network: HarmonicCNN) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = self.network(x)
        return outputs.valence, outputs.arousal, outputs.explanation, outputs.drivers
