"""`rt-mer bench cluster`: `analyze --cluster local:N` against local
`analyze`, on the same files in the same run.

The files are copies of the demo music (120 s) as a typical archive holds
a track: 44.1 kHz stereo MP3, so decoding and resampling cost what they
would. Local analysis is
`rt-mer analyze --threads T` itself, in a process of its own, timed from
start to exit (its start-up is a second or so); then again with
OMP_NUM_THREADS=T, as Ray starts its workers (NumPy's BLAS then keeps to
T threads; on a busy machine that alone changes the speed). Each cluster
worker is one actor with the same --threads; its time runs from the first
file sent to the last result back, and the workers' start-up (Ray's and
each engine's) is given apart, since an archive job pays it once. Local
analyze runs in a session of its own, as Ray's processes do: where Linux
groups the CPU by session (autogroup), a busy machine would otherwise give
the cluster the larger share and flatter it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CD_RATE = 44100


def bench_cluster(print_line, copies: int = 16, workers=(1, 2), threads: int = 1, hop: float = 0.5) -> dict:
    import numpy as np
    import soundfile

    from .feed import demo_audio
    from ..stream.cluster import Cluster
    folder = Path(tempfile.mkdtemp(prefix="rt-mer-bench-"))
    try:
        track = folder / "track.mp3"
        soundfile.write(track, np.repeat(demo_audio(CD_RATE)[:, None], 2, axis=1), CD_RATE)
        files = []
        for i in range(copies):
            files.append(folder / f"track{i:02}.mp3")
            shutil.copyfile(track, files[-1])
        audio = 120.0 * copies
        print_line(f"cluster: {copies} files, {audio / 60:.0f} min of audio, {threads} thread(s) per engine")
        local = _local(files, threads, hop, folder, {})
        print_line(f"  local analyze: {local:.0f}x real time")
        capped = _local(files, threads, hop, folder, {"OMP_NUM_THREADS": str(threads)})
        print_line(f"  local analyze, OMP_NUM_THREADS={threads} (as Ray runs a worker): {capped:.0f}x real time")
        figures = {"local_x_realtime": local, "local_omp_x_realtime": capped, "audio_s": audio}
        for count in workers:
            started = time.perf_counter()
            cluster = Cluster(f"local:{count}", None, engine="onnxruntime", threads=threads, hop=hop)
            try:
                up = time.perf_counter() - started
                started = time.perf_counter()
                done = sum(result.seconds for result in cluster.results(files))
                speed = done / (time.perf_counter() - started)
            finally:
                cluster.close()
            figures[f"workers_{count}_x_realtime"] = speed
            print_line(f"  local cluster, {count} worker(s): {speed:.0f}x real time = {speed / local:.2f} x local "
                       f"analyze, {speed / capped:.2f} x with OMP_NUM_THREADS; {speed / count / threads:.0f}x "
                       f"real time per core (start-up {up:.1f} s)")
        return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _local(files: list[Path], threads: int, hop: float, folder: Path, env: dict) -> float:
    """`rt-mer analyze` in a process of its own: times real time, start to exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rt_mer.cli", "analyze", "--quiet", "--engine", "onnxruntime",
                    "--threads", str(threads), "--hop", str(hop), "--out", str(folder / "va.csv"), *map(str, files)],
                   check=True, env={**os.environ, **env}, stderr=subprocess.DEVNULL,
                   start_new_session=True)      # as Ray's processes are: Linux shares a busy CPU per session
    return 120.0 * len(files) / (time.perf_counter() - started)
