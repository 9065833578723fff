"""Train the shipped model on real recordings (4Q), EMOPIA piano renders and
the procedural corpus; validate it by artist; export it to ONNX.

    python tools/train.py --seed 0                  # folds, baseline, then engines/rt-mer.onnx
    python tools/train.py --seed 0 --no-cv --no-baseline    # the same weights, bit for bit, alone
    python tools/train.py --export-only             # engines/rt-mer.pt -> engines/rt-mer.onnx, no training

First, artist-grouped 5-fold cross-validation over the 4Q recordings (no
artist in two folds; every clip scored once by a model that never heard its
artist) for each of --cv-seeds, each fold model also scored on the EMOPIA
validation split, and the handcrafted-descriptor baseline on the same folds.
Each fold run's scores and held-out logits go to <out>.runs.jsonl as it
finishes: an interrupted trial keeps them, and --resume runs only the rest
(without it a run starts afresh). The report goes to <out>.json;
tools/compare.py sets a trial beside another (the shipped recipe's runs are
in engines/cross-validation.json), run by run.
Then the shipped model: the same recipe on all of it, with --seed.

Renders and features are cached under $RT_MER_CACHE (~/.cache/rt-mer).
Needs the [train] extra and Debian's fluidsynth and fluid-soundfont-gm.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import REPORTED, in_full, summarise  # noqa: E402
import corpus  # noqa: E402
import procedural  # noqa: E402
from rt_mer.audio.io import read_audio  # noqa: E402
from rt_mer.dsp import frontend  # noqa: E402
from rt_mer.engines.base import DRIVERS, INPUT_NAME, OUTPUT_NAMES  # noqa: E402
from rt_mer.model.network import DYNAMIC_RANGE_DB, ExportWrapper, HarmonicCNN, Outputs, trained  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VALENCE_POSITIVE = {1: 1.0, 2: 0.0, 3: 0.0, 4: 1.0}
AROUSAL_POSITIVE = {1: 1.0, 2: 1.0, 3: 0.0, 4: 0.0}
LABEL_SMOOTHING = 0.1
VALIDATION_HOP_FRAMES = int(frontend.FRAMES_PER_SECOND)


@dataclass(frozen=True)
class Recipe:
    """What a training run does; the cross-validation and the shipped model
    share one. A new field goes into compare.AS_BEFORE too, at the value that
    trains as before it existed: --resume reads runs written without it that way."""
    steps: int = 19200
    batch: int = 24                # split by the shares, each rounded: 13 + 7 + 4 = 24 windows
    recordings: float = 0.55       # share of each batch from the 4Q recordings
    procedural: float = 0.15       # ... from the procedural corpus; EMOPIA has the rest
    procedural_weight: float = 0.5
    distill: float = 1.0           # weight of the teacher's loss (0: none); needs bash tools/teacher.sh first
    teacher_output: str = "penultimate"     # which of the teacher's outputs the network learns to predict
    mixup: float = 0.4             # windows mixed with another of their corpus, share ~ Beta(mixup, mixup) (0: none)
    mixup_recordings: bool = False  # the recordings too (no: two records at once are no record; two piano passages are piano)
    dynamics: float = 0.0          # weight of the soft-vs-hard term (SoftTwins; 0: none)
    width: float = 1.5             # channels of the branches after the harmonic filters, x this (HarmonicCNN)
    moods: float = 0.0             # weight of the recordings' mood-tag loss (MoodTags; 0: none)
    masking: float = 0.0           # share of windows with a band and a stretch of time dropped (augment)
    answers: float = 0.5           # weight of the teacher's answer per window (TeacherAnswers; 0: none)
    answers_through: str = "all"   # the drivers the answers train, comma-separated (all: every branch and the bias)
    answers_until: float = 0.75    # share of the steps the answers train; the rest learn from the labels alone
    running_level: bool = False    # each frame against the loudest bin of the 4 s up to it, not the window's
    causal: bool = False           # with running_level: time convs over the frames before the window, unpadded


# ---------------------------------------------------------------- data

def features(path: Path) -> np.ndarray:
    """The serving front-end's log spectrogram of a file, cached as float16."""
    version = f"{frontend.N_FFT}-{frontend.FRAME_HOP}-{frontend.N_BINS}-{frontend.FLOOR_DB:g}"
    return corpus.cached_array("features", version, path,
                               lambda audio_path: frontend.spectrogram(read_audio(audio_path)).astype(np.float16))


class Clip:
    """One training clip: its spectrogram, soft targets P(positive), and
    the teacher's outputs per 3 s patch where tools/teacher.py made them."""

    def __init__(self, path: Path, valence: float, arousal: float, quadrant: int | None, artist: str = "",
                 moods: tuple[str, ...] = ()) -> None:
        self.path, self.spec = path, features(path)
        self.valence, self.arousal, self.quadrant, self.artist, self.moods = valence, arousal, quadrant, artist, moods
        cached = corpus.CACHE / "teacher" / corpus.TEACHER_VERSION / f"{corpus.cache_key(path)}.npz"
        self.teacher = {}
        if cached.exists():
            with np.load(cached) as outputs:
                self.teacher = dict(outputs)


