"""Train the shipped model, score it and a handcrafted-descriptor baseline on
the EMOPIA validation split, and export it to ONNX.

    python tools/train.py --seed 0            # reproduces engines/rt-mer.onnx

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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402
import procedural  # noqa: E402
from rt_mer.audio.io import read_audio  # noqa: E402
from rt_mer.dsp import frontend  # noqa: E402
from rt_mer.model.network import ExportWrapper, HarmonicCNN  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VALENCE_POSITIVE = {1: 1.0, 2: 0.0, 3: 0.0, 4: 1.0}
AROUSAL_POSITIVE = {1: 1.0, 2: 1.0, 3: 0.0, 4: 0.0}
LABEL_SMOOTHING = 0.1
VALIDATION_HOP_FRAMES = int(frontend.FRAMES_PER_SECOND)


# ---------------------------------------------------------------- data

def features(path: Path) -> np.ndarray:
    """The serving front-end's log spectrogram of a file, cached as float16."""
    cached = corpus.CACHE / "features" / f"{frontend.N_FFT}-{frontend.FRAME_HOP}-{frontend.N_BINS}-{frontend.FLOOR_DB:g}" / (
        path.parent.name + "-" + path.stem + ".npy")
    if cached.exists():
        return np.load(cached)
    audio = read_audio(path)
    spec = frontend.spectrogram(audio).astype(np.float16)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached, spec)
    return spec


class Clip:
    """One training clip: its spectrogram and soft targets P(positive)."""

    def __init__(self, path: Path, valence: float, arousal: float, quadrant: int | None) -> None:
        self.path, self.spec = path, features(path)
        self.valence, self.arousal, self.quadrant = valence, arousal, quadrant


def emopia_clips(split: str, limit: int | None) -> list[Clip]:
    rows = corpus.emopia_split(split, limit)
    return [Clip(path, VALENCE_POSITIVE[q], AROUSAL_POSITIVE[q], q - 1) for path, q in rows]


def procedural_clips(count: int) -> list[Clip]:
    rows = procedural.make_corpus(corpus.CACHE / "procedural", count=count) if count else []
    return [Clip(path, (v + 1) / 2, (a + 1) / 2, None) for path, v, a in rows]


