"""`rt-mer bench`: speed figures, each beside a baseline run in the same
process, on the shipped demo music.

- analyze: offline analysis on one core, times real time (the median of
  three passes after a warm-up), against the obvious way (librosa STFT of
  every window from scratch, PyTorch eager).
- latency: processing latency per hop for one stream, per stage, as the
  real-time loop measures it: the audio a hop at a time (the work), then
  as a sound card delivers it (20 ms blocks at 48 kHz: the wait for the
  rest of the block and the resampler's look-ahead as well); beside it, the
  host's own tail: fixed work of the same median on the same schedule.
- streams: how many streams one process keeps up with at the given hop.

The latency, streams and gpu figures drive the real AnalysisLoop with
synthetic sources (the demo music, a hop or a block at a time) and read the
latencies the loop itself measured: there is no second copy of the loop.
Its threads are scheduled as `rt-mer run` schedules them (real-time where
the system allows it: rt_mer.realtime); the latency is measured at normal
priority as well, and each figure says which it is.
The PyTorch baselines need the shipped weights (engines/rt-mer.pt, in a
checkout) and torch; without either they are skipped, with the reason.
- cpu: CPU use of `rt-mer run` with its dashboard in a pseudo-terminal.
- gpu (TensorRT engines only): per-stage latency at batch sizes 1 to 1024,
  beside ONNX Runtime on the CPU and PyTorch eager on the same GPU.

One module a figure (analyze, latency, cpu, gpu), the synthetic streams
they share (feed), the PyTorch baselines (baselines: rt_mer.inference.pytorch),
and the lines printed (report).
"""
from .report import run_benchmarks
from .gpu import is_gpu_engine

__all__ = ["is_gpu_engine", "run_benchmarks"]
