"""Offline analysis of the demo music on one core, times real time,
against the obvious way (librosa STFT of every window from scratch,
PyTorch eager)."""
from __future__ import annotations

import time

import numpy as np

from ..audio.sources import demo_path
from ..dsp import frontend
from ..stream.offline import analyze_file
from ..stream.windows import DEFAULT_HOP, hop_frames
from .baselines import trained_network
from .feed import demo_audio


def bench_analyze(engine, baseline_seconds: float = 20.0, passes: int = 3) -> dict:
    """Offline analysis of the demo music, times real time: the median of
    `passes` after one warm-up pass (the first opens the decoder and sizes
    ONNX Runtime's buffers), beside the obvious way, warmed up likewise."""
    path, audio = demo_path(), demo_audio()
    duration = len(audio) / frontend.SAMPLE_RATE
    analyze_file(path, engine)
    seconds = []
    for _ in range(passes):
        started = time.perf_counter()
        trajectory = analyze_file(path, engine)
        seconds.append(time.perf_counter() - started)
    ours = duration / float(np.median(seconds))
    result = {"audio_s": duration, "windows": len(trajectory.valence), "ours_x_realtime": ours, "passes": passes}
    _obvious_way(audio, 1.0)
    obvious, result["baseline_skipped"] = _obvious_way(audio, baseline_seconds)
    if obvious:
        result.update(obvious_x_realtime=obvious, speedup=ours / obvious)
    return result


def _obvious_way(audio: np.ndarray, seconds: float) -> tuple[float | None, str]:
    """Each window from scratch: librosa STFT of its audio, the same filterbank,
    PyTorch eager at batch 1; (times real time over `seconds` of audio, "")
    or (None, why it cannot run here)."""
    try:
        import librosa
    except ImportError:
        return None, "librosa is not installed (the [train] extra)"
    network, missing = trained_network()
    if network is None:
        return None, missing
    import torch
    torch.set_num_threads(1)
    window_samples = frontend.WINDOW_FRAMES * frontend.FRAME_HOP
    step = hop_frames(DEFAULT_HOP) * frontend.FRAME_HOP
    ends = range(window_samples, min(len(audio), window_samples + int(seconds * frontend.SAMPLE_RATE)), step)
    started = time.perf_counter()
    with torch.no_grad():
        for end in ends:
            segment = np.concatenate([np.zeros(frontend.N_FFT - frontend.FRAME_HOP, np.float32),
                                      audio[end - window_samples:end]])
            magnitude = np.abs(librosa.stft(segment, n_fft=frontend.N_FFT, hop_length=frontend.FRAME_HOP,
                                            center=False)) * frontend.MAGNITUDE_SCALE
            spec = 20 * np.log10(np.maximum(frontend.FILTERBANK @ magnitude, 1e-5))
            window = frontend.harmonic_stack(spec[:, -frontend.WINDOW_FRAMES:].astype(np.float32))
            network(torch.from_numpy(window[None]))
    return len(ends) * step / frontend.SAMPLE_RATE / (time.perf_counter() - started), ""