def labelled_clip(path: Path, quadrant: int, artist: str = "", moods: tuple[str, ...] = ()) -> Clip:
    return Clip(path, VALENCE_POSITIVE[quadrant], AROUSAL_POSITIVE[quadrant], quadrant - 1, artist, moods)


def emopia_clips(split: str, limit: int | None) -> list[Clip]:
    return [labelled_clip(path, q) for path, q in corpus.emopia_split(split, limit)]


def soft_twin_clips(limit: int | None) -> list[Clip]:
    """EMOPIA's train split played softly, in emopia_clips("train") order;
    unlabelled: only compared with the passages as played (SoftTwins)."""
    return [Clip(path, 0.5, 0.5, None) for path in corpus.emopia_soft_twins("train", limit)]


def recording_clips(limit: int | None) -> list[Clip]:
    return [labelled_clip(path, q, artist, moods) for path, q, artist, moods in corpus.fourq_clips()[:limit]]


def procedural_clips(count: int) -> list[Clip]:
    rows = procedural.make_corpus(corpus.CACHE / "procedural", count=count) if count else []
    return [Clip(path, (v + 1) / 2, (a + 1) / 2, None) for path, v, a in rows]


def artist_folds(clips: list[Clip], folds: int = corpus.FOLDS) -> list[np.ndarray]:
    """Held-out clip indices per fold: no artist in two folds, quadrants
    balanced across folds."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    quadrants = [clip.quadrant for clip in clips]
    return [test for _, test in splitter.split(np.zeros(len(clips)), quadrants, [c.artist for c in clips])]


def crop(spec: np.ndarray, rng: np.random.Generator, history: int = 0) -> tuple[np.ndarray, int]:
    """A random window of the clip with `history` frames before it, and the
    frame it starts at."""
    frames = frontend.WINDOW_FRAMES
    if spec.shape[1] < frames:
        return with_history(spec, 0, history + frames - spec.shape[1]), 0
    start = int(rng.integers(0, spec.shape[1] - frames + 1))
    return with_history(spec, start, history), start


def with_history(spec: np.ndarray, start: int, history: int) -> np.ndarray:
    """The window at `start` and the `history` frames before it, silence
    before the clip's start (as a stream begins)."""
    before = max(history - start, 0)
    window = spec[:, start - history + before:start + frontend.WINDOW_FRAMES]
    if not before:
        return window
    return np.concatenate([np.full((spec.shape[0], before), frontend.FLOOR_DB, spec.dtype), window], axis=1)


def teacher_target(clip: Clip, output: str, start: int) -> np.ndarray | None:
    """The teacher's `output` for a window starting at frame `start`."""
    return window_mean(clip.teacher[output].astype(np.float32), start) if output in clip.teacher else None


def window_mean(patches: np.ndarray, start: int) -> np.ndarray:
    """The mean of per-patch rows over the teacher's patches centred in the
    window starting at frame `start` (else the nearest one)."""
    centres = (np.arange(len(patches)) + 0.5) * corpus.TEACHER_PATCH_SECONDS * frontend.FRAMES_PER_SECOND - start
    inside = (centres >= 0) & (centres < frontend.WINDOW_FRAMES)
    if not inside.any():
        distance = np.abs(centres - frontend.WINDOW_FRAMES / 2)
        inside = distance == distance.min()
    return patches[inside].mean(axis=0)


# ----------------------------------------------------------- augmentation

def augment(spec: torch.Tensor, generator: torch.Generator, masking: float = 0.0) -> torch.Tensor:
    """Changes that should not change perceived emotion, applied to a batch
    of log spectrograms [B, bins, frames] in dB: what microphones, speakers,
    rooms and codecs do to a recording (gain, EQ tilt and colouring, band
    limits, reverberation, noise) and transposition by up to two semitones
    (time shifts come from random crops); then, in a `masking` share of the
    windows, a band and a stretch of time dropped."""
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

    def mask(spec: torch.Tensor) -> torch.Tensor:
        """SpecAugment (Park et al. 2019): up to 8 semitones and up to 0.5 s
        silenced, so that no single cue (a voice's band, one drum hit)
        carries a decision alone."""
        bins, frames = torch.arange(spec.shape[1])[None, :, None], torch.arange(spec.shape[2])[None, None, :]
        band, span = uniform(spec, 0, 8 * frontend.BINS_PER_SEMITONE), uniform(spec, 0, frontend.FRAMES_PER_SECOND / 2)
        low, start = uniform(spec, 0, 1) * (spec.shape[1] - band), uniform(spec, 0, 1) * (spec.shape[2] - span)
        dropped = ((bins >= low) & (bins < low + band)) | ((frames >= start) & (frames < start + span))
        return spec.masked_fill(dropped, frontend.FLOOR_DB)

    spec = sometimes(0.5, add_noise, sometimes(0.3, reverberate, sometimes(0.3, band_limit, colour(spec))))
    spec = transpose(spec, torch.randint(-6, 7, (len(spec),), generator=generator).tolist())
    return sometimes(masking, mask, spec) if masking else spec    # 0 draws nothing: older recipes train as before


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


