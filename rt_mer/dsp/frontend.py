"""The streaming front-end: audio at the model rate in, harmonic-stacked
log-frequency spectrogram frames out.

One implementation serves training (tools/ compute features with
`spectrogram`) and serving (`StreamingSpectrogram` computes only the frames a
new block of audio completes). Frame ``i`` is the Hann-windowed FFT of the
``N_FFT`` samples ending at sample ``(i + 1) * FRAME_HOP``, with the stream
preceded by silence, so a stream of ``n`` samples has exactly
``n // FRAME_HOP`` frames whichever way it is cut into blocks.
"""
from __future__ import annotations

import numpy as np
import scipy.fft
from scipy import sparse

SAMPLE_RATE = 16_000
N_FFT = 4096                    # 256 ms: resolves semitones down to about C2
FRAME_HOP = 1000                # 62.5 ms, 16 frames per second (a quarter of N_FFT)
FRAMES_PER_SECOND = SAMPLE_RATE / FRAME_HOP
FMIN = 55.0                     # A1
BINS_PER_SEMITONE = 3
N_OCTAVES = 7
N_BINS = 12 * BINS_PER_SEMITONE * N_OCTAVES      # 252, A1 .. G#8 (~7 kHz)
HARMONICS = (1, 2, 3, 4, 5, 6)
FLOOR_DB = -160.0               # far below any window's 60 dB range: gain changes never reach it
WINDOW_SECONDS = 4.0
WINDOW_FRAMES = int(WINDOW_SECONDS * FRAMES_PER_SECOND)   # 64

_HANN = np.hanning(N_FFT + 1)[:-1].astype(np.float32)     # periodic Hann
MAGNITUDE_SCALE = 2.0 / _HANN.sum()    # a full-scale sine's FFT peak is 1


def bin_frequencies() -> np.ndarray:
    """Centre frequency (Hz) of every log-frequency bin."""
    return FMIN * 2.0 ** (np.arange(N_BINS) / (12 * BINS_PER_SEMITONE))


def _log_filterbank() -> sparse.csr_matrix:
    """Triangular filters [fft bins x log bins], each summing to one.

    A filter spans its neighbours' centres, widened to at least one FFT bin
    either side so that low bins, narrower than the FFT's resolution,
    interpolate between FFT bins instead of going empty.
    """
    fft_hz = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    spacing = fft_hz[1]
    centres = bin_frequencies()
    ratio = 2.0 ** (1 / (12 * BINS_PER_SEMITONE))
    lower = np.maximum(centres - centres / ratio, spacing)
    upper = np.maximum(centres * ratio - centres, spacing)
    rising = (fft_hz[:, None] - (centres - lower)) / lower
    falling = ((centres + upper) - fft_hz[:, None]) / upper
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    weights /= weights.sum(axis=0, keepdims=True)
    return sparse.csr_matrix(weights.T.astype(np.float32))


FILTERBANK = _log_filterbank()


def harmonic_offsets() -> np.ndarray:
    """Bins between a note and its k-th harmonic: 36 * log2(k), rounded."""
    return np.rint(12 * BINS_PER_SEMITONE * np.log2(HARMONICS)).astype(int)


def _stack_index() -> np.ndarray:
    """Gather index [harmonic, pitch] into a log spectrogram whose extra last
    row is the floor: harmonics above the top bin read silence."""
    index = np.arange(N_BINS)[None, :] + harmonic_offsets()[:, None]
    return np.where(index < N_BINS, index, N_BINS)


STACK_INDEX = _stack_index()


def log_spectrogram_frames(frames: np.ndarray) -> np.ndarray:
    """Windowed sample frames [n, N_FFT] -> log-frequency dB [N_BINS, n]."""
    magnitude = np.abs(scipy.fft.rfft(frames * _HANN, axis=1)) * MAGNITUDE_SCALE
    log_magnitude = FILTERBANK @ magnitude.T.astype(np.float32)
    return (20.0 * np.log10(np.maximum(log_magnitude, 10 ** (FLOOR_DB / 20)))).astype(np.float32)


def harmonic_stack(log_spec: np.ndarray) -> np.ndarray:
    """Log spectrogram [..., N_BINS, T] -> [..., harmonics, N_BINS, T]: entry
    [k, p, t] is the level of the k-th harmonic of pitch bin p."""
    floor = np.full(log_spec.shape[:-2] + (1, log_spec.shape[-1]), FLOOR_DB, log_spec.dtype)
    padded = np.concatenate([log_spec, floor], axis=-2)
    return padded[..., STACK_INDEX, :]


def spectrogram(audio: np.ndarray) -> np.ndarray:
    """One-shot log-frequency spectrogram [N_BINS, len(audio) // FRAME_HOP]
    of mono float audio at SAMPLE_RATE."""
    padded = np.concatenate([np.zeros(N_FFT - FRAME_HOP, np.float32), np.asarray(audio, np.float32)])
    n_frames = len(audio) // FRAME_HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::FRAME_HOP][:n_frames]
    return log_spectrogram_frames(frames)


class StreamingSpectrogram:
    """Incremental `spectrogram`: each `push` computes only the frames that
    the new samples complete, carrying the overlap between calls."""

    def __init__(self) -> None:
        self._buffer = np.zeros(N_FFT - FRAME_HOP, np.float32)

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Mono samples at SAMPLE_RATE -> the new frames [N_BINS, n]."""
        self._buffer = np.concatenate([self._buffer, np.asarray(audio, np.float32)])
        n_frames = (len(self._buffer) - (N_FFT - FRAME_HOP)) // FRAME_HOP
        if n_frames <= 0:
            return np.empty((N_BINS, 0), np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(self._buffer, N_FFT)[::FRAME_HOP][:n_frames]
        new = log_spectrogram_frames(frames)
        self._buffer = self._buffer[n_frames * FRAME_HOP:].copy()
        return new
