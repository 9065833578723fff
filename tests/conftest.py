"""Fixtures the tests share. Tests under tests/e2e/ run rt-mer as a user
does (its commands in processes, terminals, browsers, clusters) and are
marked `e2e`; the rest mirror the package, one file per module."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from support.audio_device import VirtualAudioDevice, missing
from support.music import chord_music, write
from support.processes import rt_mer
from support.wire import free_endpoint

E2E = Path(__file__).parent / "e2e"

# Started under nohup or in a script's background, a test run inherits SIGHUP or SIGINT ignored, and so
# would every command it starts: rt-mer keeps an ignored signal ignored (as nohup asks), and the tests that
# stop a command with it would fail. The run goes on ignoring them through a handler, which no command inherits.
for _signum in (signal.SIGINT, signal.SIGHUP):
    if signal.getsignal(_signum) == signal.SIG_IGN:
        signal.signal(_signum, lambda *_: None)


def pytest_collection_modifyitems(items):
    for item in items:
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def virtual_audio():
    """A private PulseAudio null sink that PortAudio captures as device
    "pulse" (see tests/support/audio_device.py); skips where it cannot run."""
    reason = missing()
    if reason:
        pytest.skip(f"no virtual audio device: {reason}")
    try:
        import sounddevice  # noqa: F401
    except OSError:
        pytest.skip("no virtual audio device: PortAudio not installed (apt-get install libportaudio2)")
    with VirtualAudioDevice() as device:
        yield device


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    return [
        write(folder / "stereo44.wav", chord_music(12, 44100, 2), 44100),
        write(folder / "mono48.flac", chord_music(10, 48000, 1, seed=1)[:, 0], 48000),
        write(folder / "quad96.wav", chord_music(9, 96000, 4, seed=2), 96000, subtype="FLOAT"),
        write(folder / "voice22.ogg", chord_music(11, 22050, 1, seed=3), 22050),
        write(folder / "mp3_32k.mp3", chord_music(10, 32000, 2, seed=4), 32000),
        write(folder / "model_rate.wav", chord_music(10, 16000, 1, seed=5), 16000, subtype="PCM_24"),
    ]


@pytest.fixture
def endpoint():
    return free_endpoint()


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plot")
    return (write(folder / "first.wav", chord_music(12, 22050, 1, seed=31), 22050),
            write(folder / "second.flac", chord_music(10, 16000, 2, seed=32), 16000))


@pytest.fixture(scope="module")
def analysis(music):
    """`rt-mer analyze` of both files into one CSV."""
    out = music[0].parent / "va.csv"
    result = rt_mer("analyze", "--quiet", *music, "--out", out, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def gpu_cache(tmp_path_factory):
    """A private plan cache for this module, for the engines opened here
    and the commands they start."""
    folder = tmp_path_factory.mktemp("rt-mer-cache")
    before = os.environ.get("RT_MER_CACHE")
    os.environ["RT_MER_CACHE"] = str(folder)
    yield folder
    if before is None:
        del os.environ["RT_MER_CACHE"]
    else:
        os.environ["RT_MER_CACHE"] = before
