"""The real-time loop (rt_mer.stream.loop): batching of due windows, sleeping
while no audio comes, stage latencies, a failing source, a long soak."""
from __future__ import annotations

import os
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile

from rt_mer.audio import FileSource, PushSource, StdinSource, demo_path
from rt_mer.dsp.frontend import FRAME_HOP, FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES
from rt_mer.inference import open_engine
from rt_mer.stream.loop import AnalysisLoop, LoopOptions
from rt_mer.stream.offline import analyze_file

from support.music import chord_music, windows_in, write


@pytest.mark.slow
def test_soak_minutes_of_demo_faster_than_real_time_keep_memory_flat_and_seq_whole():
    """The demo looping, read as fast as the loop takes it: after warm-up,
    traced memory stays flat while minutes of audio go through, and no
    message is missing from either topic."""
    warmup_s, soak_s = 60.0, 300.0
    source = FileSource(demo_path(), name="demo", realtime=False, loop=True)
    engine = open_engine("onnxruntime", threads=1)
    seqs = {"emotion": [], "status": []}
    memory = {}

    def sink(message):
        seqs[message.type].append(message.seq)
        if message.type == "emotion":
            if "warm" not in memory and message.t >= warmup_s:
                memory["warm"] = tracemalloc.get_traced_memory()[0]
            if message.t >= warmup_s + soak_s:
                memory["end"] = tracemalloc.get_traced_memory()[0]
                loop.stop.set()

    loop = AnalysisLoop([source], engine, [sink], LoopOptions(hop=0.25))
    tracemalloc.start()
    try:
        loop.run()
    finally:
        tracemalloc.stop()
    assert "end" in memory, "the loop stopped before the soak was over"
    growth = memory["end"] - memory["warm"]
    assert growth < 2 * 2**20, f"traced memory grew {growth / 2**20:.1f} MiB over {soak_s:g} s of audio"
    for kind, seen in seqs.items():
        assert seen == list(range(len(seen))), f"{kind} seq has gaps"
    assert len(seqs["emotion"]) >= soak_s / 0.25
    stream = loop.streams[0]
    assert stream.late_windows == 0 and source.counters["overflows"] == 0


def test_the_loop_sleeps_while_no_audio_comes():
    """A pipe with nothing in it: the loop wakes for its once-a-second
    status, not every few milliseconds; audio written wakes it at once."""
    read_end, write_end = os.pipe()
    source = StdinSource(16000, 1, "f32le", stream=os.fdopen(read_end, "rb", buffering=0))
    engine = open_engine("onnxruntime", threads=1)
    arrivals = []
    loop = AnalysisLoop([source], engine, [lambda m: arrivals.append((time.monotonic(), m))], LoopOptions(hop=0.5))
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        time.sleep(2.5)
        idle_passes = loop.passes
        os.write(write_end, np.zeros(16000 * 9, "<f4").tobytes())      # more than a window
        deadline = time.monotonic() + 30
        while not any(m.type == "emotion" for _, m in arrivals) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.close(write_end)
        thread.join(30)
    assert not thread.is_alive()
    assert idle_passes <= 6, idle_passes                  # a 4 ms poll would have made over 600
    assert any(m.type == "emotion" for _, m in arrivals), "audio written did not wake the loop"


def test_windows_due_milliseconds_apart_share_one_inference():
    """Two streams whose hops arrive 2 ms apart: the loop holds the first
    window up to BATCH_WAIT_SECONDS for the other, so each hop is one
    inference of two windows. Judged per hop on the gap the writes really
    had, so a slow machine cannot fail it by luck."""
    from rt_mer.audio.io import read_audio
    from rt_mer.stream.loop import BATCH_WAIT_SECONDS
    audio = read_audio(demo_path())[:, None]
    window, step, hops = WINDOW_FRAMES * FRAME_HOP, 8000, 12
    sources = [PushSource(name, SAMPLE_RATE, buffer_seconds=30.0) for name in ("a", "b")]
    messages = []
    loop = AnalysisLoop(sources, open_engine("onnxruntime", threads=1), [messages.append], LoopOptions(hop=0.5))
    thread = threading.Thread(target=loop.run)
    thread.start()
    gaps = []
    try:
        for hop in range(hops):
            end = window + hop * step
            block = audio[:end] if hop == 0 else audio[end - step:end]
            while sum(m.type == "emotion" for m in messages) < 2 * hop and thread.is_alive():
                time.sleep(0.005)                # the previous hop is out: this one is measured alone
            started = time.monotonic()
            sources[0].write(block)
            time.sleep(0.002)
            sources[1].write(block)
            gaps.append(time.monotonic() - started)
    finally:
        for source in sources:
            source.end()
        thread.join(30)
    emotions = [m for m in messages if m.type == "emotion"]
    assert len(emotions) == 2 * hops
    close = [hop for hop, gap in enumerate(gaps) if gap < BATCH_WAIT_SECONDS]
    assert close, f"no hop was written within {BATCH_WAIT_SECONDS * 1000:g} ms: gaps {gaps}"
    for hop in close:
        pair = [m for m in emotions if m.t == pytest.approx(WINDOW_FRAMES / FRAMES_PER_SECOND + 0.5 * hop)]
        assert [m.batch for m in pair] == [2, 2], (hop, gaps[hop], pair)