def power_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(10 ** (a / 10) + 10 ** (b / 10))


def transpose(spec: torch.Tensor, shifts: list[int]) -> torch.Tensor:
    bins = spec.shape[1]
    shifted = torch.full_like(spec, frontend.FLOOR_DB)
    for i, shift in enumerate(shifts):
        src = spec[i, max(0, -shift):bins - max(0, shift)]
        shifted[i, max(0, shift):max(0, shift) + src.shape[0]] = src
    return shifted


def stack(spec: torch.Tensor) -> torch.Tensor:
    """Torch twin of frontend.harmonic_stack: harmonic k of bin p is bin
    p + offset_k, the floor above the top bin."""
    floor = torch.full_like(spec, frontend.FLOOR_DB)
    padded = torch.cat([spec, floor], dim=1)
    return torch.stack([padded[:, offset:offset + spec.shape[1]] for offset in frontend.harmonic_offsets()], dim=1)


# ------------------------------------------------------------ training

def loss_on(network: HarmonicCNN, clips: list[Clip], rng: np.random.Generator,
            generator: torch.Generator, recipe: Recipe, groups: list[tuple[int, float]],
            student: Student | None = None, twins: SoftTwins | None = None,
            moods: MoodTags | None = None, answers: TeacherAnswers | None = None) -> torch.Tensor:
    """The training loss on a batch of `clips`: `groups` of consecutive
    clips from one corpus each, with its mixup alpha (mixup stays within one),
    and with `twins` pairs of passages played and played softly after them."""
    windows, starts = zip(*(crop(clip.spec, rng, network.history) for clip in clips))
    specs = torch.from_numpy(np.stack(windows).astype(np.float32))
    mixing = mixing_matrix(groups, rng) if any(alpha for _, alpha in groups) else None
    if mixing is not None:
        specs = mix_windows(specs, mixing)
    specs = augment(specs, generator, recipe.masking)
    if twins is not None:
        specs = torch.cat([specs, twins.windows(rng, generator, network.history)])
    outputs = network(stack(specs))
    loss = 0.0
    if twins is not None:
        loss = recipe.dynamics * twins.loss(outputs.logits[len(clips):, 1])
        outputs = Outputs(*(output[:len(clips)] for output in outputs))
    loss = loss + emotion_loss(outputs, clips, recipe.procedural_weight, mixing)
    if student is not None:
        loss = loss + recipe.distill * student.loss(outputs.embedding, clips, starts, mixing)
    if moods is not None:
        loss = loss + recipe.moods * moods.loss(outputs.embedding, clips, mixing)
    if answers is not None:
        loss = loss + recipe.answers * answers.loss(through(outputs, recipe.answers_through), clips, starts, mixing)
    return loss


def through(outputs: Outputs, drivers: str) -> torch.Tensor:
    """The logits, with the gradient reaching only the named drivers' terms
    (DRIVERS; "all": the whole network). The value is the logits either way
    (to rounding)."""
    if drivers == "all":
        return outputs.logits
    named = [DRIVERS.index(name) for name in drivers.split(",")]
    terms = outputs.drivers[..., named].sum(dim=-1)
    return outputs.logits.detach() + terms - terms.detach()


class SoftTwins:
    """The soft-vs-hard term, training only. Level normalisation hides the
    fader, so how hard notes are struck can only be heard in the timbre
    (a piano's darker, softer attack), and the labels rarely isolate it:
    each step takes PAIRS EMOPIA passages and their soft twins (the same
    notes at a share of their velocity, corpus.softened), cropped at the
    same place and given the same augmentation, and asks the network to
    hear the passage as played as the more aroused of the two (a logistic
    ranking loss on the arousal logits: Gabrielsson & Lindstrom's dynamics
    cue, as a pair, so no absolute arousal is taught)."""

    PAIRS = 4

    def __init__(self, played: list[Clip], soft: list[Clip]) -> None:
        lengths = [min(a.spec.shape[1], b.spec.shape[1]) for a, b in zip(played, soft, strict=True)]
        self.pairs = [(a.spec[:, :n], b.spec[:, :n]) for a, b, n in zip(played, soft, lengths)
                      if n >= frontend.WINDOW_FRAMES]

    def windows(self, rng: np.random.Generator, generator: torch.Generator, history: int = 0) -> torch.Tensor:
        """[2 * PAIRS, bins, frames]: the passages as played, then the same
        windows played softly."""
        played, soft = [], []
        for i in rng.choice(len(self.pairs), self.PAIRS):
            a, b = self.pairs[i]
            window, start = crop(a, rng, history)
            played.append(window)
            soft.append(with_history(b, start, history))
        state = generator.get_state()
        played = augment(torch.from_numpy(np.stack(played).astype(np.float32)), generator)
        generator.set_state(state)              # the same room, microphone and transposition for both
        return torch.cat([played, augment(torch.from_numpy(np.stack(soft).astype(np.float32)), generator)])

    @staticmethod
    def loss(arousal_logits: torch.Tensor) -> torch.Tensor:
        played, soft = arousal_logits.chunk(2)
        return F.softplus(soft - played).mean()


