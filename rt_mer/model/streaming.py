"""The hop graph of a causal network (training and export only: imports torch).

A causal network (`HarmonicCNN(running_level=True, causal=True)`) never
changes a frame's features once computed, nor a time convolution's output
once its inputs are in. So a stream need not recompute the window every
hop: `HopGraph` takes a hop's new frames and the stream's state (what the
window and the next hop need of the frames before them), computes every
layer at the new positions only, and gives the window's outputs, exactly
those of the network over the window and its history, and the new state.
A hop's cost is then independent of the window's length.

The state is one flat vector per stream, so that streams batch as windows
do: each convolution's last inputs (its kernel's span), the previous
frames' loudest bins (the running level), the last frame's descriptors
(its flux), and the window's per-step head terms, chroma and onsets (the
means and the key). A stream starts from `silence`: the state after the
network's whole input span of silence, as training pads a clip's start.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..dsp.frontend import FLOOR_DB, HARMONICS, N_BINS, WINDOW_FRAMES
from ..engines.base import OUTPUT_NAMES
from .network import (HARMONY_POOL, TIME_POOL, HarmonicCNN, at_best_root, frame_maxima, onset_autocorrelation,
                      onset_envelope, running_reference, with_flux, wrap)

STEPS = WINDOW_FRAMES // TIME_POOL     # the window's positions at the maps' resolution


def span(block: nn.Module) -> int:
    """Inputs before the newest that a conv block's output needs (0: none)."""
    conv = block[0] if isinstance(block, nn.Sequential) else block
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d)):
        return 0
    return (conv.kernel_size[-1] - 1) * conv.dilation[-1]


def conv_spans(layers: nn.Sequential) -> list[tuple[int, int]]:
    """(channels, span) of every conv block of a time branch that looks back."""
    return [(block[0].in_channels, span(block)) for block in layers if span(block)]