class Preloaded:
    """A source whose audio is all there before the loop starts, read as
    fast as the loop asks: no thread and no clock, so which windows fall
    due together is decided by the audio alone."""
    can_wait, priority, scheduling = True, None, ""

    def __init__(self, name: str, audio: np.ndarray, rate: int) -> None:
        self.name, self.rate, self.channels, self.description = name, rate, 1, f"preloaded {name}"
        self.audio, self.position = audio, 0
        self.wakeup = threading.Event()
        self.counters = {"overflows": 0, "dropped_blocks": 0, "underruns": 0, "nonfinite": 0, "out_of_range": 0}

    def start(self) -> None:
        self.wakeup.set()

    def stop(self) -> None:
        pass

    def read(self, max_frames=None):
        end = len(self.audio) if max_frames is None else min(len(self.audio), self.position + max_frames)
        block, self.position = self.audio[self.position:end], end
        return block, None

    @property
    def finished(self) -> bool:
        return self.position == len(self.audio)


def test_windows_of_streams_due_at_once_share_inferences_and_equal_offline_analysis(tmp_path):
    """Two streams whose windows fall due at the same stream times, driven
    with no wall-clock pacing: every inference call holds windows of both,
    and each stream's values are the offline analysis of its audio."""
    rate, seconds = 16000, 11.0
    paths = [write(tmp_path / f"{name}.wav", chord_music(seconds, rate, 1, seed=seed)[:, 0], rate, subtype="FLOAT")
             for name, seed in (("first", 21), ("second", 22))]
    sources = [Preloaded(path.stem, soundfile.read(path, dtype="float32")[0], rate) for path in paths]
    messages = []
    loop = AnalysisLoop(sources, open_engine("onnxruntime", threads=1), [messages.append], LoopOptions(hop=0.5))
    loop.run()
    emotions = [m for m in messages if m.type == "emotion"]
    calls, i = [], 0
    while i < len(emotions):                     # the sinks get each call's messages together, `batch` of them
        calls.append(emotions[i:i + emotions[i].batch])
        i += emotions[i].batch
    assert len(calls) == loop.batches < len(emotions) / 2
    for call in calls:
        assert {m.batch for m in call} == {len(call)}
        assert sorted(m.stream for m in call) == ["first"] * (len(call) // 2) + ["second"] * (len(call) // 2), \
            [(m.stream, m.t) for m in call]
    for path in paths:
        live = [m for m in emotions if m.stream == path.stem]
        offline = analyze_file(path)
        assert [m.seq for m in live] == list(range(len(offline.valence))) == list(range(windows_in(seconds, 0.5)))
        assert [m.t for m in live] == pytest.approx(list(offline.t_end))
        np.testing.assert_allclose([m.valence_raw for m in live], offline.valence, atol=2e-3)
        np.testing.assert_allclose([m.arousal_raw for m in live], offline.arousal, atol=2e-3)


def test_emotion_messages_carry_their_stages_and_status_adds_the_send():
    """Each emotion message has buffering, frontend, inference, post and
    total; the send itself (publish) cannot be in the message it sends, so
    it is in the status percentiles only, with the others."""
    audio = chord_music(6.0, 16000, 1, seed=23)[:, 0]
    messages = []
    AnalysisLoop([Preloaded("one", audio, 16000)], open_engine("onnxruntime", threads=1), [messages.append],
                 LoopOptions(hop=0.5)).run()
    emotions = [m for m in messages if m.type == "emotion"]
    assert emotions and all(set(m.latency_ms) == {"buffering", "frontend", "inference", "post", "total"}
                            for m in emotions)
    last = [m for m in messages if m.type == "status"][-1]
    assert last.state == "ended"
    for name in ("p50", "p99"):
        assert set(last.latency_ms[name]) == {"buffering", "frontend", "inference", "post", "publish", "total"}
        assert last.latency_ms[name]["publish"] is not None


class FailingPipe:
    """A stream that gives `payload` and then fails, as a pipe whose
    producer died with an I/O error does."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def readinto(self, into) -> int:
        if not self.payload:
            raise OSError(5, "Input/output error")
        n = min(len(into), len(self.payload))
        into[:n] = self.payload[:n]
        self.payload = self.payload[n:]
        return n


def test_a_failing_source_ends_its_own_stream_only():
    """The error a source ends with is the loop's failure even when it
    arrives together with the source's last audio (read in one go), and it
    ends that stream alone: a file analysed beside it goes on to its end."""
    failing = StdinSource(16000, 1, "f32le", stream=FailingPipe(np.zeros(16000 * 5, "<f4").tobytes()))
    failing.name = "pipe"
    failing.start()
    deadline = time.monotonic() + 10
    while not failing._ended:                   # audio and error both in before the loop first reads
        assert time.monotonic() < deadline, "the reader never ended"
        time.sleep(0.01)
    messages = []
    loop = AnalysisLoop([failing, FileSource(demo_path(), realtime=False)], open_engine("onnxruntime", threads=1),
                        [messages.append], LoopOptions())
    loop.run()
    assert len(loop.failures) == 1 and "read failed" in str(loop.failures[0])
    pipe = [m for m in messages if m.stream == "pipe"]
    assert sum(m.type == "emotion" for m in pipe) == windows_in(5, 0.5)       # every window of its 5 s
    assert pipe[-1].type == "status" and pipe[-1].state == "ended"
    assert [m.state for m in pipe if m.type == "status"].count("ended") == 1
    demo = [m for m in messages if m.stream == "demo" and m.type == "emotion"]
    assert demo and demo[-1].t == pytest.approx(loop.streams[1].analyzer.samples // FRAME_HOP / FRAMES_PER_SECOND,
                                                abs=0.5)
