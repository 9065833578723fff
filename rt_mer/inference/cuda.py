"""The little of CUDA the TensorRT engine needs, through NVIDIA's
`cuda-bindings` (the driver API only: it needs the NVIDIA driver and no
CUDA toolkit, and its wheels install everywhere TensorRT's do).

Device 0's primary context (shared with any other CUDA user in the
process, PyTorch included), device and page-locked host buffers, one
stream, events. Every call's status is checked; a failure raises
CudaError with CUDA's own name for it.
"""
from __future__ import annotations

import ctypes
import importlib
import importlib.util

import numpy as np
from ..errors import RtMerError


class CudaError(RtMerError):
    pass


def installed() -> bool:
    """cuda-bindings is there (found without importing it)."""
    try:
        return importlib.util.find_spec("cuda.bindings") is not None
    except ModuleNotFoundError:         # no `cuda` namespace at all
        return False


def import_driver():
    """cuda.bindings.driver (cuda-bindings 12.6 on; the older cuda-python
    named it cuda.cuda)."""
    try:
        return importlib.import_module("cuda.bindings.driver")
    except ModuleNotFoundError:
        return importlib.import_module("cuda.cuda")


class Cuda:
    """Device 0 of CUDA_VISIBLE_DEVICES. `push`/`pop` make its primary
    context current on the calling thread."""

    def __init__(self) -> None:
        self.driver = driver = import_driver()
        try:
            self._call(driver.cuInit, 0)
        except CudaError:
            raise
        except Exception as error:          # cuda-bindings finds no libcuda.so.1: no NVIDIA driver
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CudaError(f"no CUDA driver ({reason[:200]})") from None
        if self._call(driver.cuDeviceGetCount) == 0:
            raise CudaError("no CUDA device")
        self.device = self._call(driver.cuDeviceGet, 0)
        self.name = self._call(driver.cuDeviceGetName, 256, self.device).split(b"\0")[0].decode()
        attribute = driver.CUdevice_attribute
        self.capability = (self._call(driver.cuDeviceGetAttribute,
                                      attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.device),
                           self._call(driver.cuDeviceGetAttribute,
                                      attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.device))
        self._context = self._call(driver.cuDevicePrimaryCtxRetain, self.device)

    def _call(self, function, *args):
        """CUDA's (status, result...) -> result, or CudaError."""
        status, *results = function(*args)
        if status != self.driver.CUresult.CUDA_SUCCESS:
            name = self.driver.cuGetErrorName(status)[1]
            raise CudaError(f"{function.__name__}: {name.decode() if isinstance(name, bytes) else status}")
        return results[0] if len(results) == 1 else tuple(results) if results else None

    def push(self) -> None:
        self._call(self.driver.cuCtxPushCurrent, self._context)

    def pop(self) -> None:
        self._call(self.driver.cuCtxPopCurrent)

    def release(self) -> None:
        """The primary context back (retained once, when opened)."""
        self._call(self.driver.cuDevicePrimaryCtxRelease, self.device)

    def free_memory(self) -> tuple[int, int]:
        return self._call(self.driver.cuMemGetInfo)

    def device_buffer(self, nbytes: int) -> int:
        return int(self._call(self.driver.cuMemAlloc, max(1, nbytes)))

    def free_device(self, address: int) -> None:
        self._call(self.driver.cuMemFree, self.driver.CUdeviceptr(address))

    def pinned(self, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array in page-locked host memory (free with free_pinned)."""
        nbytes = int(np.prod(shape)) * 4
        address = int(self._call(self.driver.cuMemHostAlloc, max(1, nbytes), 0))
        return np.frombuffer((ctypes.c_char * nbytes).from_address(address), np.float32).reshape(shape)

    def free_pinned(self, array: np.ndarray) -> None:
        self._call(self.driver.cuMemFreeHost, array.ctypes.data)

    def stream(self):
        return self._call(self.driver.cuStreamCreate, 0)

    def event(self):
        return self._call(self.driver.cuEventCreate, 0)

    def record(self, event, stream) -> None:
        self._call(self.driver.cuEventRecord, event, stream)

    def synchronize(self, event) -> None:
        self._call(self.driver.cuEventSynchronize, event)

    def elapsed_ms(self, start, end) -> float:
        return float(self._call(self.driver.cuEventElapsedTime, start, end))

    def copy_in(self, address: int, host: np.ndarray, stream) -> None:
        self._call(self.driver.cuMemcpyHtoDAsync, self.driver.CUdeviceptr(address), host.ctypes.data, host.nbytes,
                   stream)

    def copy_out(self, host: np.ndarray, address: int, stream) -> None:
        self._call(self.driver.cuMemcpyDtoHAsync, host.ctypes.data, self.driver.CUdeviceptr(address), host.nbytes,
                   stream)

    def destroy(self, stream=None, events=()) -> None:
        for event in events:
            self._call(self.driver.cuEventDestroy, event)
        if stream is not None:
            self._call(self.driver.cuStreamDestroy, stream)
