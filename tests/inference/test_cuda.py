"""The CUDA calls the TensorRT engine makes (cuda-bindings): the device read,
a failed call named, no driver one line."""
from __future__ import annotations

import pytest

from rt_mer.inference import EngineError, cuda as cuda_api
from rt_mer.inference.tensorrt import open_cuda

from support.gpu import cuda_device


def test_no_cuda_driver_is_one_line():
    pytest.importorskip("cuda.bindings")
    if cuda_device():
        pytest.skip("a CUDA device is here")
    with pytest.raises(EngineError) as error:
        open_cuda()
    assert str(error.value).startswith("no CUDA driver (") and "\n" not in str(error.value)


class FakeDriver:
    """cuda-bindings' driver module as far as Cuda() opening a device goes:
    (status, result...) tuples, as the real one returns them."""

    class CUresult:
        CUDA_SUCCESS, CUDA_ERROR_NO_DEVICE = 0, 100

    class CUdevice_attribute:
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 75, 76

    def __init__(self, devices: int):
        self.devices = devices

    def cuInit(self, flags):
        return (0,)

    def cuDeviceGetCount(self):
        return (0, self.devices)

    def cuDeviceGet(self, ordinal):
        return (0, 7) if ordinal < self.devices else (101,)

    def cuDeviceGetName(self, length, device):
        return 0, b"NVIDIA H100 80GB HBM3".ljust(length, b"\0")

    def cuDeviceGetAttribute(self, attribute, device):
        return 0, {75: 9, 76: 0}[attribute]

    def cuDevicePrimaryCtxRetain(self, device):
        return 0, "context"

    def cuCtxPushCurrent(self, context):
        return (self.CUresult.CUDA_ERROR_NO_DEVICE,)       # as if the device had gone

    def cuGetErrorName(self, status):
        return 0, b"CUDA_ERROR_NO_DEVICE"


def test_cuda_reads_the_device_and_names_a_failed_call(monkeypatch):
    monkeypatch.setattr(cuda_api, "import_driver", lambda: FakeDriver(1))
    device = cuda_api.Cuda()
    assert (device.name, device.capability) == ("NVIDIA H100 80GB HBM3", (9, 0))
    with pytest.raises(cuda_api.CudaError, match="^cuCtxPushCurrent: CUDA_ERROR_NO_DEVICE$"):
        device.push()
    monkeypatch.setattr(cuda_api, "import_driver", lambda: FakeDriver(0))
    with pytest.raises(EngineError, match="^no CUDA device$"):
        open_cuda()
