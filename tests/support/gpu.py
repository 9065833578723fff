"""What the GPU tests need, and why they skip where it is missing."""
from __future__ import annotations

import importlib

import pytest

from rt_mer.inference import EngineError, cuda as cuda_api, default_model
from rt_mer.inference.tensorrt import check_gpu_supported, installed_module


def gpu_missing() -> str:
    """Why the GPU tests cannot run here, or "" when they can."""
    found = installed_module()
    if found is None:
        return "no TensorRT installed"
    if not cuda_api.installed():
        return "cuda-bindings not installed"
    try:
        device = cuda_api.Cuda()
        trt = importlib.import_module(found[0])
        check_gpu_supported(trt, device.name, device.capability, found[1])
    except EngineError as error:        # a GPU this TensorRT does not run on
        return str(error)
    except Exception as error:          # no driver or device (CudaError), a broken TensorRT
        return f"no usable CUDA device or TensorRT ({str(error).strip()[:100]})"
    return ""


GPU_MISSING = gpu_missing()
needs_gpu = pytest.mark.skipif(bool(GPU_MISSING),
                               reason=f"needs an NVIDIA GPU, TensorRT and cuda-bindings: {GPU_MISSING}")


needs_no_tensorrt = pytest.mark.skipif(installed_module() is not None,
                                       reason="tensorrt is installed here: its absence cannot be seen")


def open_tensorrt(precision: str, notes: list | None = None, **options):
    from rt_mer.inference.tensorrt import TensorRTEngine
    return TensorRTEngine(default_model(), precision, report=(notes if notes is not None else []).append,
                          **{"max_batch": 64, **options})


def cuda_device() -> bool:
    try:
        cuda_api.Cuda()
    except Exception:           # no cuda-bindings, no driver, no device
        return False
    return True
