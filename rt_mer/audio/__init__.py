"""Audio in: files, live sources (mic, file as if live, stdin, demo, pushed), the
ring buffer between a capture thread and the analysis thread, resampling."""
from .io import AudioError, Resampler, TruncatedAudio, open_audio, read_audio, to_mono
from .ring import RingBuffer
from .device import MicSource, find_input_device, list_devices
from .sources import DemoSource, FileSource, PushSource, RingSource, Source, StdinSource, demo_path

__all__ = ["AudioError", "DemoSource", "FileSource", "MicSource", "PushSource", "Resampler", "RingBuffer", "RingSource",
           "Source", "StdinSource", "TruncatedAudio", "demo_path", "find_input_device", "list_devices", "open_audio",
           "read_audio", "to_mono"]