def crop(spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    frames = frontend.WINDOW_FRAMES
    if spec.shape[1] < frames:
        pad = np.full((spec.shape[0], frames - spec.shape[1]), frontend.FLOOR_DB, spec.dtype)
        return np.concatenate([pad, spec], axis=1)
    start = rng.integers(0, spec.shape[1] - frames + 1)
    return spec[:, start:start + frames]


def augment(spec: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Changes that should not change perceived emotion, applied to a batch
    of log spectrograms [B, bins, frames] in dB: gain, EQ tilt, moderate
    coloured noise and transposition by up to two semitones (time shifts come
    from random crops)."""
    batch, bins, _ = spec.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return (torch.rand(batch, 1, 1, generator=generator) * (high - low) + low)

    octaves = (torch.arange(bins) - bins / 2)[None, :, None] / (12 * frontend.BINS_PER_SEMITONE)
    spec = spec + uniform(-12, 12) + uniform(-3, 3) * octaves
    peak = spec.amax(dim=(1, 2), keepdim=True)
    noise = peak - uniform(30, 60) + uniform(-3, 0) * octaves + 3 * torch.randn(spec.shape, generator=generator)
    noisy = 10 * torch.log10(10 ** (spec / 10) + 10 ** (noise / 10))
    spec = torch.where(torch.rand(batch, 1, 1, generator=generator) < 0.5, noisy, spec)
    shifted = torch.full_like(spec, frontend.FLOOR_DB)
    for i, shift in enumerate(torch.randint(-6, 7, (batch,), generator=generator).tolist()):
        src = spec[i, max(0, -shift):bins - max(0, shift)]
        shifted[i, max(0, shift):max(0, shift) + src.shape[0]] = src
    return shifted


def stack(spec: torch.Tensor) -> torch.Tensor:
    """Torch twin of frontend.harmonic_stack, with the same gather index."""
    floor = torch.full_like(spec[:, :1], frontend.FLOOR_DB)
    return torch.cat([spec, floor], dim=1)[:, torch.from_numpy(frontend.STACK_INDEX)]


# ------------------------------------------------------------ training

def loss_on(network: HarmonicCNN, clips: list[Clip], rng: np.random.Generator,
            generator: torch.Generator, procedural_weight: float) -> torch.Tensor:
    specs = torch.from_numpy(np.stack([crop(clip.spec, rng) for clip in clips]).astype(np.float32))
    _, _, explanation, quadrant_logits = network(stack(augment(specs, generator)))
    logits = explanation.mean(dim=(2, 3))
    targets = torch.tensor([[c.valence, c.arousal] for c in clips])
    labelled = torch.tensor([c.quadrant is not None for c in clips])
    targets = torch.where(labelled[:, None], targets * (1 - 2 * LABEL_SMOOTHING) + LABEL_SMOOTHING, targets)
    weights = torch.where(labelled, 1.0, procedural_weight)[:, None]
    loss = (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights).mean()
    if labelled.any():
        quadrants = torch.tensor([c.quadrant for c in clips if c.quadrant is not None])
        loss = loss + 0.5 * F.cross_entropy(quadrant_logits[labelled], quadrants)
    return loss


def quadrant_balance(clips: list[Clip]) -> np.ndarray:
    """Sampling probabilities that make each quadrant equally likely: the
    model should not learn the split's prior (EMOPIA's train split is 31 %
    Q4), since the music it will hear has its own."""
    quadrants = np.array([clip.quadrant for clip in clips])
    weights = 1.0 / np.bincount(quadrants)[quadrants]
    return weights / weights.sum()


def train(train_clips: list[Clip], extra_clips: list[Clip], steps: int, batch: int, seed: int,
          procedural_fraction: float, procedural_weight: float = 0.5) -> torch.nn.Module:
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    network = HarmonicCNN()
    average = torch.optim.swa_utils.AveragedModel(
        network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.995), use_buffers=True)
    optimiser = torch.optim.AdamW(network.parameters(), lr=3e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    extra = round(batch * procedural_fraction) if extra_clips else 0
    balance = quadrant_balance(train_clips)
    started = time.time()
    for step in range(1, steps + 1):
        network.train()
        clips = [train_clips[i] for i in rng.choice(len(train_clips), batch - extra, p=balance)]
        clips += [extra_clips[i] for i in rng.integers(0, len(extra_clips), extra)] if extra else []
        loss = loss_on(network, clips, rng, generator, procedural_weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        average.update_parameters(network)
        if step % 50 == 0 or step == steps:
            print(f"step {step}/{steps}  loss {loss.item():.3f}  {time.time() - started:.0f} s", flush=True)
    return average.module.eval()


@torch.no_grad()
def clip_logits(network: torch.nn.Module, clip: Clip) -> np.ndarray:
    """Mean (valence, arousal) logits over a clip's windows, one a second."""
    spec = clip.spec.astype(np.float32)
    if spec.shape[1] < frontend.WINDOW_FRAMES:
        spec = crop(spec, np.random.default_rng(0))
    starts = range(0, spec.shape[1] - frontend.WINDOW_FRAMES + 1, VALIDATION_HOP_FRAMES)
    windows = torch.from_numpy(np.stack([spec[:, s:s + frontend.WINDOW_FRAMES] for s in starts]))
    _, _, explanation, _ = network(stack(windows))
    return explanation.mean(dim=(2, 3)).mean(dim=0).numpy()


def scores(positive: np.ndarray, quadrants: np.ndarray) -> dict[str, float]:
    """positive: [clips, 2] booleans (valence > 0, arousal > 0) -> accuracies."""
    truth = np.stack([np.vectorize(VALENCE_POSITIVE.get)(quadrants) > 0.5,
                      np.vectorize(AROUSAL_POSITIVE.get)(quadrants) > 0.5], axis=1)
    return {"quadrant_accuracy": float((positive == truth).all(axis=1).mean()),
            "valence_accuracy": float((positive[:, 0] == truth[:, 0]).mean()),
            "arousal_accuracy": float((positive[:, 1] == truth[:, 1]).mean())}



# --------------------------------------------------------------- export

def export(network: torch.nn.Module, path: Path) -> None:
    example = torch.zeros(1, len(frontend.HARMONICS), frontend.N_BINS, frontend.WINDOW_FRAMES)
    batch = {0: "batch"}
    torch.onnx.export(ExportWrapper(copy.deepcopy(network).eval()), example, path, opset_version=17, dynamo=False,
                      input_names=["spectrogram"], output_names=["valence", "arousal", "explanation"],
                      dynamic_axes={"spectrogram": batch, "valence": batch, "arousal": batch, "explanation": batch})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--procedural", type=int, default=400, help="procedural clips (0: none)")
    parser.add_argument("--procedural-fraction", type=float, default=0.25, help="share of each batch")
    parser.add_argument("--limit", type=int, default=None, help="EMOPIA clips per split (smoke tests)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "engines" / "rt-mer.onnx")
    args = parser.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    # Summation order, hence the weights after thousands of steps, depends on
    # the thread count: one thread gives the same model whatever the cores.
    torch.set_num_threads(1)

    train_clips, val_clips = emopia_clips("train", args.limit), emopia_clips("val", args.limit)
    extra_clips = procedural_clips(args.procedural)
    print(f"EMOPIA train {len(train_clips)}, val {len(val_clips)}, procedural {len(extra_clips)} clips", flush=True)
    report: dict = {"seed": args.seed, "steps": args.steps, "batch": args.batch,
                    "procedural_clips": len(extra_clips), "procedural_fraction": args.procedural_fraction}
    if not args.no_baseline:
        from baseline import descriptor_baseline
        report["baseline"] = descriptor_baseline(train_clips, val_clips)
        print("baseline", json.dumps(report["baseline"]), flush=True)

    network = train(train_clips, extra_clips, args.steps, args.batch, args.seed, args.procedural_fraction)
    quadrants = np.array([clip.quadrant + 1 for clip in val_clips])
    positive = np.stack([clip_logits(network, clip) for clip in val_clips]) > 0
    report["model"] = scores(positive, quadrants)
    report["parameters"] = sum(p.numel() for p in network.parameters())
    print("model", json.dumps(report["model"]), flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(network, args.out)
    torch.save(network.state_dict(), args.out.with_suffix(".pt"))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
