"""The per-stream pipeline and the real-time loop under abuse: samples too
large to be audio, a pipe faster than real time, a long run (memory and
seq), and a loop that sleeps while no audio comes."""
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile

from music import chord_music, windows_in, write
from rt_mer.audio import FileSource, PushSource, StdinSource, demo_path
from rt_mer.dsp.frontend import FRAME_HOP, FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_FRAMES
from rt_mer.inference import open_engine
from rt_mer.stream.loop import AnalysisLoop, LoopOptions
from rt_mer.stream.analyzer import StreamAnalyzer
from rt_mer.stream.offline import analyze_file

RUN_STDIN = [sys.executable, "-m", "rt_mer.cli", "run", "--no-dash", "--pub", "inproc://test", "--stdin"]


def strict_jsonl(path):
    """Every line as JSON that refuses NaN and Infinity, as the wire does."""
    def refuse(constant):
        raise ValueError(f"{constant} in {path}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def garbage_inputs():
    """(name, bytes, rate, channels) of input no sound card would give."""
    rng = np.random.default_rng(5)
    music = chord_music(10, 16000, 1, seed=5)[:, 0]
    pcm16 = (np.clip(music, -1, 1) * 32767).astype("<i2").tobytes()
    return [pytest.param(rng.integers(0, 256, 16000 * 4 * 10, dtype=np.uint8).tobytes(), 16000, 1, id="random bytes"),
            pytest.param(pcm16, 8000, 1, id="s16le sent as f32le"),
            pytest.param((music * 1e30).astype("<f4").tobytes(), 16000, 1, id="float audio scaled by 1e30")]


@pytest.mark.parametrize("raw, rate, channels", garbage_inputs())
def test_samples_too_large_to_be_audio_are_counted_and_the_run_goes_on(tmp_path, raw, rate, channels):
    record = tmp_path / "garbage.jsonl"
    result = subprocess.run([*RUN_STDIN, "--rate", str(rate), "--channels", str(channels), "--record", str(record)],
                            input=raw, capture_output=True, timeout=120)
    stderr = result.stderr.decode()
    assert result.returncode == 0 and "Traceback" not in stderr, stderr
    messages = strict_jsonl(record)
    last = messages[-1]
    assert last["type"] == "status" and last["state"] == "ended", last
    assert last["out_of_range"] + last["nonfinite"] > 0           # counted, not silent
    emotions = [m for m in messages if m["type"] == "emotion"]
    assert emotions and [m["seq"] for m in emotions] == list(range(len(emotions)))
    assert all(-1 <= m[key] <= 1 for m in emotions for key in ("valence", "arousal", "valence_raw", "arousal_raw"))
    assert all(-200 <= m["level_dbfs"] <= 200 for m in messages)


def test_a_pipe_faster_than_real_time_is_analysed_whole(tmp_path):
    """A minute of audio piped at full speed: the reader waits for the
    analysis instead of overrunning it, so no window is late or lost."""
    rate = 22050
    music = chord_music(60, rate, 2, seed=21)
    pcm = (np.clip(music, -1, 1) * 32767).astype("<i2")
    reference = analyze_file(write(tmp_path / "same.wav", pcm, rate, subtype="PCM_16"))
    record = tmp_path / "fast.jsonl"
    started = time.monotonic()
    result = subprocess.run([*RUN_STDIN, "--rate", str(rate), "--channels", "2", "--format", "s16le",
                             "--record", str(record)], input=pcm.tobytes(), capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert time.monotonic() - started < 60, "no faster than real time: was the pipe paced?"
    messages = strict_jsonl(record)
    emotions = [m for m in messages if m["type"] == "emotion"]
    last = messages[-1]
    assert last["state"] == "ended" and last["late_windows"] == 0 and last["overflows"] == 0, last
    assert len(emotions) == len(reference.t_end)                 # every window, none skipped
    assert [m["t"] for m in emotions] == pytest.approx(list(reference.t_end))
    assert [m["seq"] for m in emotions] == list(range(len(emotions)))


@pytest.mark.parametrize("rate", [16000, 44100])
def test_each_emotion_message_carries_the_level_of_its_own_hop(tmp_path, rate):
    """10 s of a tone at -9 dBFS RMS, then 10 s at -49, piped at full speed:
    every window's message reads the level of its own hop, not that of a
    status period (which, at full speed, spans many seconds of audio)."""
    tone = np.sin(2 * np.pi * 440 * np.arange(10 * rate) / rate).astype(np.float32)
    pcm = np.concatenate([0.5 * tone, 0.005 * tone])
    record = tmp_path / "levels.jsonl"
    result = subprocess.run([*RUN_STDIN, "--rate", str(rate), "--channels", "1", "--record", str(record)],
                            input=pcm.astype("<f4").tobytes(), capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    emotions = [m for m in strict_jsonl(record) if m["type"] == "emotion"]
    loud = [(m["level_dbfs"], m["peak_dbfs"]) for m in emotions if m["t"] <= 9.0]
    quiet = [(m["level_dbfs"], m["peak_dbfs"]) for m in emotions if m["t"] >= 11.0]
    assert len(loud) >= 10 and len(quiet) >= 10
    assert np.allclose(loud, (-9.03, -6.02), atol=0.5), loud
    assert np.allclose(quiet, (-49.03, -46.02), atol=0.5), quiet


@pytest.mark.parametrize("rate", [44100, 48000])
def test_a_stream_ending_just_short_of_a_hop_still_meters_its_last_window(rate):
    """The resampler's flush completes the window; the input never reached
    the hop's boundary in input samples."""
    analyzer = StreamAnalyzer("x", rate)
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(WINDOW_FRAMES * FRAME_HOP * rate // 16000 - 1) / rate)
    [due] = analyzer.push(tone.astype(np.float32), last=True)
    message = analyzer.emit(due, 0.0, 0.0)
    assert (message.level_dbfs, message.peak_dbfs) == pytest.approx((-9.03, -6.02), abs=0.1)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_a_window_knows_when_its_last_sample_was_captured(rate):
    """A sound card's 20 ms blocks, each stamped with its last sample's
    capture time: a window's `wall` is its own last sample's, whatever the
    resampler holds back, and `buffering` is the audio that came after it."""
    analyzer, block = StreamAnalyzer("x", rate), rate // 50
    music = chord_music(12, rate, 1, seed=3)[:, 0]
    windows = []
    for start in range(0, len(music) - block, block):
        captured = (start + block) / rate                       # the block's last sample
        windows += [(due, captured) for due in analyzer.push(music[start:start + block], capture_time=captured)]
    assert len(windows) >= 10
    for due, captured in windows:
        assert due.wall == pytest.approx(due.end * FRAME_HOP / 16000, abs=1 / rate)
        assert due.buffering == pytest.approx(captured - due.wall)
        assert 0 <= due.buffering < 0.1 and due.frontend > 0


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