class Student:
    """Distillation, training only: a linear head from the network's
    embedding to the teacher's output (each unit z-scored over the training
    clips), learnt by mean squared error, so the branches learn what a
    tagger trained on a million songs hears."""

    def __init__(self, clips: list[Clip], output: str, width: int) -> None:
        rows = np.concatenate([clip.teacher[output].astype(np.float32) for clip in clips if output in clip.teacher])
        self.output, self.mean, self.std = output, rows.mean(axis=0), rows.std(axis=0) + 1e-3
        self.head = torch.nn.Linear(width, rows.shape[1])

    def loss(self, embedding: torch.Tensor, clips: list[Clip], starts: tuple[int, ...],
             mixing: np.ndarray | None = None) -> torch.Tensor:
        targets = mixed([teacher_target(clip, self.output, start) for clip, start in zip(clips, starts)], mixing)
        return head_loss(F.mse_loss, self.head, embedding,
                         [None if target is None else (target - self.mean) / self.std for target in targets])


class MoodTags:
    """The mood-tag term, training only: a linear head from the network's
    embedding to the AllMusic mood tags of the recordings (the tags their
    quadrant was derived from), learnt by binary cross-entropy, so the
    branches learn the finer moods inside a quadrant: Sad, Gloomy and Bleak
    against Calm/Peaceful and Soothing, where most of the network's errors
    are (sad music heard as calm)."""

    MIN_CLIPS = 15      # tags on fewer of the training recordings are left out

    def __init__(self, recordings: list[Clip], width: int) -> None:
        counts = Counter(tag for clip in recordings for tag in clip.moods)
        self.tags = sorted(tag for tag, count in counts.items() if count >= self.MIN_CLIPS)
        self.head = torch.nn.Linear(width, len(self.tags))

    def loss(self, embedding: torch.Tensor, clips: list[Clip], mixing: np.ndarray | None = None) -> torch.Tensor:
        targets = [np.isin(self.tags, clip.moods).astype(np.float32) if clip.moods else None for clip in clips]
        return head_loss(F.binary_cross_entropy_with_logits, self.head, embedding, mixed(targets, mixing))


class TeacherAnswers:
    """Logit distillation, training only: the teacher's own answer for each
    window of a recording. The baseline's linear probe on the teacher (a
    logistic regression on its penultimate layer, the mean over a clip:
    0.735 on unheard artists, valence 0.81) is fitted per dimension on the
    training recordings, out of fold by artist, so no clip's answer comes
    from a fit that saw its label. Applied to the patches of a window it says
    how positive and how aroused that stretch sounds to a tagger trained on a
    million songs (which bars of a sad record sound sad, where the label
    holds for the whole clip), and the network learns that by binary
    cross-entropy. Recordings only: on EMOPIA the probe's valence is near
    chance (0.63 a window)."""

    FOLDS = 4

    def __init__(self, recordings: list[Clip]) -> None:
        patches = [clip.teacher["penultimate"].astype(np.float32) for clip in recordings]
        x = np.stack([rows.mean(axis=0) for rows in patches])
        y = np.array([[clip.valence, clip.arousal] for clip in recordings]) > 0.5
        self.logits: dict[Path, np.ndarray] = {}      # per clip: [patches, (valence, arousal)] logits
        for fitted, answered in GroupKFold(self.FOLDS).split(x, groups=[clip.artist for clip in recordings]):
            probes = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.1))
                      .fit(x[fitted], y[fitted, dimension]) for dimension in range(2)]
            for i in answered:
                self.logits[recordings[i].path] = np.stack([probe.decision_function(patches[i]) for probe in probes], 1)

    def loss(self, logits: torch.Tensor, clips: list[Clip], starts: tuple[int, ...],
             mixing: np.ndarray | None = None) -> torch.Tensor:
        """The probe is affine, so a window's answer is the mean of its
        patches' logits."""
        answers = [1 / (1 + np.exp(-window_mean(self.logits[clip.path], start))) if clip.path in self.logits
                   else None for clip, start in zip(clips, starts)]
        return head_loss(F.binary_cross_entropy_with_logits, torch.nn.Identity(), logits, mixed(answers, mixing))


def head_loss(loss, head: torch.nn.Module, embedding: torch.Tensor, targets: list) -> torch.Tensor:
    """`loss` of a training-only `head` on the windows that have targets."""
    given = [i for i, target in enumerate(targets) if target is not None]
    if not given:
        return embedding.sum() * 0.0
    return loss(head(embedding[given]), torch.from_numpy(np.stack([targets[i] for i in given]).astype(np.float32)))