def run_causal(layers: nn.Sequential, buffers: list[torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """A branch's layers over new positions `x` [..., n]: each conv that
    looks back runs over its buffer (its last inputs) and the new ones,
    unpadded, so it gives exactly its n new outputs. -> (output, the new
    buffers)."""
    remaining, kept = iter(buffers), []
    for layer in layers:
        if span(layer):
            x = torch.cat([next(remaining), x], dim=-1)
            kept.append(x[..., -span(layer):])
        x = layer(x)
    return x, kept


class HopGraph(nn.Module):
    """(new frames [B, harmonics, bins, n], state [B, `size`]) -> valence,
    arousal, explanation, drivers (as ExportWrapper's, for the window that
    ends with the new frames) and the new state. n: a multiple of
    TIME_POOL, so that the pooling grids stay where training put them."""

    def __init__(self, network: HarmonicCNN) -> None:
        super().__init__()
        if not network.context:
            raise ValueError("only a causal network computes each frame once")
        self.network = network
        bands = (network.timbre[0][0].in_channels - 1) // 3
        c = network.harmonic[0].out_channels
        self.layout: dict[str, tuple[int, ...]] = {
            "frame_maxima": (WINDOW_FRAMES - 1,),
            "descriptors": (2 * bands + 1, 1),
            **{f"timbre_{i}": shape for i, shape in enumerate(conv_spans(network.timbre))},
            **{f"register_{i}": shape for i, shape in enumerate(conv_spans(network.temporal))},
            **{f"interval_{i}": (channels, 12, s) for i, (channels, s) in enumerate(conv_spans(network.interval))},
            "chroma": (c, 12, STEPS),
            "onsets": (WINDOW_FRAMES,),
            "harmony": (2, 12, STEPS),
            "register": (2, STEPS),
            "timbre": (2, STEPS)}
        self.size = sum(int(np.prod(shape)) for shape in self.layout.values())

    def unpack(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(state, [int(np.prod(shape)) for shape in self.layout.values()], dim=1)
        return {name: part.reshape(-1, *shape) for (name, shape), part in zip(self.layout.items(), parts)}

    def pack(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([parts[name].reshape(parts[name].shape[0], -1) for name in self.layout], dim=1)

    def forward(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        net, old = self.network, self.unpack(state)
        new: dict[str, torch.Tensor] = {}
        maxima = torch.cat([old["frame_maxima"], frame_maxima(frames)], dim=1)
        new["frame_maxima"] = maxima[:, -(WINDOW_FRAMES - 1):]
        descriptors, pitch_classes, energies = net.frame_features(
            frames, running_reference(maxima, frames.shape[3]))
        descriptors = torch.cat([old["descriptors"], descriptors], dim=2)
        new["descriptors"] = descriptors[..., -1:]
        timbre_in = with_flux(descriptors)[..., 1:]         # the last frame's descriptors give the first flux
        chroma = F.max_pool2d(pitch_classes, (1, TIME_POOL // HARMONY_POOL))
        maps = {}
        for branch, layers, x in (("timbre", net.timbre, timbre_in), ("register", net.temporal, energies),
                                  ("interval", net.interval, wrap(chroma))):
            names = [name for name in self.layout if name.startswith(f"{branch}_")]
            maps[branch], kept = run_causal(layers, [old[name] for name in names], x)
            new.update(zip(names, kept))
        heads = {"harmony": torch.einsum("oc,bckt->bokt", net.emotion_interval.weight, at_best_root(maps["interval"])),
                 "register": torch.einsum("oc,bct->bot", net.emotion_temporal.weight, maps["register"]),
                 "timbre": torch.einsum("oc,bct->bot", net.emotion_timbre.weight, maps["timbre"])}
        for name, steps in (*heads.items(), ("chroma", chroma)):
            new[name] = torch.cat([old[name], steps], dim=-1)[..., -STEPS:]
        new["onsets"] = torch.cat([old["onsets"], onset_envelope(timbre_in)], dim=1)[:, -WINDOW_FRAMES:]
        key = at_best_root(net.key(wrap(new["chroma"].mean(dim=3, keepdim=True))))
        key_terms = torch.einsum("oc,bckt->bokt", net.emotion_key.weight, key)
        rhythm = F.linear(net.rhythm(onset_autocorrelation(new["onsets"])), net.emotion_rhythm.weight)
        terms = {"harmony": new["harmony"].mean(dim=(2, 3)), "key": key_terms.mean(dim=(2, 3)),
                 "register": new["register"].mean(dim=2), "timbre": new["timbre"].mean(dim=2), "rhythm": rhythm}
        drivers, _, emotion = net.emotion(terms)
        return emotion[:, 0], emotion[:, 1], new["harmony"] + key_terms, drivers, self.pack(new)

    @torch.no_grad()
    def silence(self) -> torch.Tensor:
        """A stream's first state [1, size]: after the network's input span
        of silence (its history and a window), whatever came before."""
        frames = torch.full((1, len(HARMONICS), N_BINS, self.network.history + WINDOW_FRAMES), FLOOR_DB)
        return self(frames, torch.zeros(1, self.size))[-1]


def export(graph: HopGraph, path, hop_frames: int = 8) -> None:
    """The hop graph as ONNX (batch of streams and hop length dynamic):
    inputs "frames" and "state", outputs OUTPUT_NAMES and "next_state"."""
    example = (torch.full((1, len(HARMONICS), N_BINS, hop_frames), FLOOR_DB), graph.silence())
    outputs = (*OUTPUT_NAMES, "next_state")
    with warnings.catch_warnings():     # the legacy exporter, as tools/train.py's: its graphs are the ones served
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(graph.eval(), example, str(path), opset_version=17, dynamo=False,
                          input_names=["frames", "state"], output_names=list(outputs),
                          dynamic_axes={"frames": {0: "batch", 3: "frames"}, "state": {0: "batch"},
                                        **{name: {0: "batch"} for name in outputs}})
