"""The ONNX export: the one graph that ships (rt_mer.inference.base's input
and outputs), from a trained network or from saved weights."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..dsp import frontend
from ..contract import INPUT_NAME, OUTPUT_NAMES
from .network import ExportWrapper, HarmonicCNN, trained


def export(network: HarmonicCNN, path: Path) -> None:
    """The serving graph of `network` to `path`, written whole or not at all."""
    example = torch.zeros(1, len(frontend.HARMONICS), frontend.N_BINS, frontend.WINDOW_FRAMES)
    batch = {0: "batch"}
    partial = path.with_suffix(".part.onnx")
    torch.onnx.export(ExportWrapper(copy.deepcopy(network).eval()), example, partial, opset_version=17, dynamo=False,
                      input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                      dynamic_axes={name: batch for name in (INPUT_NAME, *OUTPUT_NAMES)})
    partial.replace(path)


def save_weights(network: HarmonicCNN, path: Path) -> None:
    """The network's state dict to `path` (what `trained` loads), written whole or not at all."""
    partial = path.with_suffix(".part.pt")
    torch.save(network.state_dict(), partial)
    partial.replace(path)


def export_saved(out: Path) -> None:
    """Export the weights saved beside `out` (its .pt) again, with this
    version's serving graph: a new output needs no retraining."""
    export(trained(out.with_suffix(".pt")), out)