def emotion_loss(outputs, clips: list[Clip], procedural_weight: float,
                 mixing: np.ndarray | None = None) -> torch.Tensor:
    """Each window's targets, or with `mixing` (labelled windows mixed only
    with labelled ones) the mix of its windows' targets."""
    logits, quadrant_logits = outputs.logits, outputs.quadrant_logits
    targets = torch.tensor([[c.valence, c.arousal] for c in clips])
    labelled = torch.tensor([c.quadrant is not None for c in clips])
    targets = torch.where(labelled[:, None], targets * (1 - 2 * LABEL_SMOOTHING) + LABEL_SMOOTHING, targets)
    if mixing is not None:
        targets = torch.from_numpy(mixing) @ targets
    weights = torch.where(labelled, 1.0, procedural_weight)[:, None]
    loss = (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights).mean()
    if labelled.any():
        quadrants = torch.tensor([c.quadrant if c.quadrant is not None else 0 for c in clips])
        if mixing is not None:
            quadrants = torch.from_numpy(mixing) @ F.one_hot(quadrants, 4).float()   # shares of each quadrant
        loss = loss + 0.5 * F.cross_entropy(quadrant_logits[labelled], quadrants[labelled])
    return loss


def quadrant_balance(clips: list[Clip]) -> np.ndarray:
    """Sampling probabilities that make each quadrant equally likely: the
    model should not learn a corpus's prior (EMOPIA's train split is 31 %
    Q4), since the music it will hear has its own."""
    quadrants = np.array([clip.quadrant for clip in clips])
    weights = 1.0 / np.bincount(quadrants, minlength=4)[quadrants]
    return weights / weights.sum()


class Sampler:
    """Draws each batch from the corpora (clips, share, mixup alpha) in
    fixed shares, each labelled corpus quadrant-balanced."""

    def __init__(self, corpora: list[tuple[list[Clip], float, float]], batch: int, rng: np.random.Generator) -> None:
        corpora = [(clips, share, mixup) for clips, share, mixup in corpora if clips and share > 0]
        total = sum(share for _, share, _ in corpora)
        self.parts, self.groups = [], []       # groups: a batch's clips per corpus, in order, and its mixup alpha
        for clips, share, mixup in corpora:
            count = round(batch * share / total)
            self.parts.append((clips, count, quadrant_balance(clips) if clips[0].quadrant is not None else None))
            self.groups.append((count, mixup))
        self.rng = rng

    def __call__(self) -> list[Clip]:
        return [clips[i] for clips, count, p in self.parts for i in self.rng.choice(len(clips), count, p=p)]


def train(recordings: list[Clip], emopia: list[Clip], extra: list[Clip], recipe: Recipe, seed: int,
          log=print, soft_twins: list[Clip] = ()) -> torch.nn.Module:
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = HarmonicCNN(recipe.width, running_level=recipe.running_level, causal=recipe.causal)
    average = torch.optim.swa_utils.AveragedModel(
        network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.995), use_buffers=True)
    student = (Student(recordings + emopia + extra, recipe.teacher_output, network.quadrant.in_features)
               if recipe.distill else None)
    twins = SoftTwins(emopia, soft_twins) if recipe.dynamics else None
    moods = MoodTags(recordings, network.quadrant.in_features) if recipe.moods else None
    answers = TeacherAnswers(recordings) if recipe.answers else None
    parameters = list(network.parameters()) + [parameter for term in (student, moods) if term
                                               for parameter in term.head.parameters()]
    optimiser = torch.optim.AdamW(parameters, lr=3e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=recipe.steps, pct_start=0.1)
    emopia_share = 1.0 - recipe.recordings - recipe.procedural
    recordings_mixup = recipe.mixup if recipe.mixup_recordings else 0.0
    sample = Sampler([(recordings, recipe.recordings, recordings_mixup), (emopia, emopia_share, recipe.mixup),
                      (extra, recipe.procedural, recipe.mixup)],
                     recipe.batch, rng)
    started = time.time()
    for step in range(1, recipe.steps + 1):
        network.train()
        loss = loss_on(network, sample(), rng, generator, recipe, sample.groups, student, twins, moods,
                       answers if step <= recipe.answers_until * recipe.steps else None)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        average.update_parameters(network)
        if step % 100 == 0 or step == recipe.steps:
            log(f"step {step}/{recipe.steps}  loss {loss.item():.3f}  {time.time() - started:.0f} s")
    return average.module.eval()


# ------------------------------------------------------------ scoring

@torch.no_grad()
def clip_logits(network: HarmonicCNN, clip: Clip) -> np.ndarray:
    """Mean (valence, arousal) logits over a clip's windows, one a second."""
    spec = clip.spec.astype(np.float32)
    if spec.shape[1] < frontend.WINDOW_FRAMES:
        spec, _ = crop(spec, np.random.default_rng(0))
    starts = range(0, spec.shape[1] - frontend.WINDOW_FRAMES + 1, VALIDATION_HOP_FRAMES)
    windows = torch.from_numpy(np.stack([with_history(spec, s, network.history) for s in starts]))
    return network(stack(windows)).logits.mean(dim=0).numpy()


