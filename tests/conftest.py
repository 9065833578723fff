"""Shared fixtures."""
from __future__ import annotations

import pytest

from audio_device import VirtualAudioDevice, missing


@pytest.fixture(scope="session")
def virtual_audio():
    """A private PulseAudio null sink that PortAudio captures as device
    "pulse" (see tests/audio_device.py); skips where it cannot run."""
    reason = missing()
    if reason:
        pytest.skip(f"no virtual audio device: {reason}")
    try:
        import sounddevice  # noqa: F401
    except OSError:
        pytest.skip("no virtual audio device: PortAudio not installed (apt-get install libportaudio2)")
    with VirtualAudioDevice() as device:
        yield device