def predicted_quadrants(logits: np.ndarray) -> np.ndarray:
    """[clips, 2] (valence, arousal) logits -> quadrants 0..3."""
    valence, arousal = logits[:, 0] > 0, logits[:, 1] > 0
    return np.select([valence & arousal, ~valence & arousal, ~valence & ~arousal], [0, 1, 2], 3)


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Quadrants 0..3, predicted and true -> four-quadrant, valence and
    arousal accuracy."""
    positive_valence, high_arousal = np.array([True, False, False, True]), np.array([True, True, False, False])
    return {"quadrant": round(float((predicted == truth).mean()), 4),
            "valence": round(float((positive_valence[predicted] == positive_valence[truth]).mean()), 4),
            "arousal": round(float((high_arousal[predicted] == high_arousal[truth]).mean()), 4)}


def labelled_quadrants(clips: list[Clip]) -> np.ndarray:
    return np.array([clip.quadrant for clip in clips])


# ----------------------------------------------------- cross-validation

CORPORA: dict[str, list[Clip]] = {}       # loaded once; forked workers share them


def fold_run(task: tuple[int, int, Recipe]) -> dict:
    """Train on every fold but one and score the held-out fold and EMOPIA's
    validation split: the logits of both."""
    fold, seed, recipe = task
    torch.set_num_threads(1)
    recordings, held_out = CORPORA["recordings"], CORPORA["folds"][fold]
    training = [recordings[i] for i in np.setdiff1d(np.arange(len(recordings)), held_out)]
    network = train(training, CORPORA["emopia"], CORPORA["procedural"], recipe, seed, log=lambda line: None,
                    soft_twins=CORPORA["soft_twins"])
    return {"fold": fold, "seed": seed,
            "recordings": np.stack([clip_logits(network, recordings[i]) for i in held_out]),
            "emopia": np.stack([clip_logits(network, clip) for clip in CORPORA["emopia_val"]])}


def cross_validate(recipe: Recipe, seeds: list[int], jobs: int, progress: Path, resume: bool = False) -> dict:
    """Every fold run of every seed; each run's scores and held-out logits
    are appended to `progress` (JSON lines) as it finishes, so an
    interrupted trial keeps the runs it completed, and with `resume` the
    runs of the same recipe found there are not run again."""
    recordings, folds = CORPORA["recordings"], CORPORA["folds"]
    kept = kept_runs(progress) if resume and progress.exists() else []
    done = {(run["seed"], run["fold"]): run for run in kept if same_recipe(run.get("recipe"), recipe)}
    tasks = [(fold, seed, recipe) for seed in seeds for fold in range(len(folds)) if (seed, fold) not in done]
    print(f"{len(tasks)} fold runs to go" + (f", {len(done)} kept from {progress}" if done else ""), flush=True)
    # Appending (not rewriting) the kept runs: a trial cut short at any moment loses none.
    with ProcessPoolExecutor(jobs) as pool, progress.open("a" if resume else "w") as log:
        for finished in as_completed([pool.submit(fold_run, task) for task in tasks]):
            run = finished.result()
            held_out = folds[run["fold"]]
            entry = {"recipe": recipe.__dict__, "seed": run["seed"], "fold": run["fold"],
                     "recordings": scores(predicted_quadrants(run["recordings"]),
                                          labelled_quadrants(recordings)[held_out]),
                     "emopia_val": scores(predicted_quadrants(run["emopia"]),
                                          labelled_quadrants(CORPORA["emopia_val"])),
                     "recordings_logits": run["recordings"].tolist(), "emopia_logits": run["emopia"].tolist()}
            done[run["seed"], run["fold"]] = entry
            log.write(json.dumps(entry) + "\n")
            log.flush()
            print(f"seed {run['seed']} fold {run['fold']}: 4Q {entry['recordings']}  EMOPIA val {entry['emopia_val']}",
                  flush=True)
    report: dict = {"runs": [{key: done[seed, fold][key] for key in REPORTED}
                             for seed in seeds for fold in range(len(folds))], "total": {}}
    for seed in seeds:
        logits = np.zeros((len(recordings), 2), np.float32)
        for fold, held_out in enumerate(folds):
            logits[held_out] = done[seed, fold]["recordings_logits"]
        report["total"][seed] = scores(predicted_quadrants(logits), labelled_quadrants(recordings))
        print(f"seed {seed} all {len(recordings)} clips: {report['total'][seed]}", flush=True)
    report["summary"] = summarise(report["runs"])
    print("summary", json.dumps(report["summary"]), flush=True)
    return report


def kept_runs(progress: Path) -> list[dict]:
    """The runs a trial wrote. A last line cut off mid-write (the trial
    killed while writing, a full disk) is cut from the file, so that the
    runs appended next start on a line of their own; that run runs again."""
    text = progress.read_text()
    whole = text[:text.rfind("\n") + 1]
    if whole != text:
        print(f"{progress}: the last line was cut off mid-write; dropped (that run runs again)", flush=True)
        with progress.open("r+") as file:
            file.truncate(len(whole.encode()))
    return [json.loads(line) for line in whole.splitlines()]


def same_recipe(written: dict | None, recipe: Recipe) -> bool:
    """Whether a run was made with `recipe`; a field added to Recipe since
    it was written counts at its compare.AS_BEFORE value, which trained as it did."""
    return written is not None and {**asdict(Recipe()), **in_full(written)} == asdict(recipe)


def baseline_on_folds() -> dict:
    """The handcrafted-descriptor baseline on the same artist folds, and, where
    tools/teacher.py has run, the same classifiers on the pretrained tagger's
    embedding (musicnn's penultimate layer, mean over the clip): the linear
    probe the network should beat."""
    from baseline import baseline_predictions, descriptor_matrix
    recordings, folds = CORPORA["recordings"], CORPORA["folds"]
    y = labelled_quadrants(recordings)
    inputs = {"": descriptor_matrix([clip.path for clip in recordings])}
    if all("penultimate" in clip.teacher for clip in recordings):
        inputs["musicnn_"] = np.stack([clip.teacher["penultimate"].astype(np.float32).mean(axis=0)
                                       for clip in recordings])
    predicted: dict[str, np.ndarray] = {}
    report: dict = {"folds": []}
    for prefix, x in inputs.items():
        for fold, held_out in enumerate(folds):
            training = np.setdiff1d(np.arange(len(recordings)), held_out)
            for name, guess in baseline_predictions(x[training], y[training], x[held_out]).items():
                predicted.setdefault(prefix + name, np.zeros(len(recordings), int))[held_out] = guess
                report["folds"].append({"fold": fold, "classifier": prefix + name, **scores(guess, y[held_out])})
    report["total"] = {name: scores(guess, y) for name, guess in predicted.items()}
    print("baseline", json.dumps(report["total"]), flush=True)
    return report


# --------------------------------------------------------------- export

def export(network: torch.nn.Module, path: Path) -> None:
    example = torch.zeros(1, len(frontend.HARMONICS), frontend.N_BINS, frontend.WINDOW_FRAMES)
    batch = {0: "batch"}
    torch.onnx.export(ExportWrapper(copy.deepcopy(network).eval()), example, path, opset_version=17, dynamo=False,
                      input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                      dynamic_axes={name: batch for name in (INPUT_NAME, *OUTPUT_NAMES)})


def export_saved(out: Path) -> None:
    """Export the weights saved beside `out` (its .pt) again, with this
    version's serving graph: a new output needs no retraining."""
    export(trained(out.with_suffix(".pt")), out)


def seed_list(text: str) -> list[int]:
    return [int(seed) for seed in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed of the shipped model")
    parser.add_argument("--cv-seeds", type=seed_list, default=[0, 1, 2], help="seeds of the cross-validation")
    parser.add_argument("--no-cv", action="store_true", help="train the shipped model only")
    parser.add_argument("--cv-only", action="store_true", help="cross-validate, then stop (recipe trials)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the fold runs of this recipe already in <out>.runs.jsonl (a trial cut short)")
    parser.add_argument("--jobs", type=int, default=2, help="cross-validation runs at once, one thread each")
    parser.add_argument("--steps", type=int, default=Recipe.steps)
    parser.add_argument("--batch", type=int, default=Recipe.batch)
    parser.add_argument("--distill", type=float, default=Recipe.distill,
                        help="weight of the teacher's loss (needs bash tools/teacher.sh first; 0: none)")
    parser.add_argument("--mixup", type=float, default=Recipe.mixup,
                        help="mix each window with another of its corpus, share ~ Beta(MIXUP, MIXUP) (0: none)")
    parser.add_argument("--mixup-recordings", action=argparse.BooleanOptionalAction, default=Recipe.mixup_recordings,
                        help="with --mixup, mix the recordings too (default: the renders only)")
    parser.add_argument("--teacher-output", choices=["penultimate", "tags"], default=Recipe.teacher_output)
    parser.add_argument("--procedural", type=int, default=procedural.CLIPS, help="procedural clips (0: none)")
    parser.add_argument("--recordings-share", type=float, default=Recipe.recordings,
                        help="share of each batch from the 4Q recordings")
    parser.add_argument("--procedural-share", type=float, default=Recipe.procedural,
                        help="share of each batch from the procedural corpus (EMOPIA has the rest)")
    parser.add_argument("--dynamics", type=float, default=Recipe.dynamics,
                        help="weight of the soft-vs-hard term: EMOPIA passages against the same played softly (0: none)")
    parser.add_argument("--width", type=float, default=Recipe.width,
                        help="channels of the branches after the harmonic filters, times this")
    parser.add_argument("--moods", type=float, default=Recipe.moods,
                        help="weight of the recordings' mood-tag loss (their AllMusic tags; 0: none)")
    parser.add_argument("--masking", type=float, default=Recipe.masking,
                        help="share of training windows with a band and a stretch of time dropped (SpecAugment; 0: none)")
    parser.add_argument("--answers", type=float, default=Recipe.answers,
                        help="weight of the teacher's answer per window (its linear probe's valence and arousal, "
                             "fitted out of fold; needs bash tools/teacher.sh first; 0: none)")
    parser.add_argument("--answers-through", default=Recipe.answers_through,
                        help="the branches the answers train, comma-separated from "
                             f"{','.join(DRIVERS)} (all: every branch and the bias)")
    parser.add_argument("--answers-until", type=float, default=Recipe.answers_until,
                        help="share of the steps the answers train (then the labels alone fine-tune; 1: all)")
    parser.add_argument("--running-level", action="store_true",
                        help="normalise each frame to the loudest bin of the 4 s up to it (per-frame network)")
    parser.add_argument("--causal", action="store_true",
                        help="with --running-level: time convs over the frames before the window, unpadded")
    parser.add_argument("--limit", type=int, default=None, help="clips per corpus (smoke tests)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "engines" / "rt-mer.onnx")
    parser.add_argument("--export-only", action="store_true",
                        help="export the weights saved beside --out (its .pt) to --out, no training")
    args = parser.parse_args()
    if min(args.recordings_share, args.procedural_share) < 0 or args.recordings_share + args.procedural_share > 1:
        parser.error("--recordings-share and --procedural-share are shares of a batch: each from 0, together at most 1")
    if args.answers_through != "all" and not set(args.answers_through.split(",")) <= set(DRIVERS):
        parser.error(f"--answers-through names branches from {','.join(DRIVERS)}, or is all")
    if not 0 < args.answers_until <= 1:
        parser.error("--answers-until is a share of the steps: above 0, at most 1")
    if args.causal and not args.running_level:
        parser.error("--causal needs --running-level")
    if args.running_level and not args.cv_only:
        parser.error("--running-level is a probe: the serving graph does not take it yet; use it with --cv-only")
    if args.export_only:
        export_saved(args.out)
        print(f"wrote {args.out}", flush=True)
        return
    recipe = Recipe(steps=args.steps, batch=args.batch, recordings=args.recordings_share,
                    procedural=args.procedural_share, distill=args.distill, teacher_output=args.teacher_output,
                    mixup=args.mixup, mixup_recordings=args.mixup_recordings, dynamics=args.dynamics,
                    width=args.width, moods=args.moods, masking=args.masking,
                    answers=args.answers, answers_through=args.answers_through, answers_until=args.answers_until,
                    running_level=args.running_level, causal=args.causal)
    random.seed(args.seed)
    # Summation order, hence the weights after thousands of steps, depends on
    # the thread count: one thread gives the same model whatever the cores.
    torch.set_num_threads(1)

    CORPORA.update(recordings=recording_clips(args.limit), emopia=emopia_clips("train", args.limit),
                   emopia_val=emopia_clips("val", args.limit), procedural=procedural_clips(args.procedural),
                   soft_twins=soft_twin_clips(args.limit) if recipe.dynamics else [])
    CORPORA["folds"] = artist_folds(CORPORA["recordings"])
    print(", ".join(f"{name} {len(clips)}" for name, clips in CORPORA.items()), "clips", flush=True)
    report: dict = {"seed": args.seed, "recipe": recipe.__dict__, "procedural_clips": len(CORPORA["procedural"])}
    if recipe.distill or recipe.answers:
        training = CORPORA["recordings"] + CORPORA["emopia"] + CORPORA["procedural"]
        report["taught_clips"] = sum(recipe.teacher_output in clip.teacher for clip in training)
        if report["taught_clips"] < len(training):      # a partial teacher is another recipe
            sys.exit(f"the recipe distils a teacher whose outputs are in {corpus.CACHE / 'teacher'} for only "
                     f"{report['taught_clips']} of {len(training)} training clips: "
                     f"run bash tools/teacher.sh --procedural {args.procedural} "
                     "(or train without it: --distill 0 --answers 0)")
        print(f"distilling the teacher's {recipe.teacher_output} on {report['taught_clips']} of {len(training)} "
              "training clips", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_baseline:
        report["baseline"] = baseline_on_folds()
    if not args.no_cv:
        report["cross_validation"] = cross_validate(recipe, args.cv_seeds, args.jobs,
                                                    args.out.with_suffix(".runs.jsonl"), args.resume)
    if args.cv_only:
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        return

    network = train(CORPORA["recordings"], CORPORA["emopia"], CORPORA["procedural"], recipe, args.seed,
                    log=lambda line: print(line, flush=True), soft_twins=CORPORA["soft_twins"])
    logits = np.stack([clip_logits(network, clip) for clip in CORPORA["emopia_val"]])
    report["emopia_val"] = scores(predicted_quadrants(logits), labelled_quadrants(CORPORA["emopia_val"]))
    report["parameters"] = sum(p.numel() for p in network.parameters())
    print("shipped model, EMOPIA val", json.dumps(report["emopia_val"]), flush=True)

    export(network, args.out)
    torch.save(network.state_dict(), args.out.with_suffix(".pt"))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
