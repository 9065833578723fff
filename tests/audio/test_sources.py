"""Live audio sources (rt_mer.audio.sources, rt_mer.audio.ring): the ring
buffer, a real PortAudio capture from a virtual device, files paced as if
live, raw PCM on a pipe, the demo."""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest
import soundfile

from rt_mer.audio import (AudioError, DemoSource, FileSource, MicSource, RingBuffer, Source, StdinSource,
                          find_input_device)

from support.music import chord_music, cut_short, write


def ramp(frames: int, channels: int, start: int = 0) -> np.ndarray:
    """Frames numbered start.. in channel 0, negated in channel 1 ..."""
    index = np.arange(start, start + frames, dtype=np.float32)[:, None]
    return index * np.array([1, -1, 10][:channels], np.float32)


def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def drain(source, seconds: float = 10.0) -> np.ndarray:
    """Everything `source` delivers until it finishes."""
    chunks, deadline = [], time.monotonic() + seconds
    while not source.finished:
        assert time.monotonic() < deadline, "source never finished"
        chunks.append(source.read()[0])
        time.sleep(0.01)
    return np.concatenate(chunks)


def test_ring_wraps_around_and_returns_everything_in_order():
    ring = RingBuffer(10, 2)
    got, written = [], 0
    for size in (3, 4, 5, 7, 2, 9, 1, 10):      # crosses the end of the ring many times
        ring.write(ramp(size, 2, written))
        written += size
        data, end = ring.read()
        assert end == written
        got.append(data)
    np.testing.assert_array_equal(np.concatenate(got), ramp(written, 2))
    assert ring.overflows == 0
    assert ring.read()[0].shape == (0, 2)


def test_ring_overflow_loses_the_oldest_frames_and_counts_them():
    ring = RingBuffer(10, 1)
    for start in range(0, 25, 5):               # 25 frames, nobody reading
        ring.write(ramp(5, 1, start))
    assert ring.overflows == 15                 # counted before the consumer looks
    data, end = ring.read()
    np.testing.assert_array_equal(data, ramp(10, 1, 15))
    assert end == 25 and ring.overflows == 15
    ring.write(ramp(23, 1, 25))                 # a block longer than the ring keeps its tail
    data, _ = ring.read()
    np.testing.assert_array_equal(data, ramp(10, 1, 38))
    assert ring.overflows == 28


def test_ring_between_two_threads_never_returns_torn_frames():
    # A tiny ring, small blocks and a thread switch every microsecond make the
    # writer lap the reader mid-copy; without read's check this test fails.
    ring = RingBuffer(300, 1)
    total = 7 * 30_000

    def produce():
        for start in range(0, total, 7):
            ring.write(ramp(7, 1, start))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        writer = threading.Thread(target=produce)
        writer.start()
        taken = 0
        while writer.is_alive() or ring.available:
            data, end = ring.read()             # frame i holds the value i: a torn copy would show
            np.testing.assert_array_equal(data[:, 0], np.arange(end - len(data), end, dtype=np.float32))
            taken += len(data)
        writer.join()
    finally:
        sys.setswitchinterval(interval)
    assert taken + ring.overflows == total
    assert 0 < ring.overflows < total


def test_ring_writes_selected_columns():
    ring = RingBuffer(8, 2)
    block = np.arange(24, dtype=np.float32).reshape(6, 4)
    ring.write(block, columns=np.array([3, 1], np.intp))
    ring.write(block, columns=np.array([3, 1], np.intp))       # wraps
    data, _ = ring.read()
    np.testing.assert_array_equal(data, np.concatenate([block, block])[4:, [3, 1]])


def test_ring_zeroes_and_counts_nonfinite_blocks():
    ring = RingBuffer(16, 1)
    block = np.ones((4, 1), np.float32)
    ring.write(block)
    bad = block.copy()
    bad[1] = np.nan
    bad[3] = -np.inf
    ring.write(bad)
    ring.write(block)
    data, _ = ring.read()
    np.testing.assert_array_equal(data[:, 0], [1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1])
    assert ring.nonfinite == 1


def test_ring_zeroes_and_counts_blocks_too_large_to_be_audio():
    ring = RingBuffer(16, 1)
    block = np.full((4, 1), 0.5, np.float32)
    huge = block.copy()
    huge[2] = 1e30                              # finite, but its square overflows float32
    for written in (block, huge, block):
        ring.write(written)
    data, _ = ring.read()
    np.testing.assert_array_equal(data[:, 0], [0.5] * 4 + [0] * 4 + [0.5] * 4)
    assert ring.out_of_range == 1 and ring.nonfinite == 0


def test_ring_holds_back_a_producer_that_can_wait_and_wakes_the_consumer():
    ring = RingBuffer(100, 1)
    stop = threading.Event()
    total = 1000

    def produce():
        for start in range(0, total, 30):
            assert ring.wait_for_room(30, stop)
            ring.write(ramp(min(30, total - start), 1, start))

    writer = threading.Thread(target=produce)
    writer.start()
    taken = []
    while sum(map(len, taken)) < total:
        ring.wakeup.clear()                     # clear, then look: a write after this sets it again
        if not ring.available:
            assert ring.wakeup.wait(10), "the producer never signalled"
        taken.append(ring.read(max_frames=40)[0])
        assert len(taken[-1]) <= 40
    writer.join()
    np.testing.assert_array_equal(np.concatenate(taken)[:, 0], np.arange(total))
    assert ring.overflows == 0
    stop.set()
    ring.write(ramp(100, 1))
    assert not ring.wait_for_room(1, stop)     # a full ring and a stop: the producer gives up at once


def test_ring_capture_times_of_any_recent_frame():
    ring = RingBuffer(1000, 1, marks=4)
    rate = 100.0
    for block in range(6):                      # block k's last frame captured at 10 + k/10 s
        ring.write(np.zeros((10, 1), np.float32), capture_time=10.0 + block / 10)
    assert ring.capture_time(59, rate) == pytest.approx(10.5)
    assert ring.capture_time(50, rate) == pytest.approx(10.41)
    assert ring.capture_time(29, rate) == pytest.approx(10.2)
    # Block 0's mark was overwritten (4 marks): stepped back from the next one.
    assert ring.capture_time(0, rate) == pytest.approx(9.91)
    assert ring.capture_time(60, rate) is None  # not written yet
    ring.write(np.zeros((10, 1), np.float32))   # no time known
    assert ring.capture_time(65, rate) is None


def test_mic_captures_a_tone_played_into_the_virtual_device(virtual_audio, tmp_path):
    rate, seconds = 48000, 2.0
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.25 * np.sin(2 * np.pi * 440 * t) + 0.125 * np.sin(2 * np.pi * 1250 * t)
    soundfile.write(tmp_path / "tone.wav", np.stack([tone, tone], axis=1).astype(np.float32), rate)
    mic = MicSource(device="pulse", rate=rate, channels=[2], name="line")
    assert isinstance(mic, Source) and mic.channels == 1 and mic.rate == rate
    chunks, stamps = [], []
    mic.start()
    try:
        # The ALSA pulse plugin can take a while to deliver the first block.
        wait_until(lambda: chunks.append(mic.read()[0]) or sum(map(len, chunks)) > 0)
        player = virtual_audio.play(tmp_path / "tone.wav")
        deadline = time.monotonic() + 15
        while player.poll() is None or len(chunks) < 10:
            assert time.monotonic() < deadline, "paplay never finished"
            time.sleep(0.1)
            data, stamp = mic.read()
            chunks.append(data)
            if stamp is not None:
                stamps.append((stamp, time.time()))
        assert player.returncode == 0, player.stderr.read()
        time.sleep(0.5)
        chunks.append(mic.read()[0])
        counters = mic.counters
    finally:
        mic.stop()
        mic.stop()                              # idempotent
    audio = np.concatenate(chunks)
    loud = audio[np.argmax(np.abs(audio) > 0.05):][: int(1.5 * rate)]
    assert len(loud) == int(1.5 * rate), "the tone never arrived in full"
    spectrum = np.abs(np.fft.rfft(loud * np.hanning(len(loud))))
    freqs = np.fft.rfftfreq(len(loud), 1 / rate)
    assert freqs[np.argmax(spectrum)] == pytest.approx(440, abs=2)
    second = spectrum * (np.abs(freqs - 440) > 50)
    assert freqs[np.argmax(second)] == pytest.approx(1250, abs=2)
    rms_db = 20 * np.log10(np.sqrt(np.mean(loud ** 2)))
    expected_db = 20 * np.log10(np.sqrt(0.25 ** 2 / 2 + 0.125 ** 2 / 2))     # -14.5 dBFS
    assert rms_db == pytest.approx(expected_db, abs=3)
    assert counters["overflows"] == 0 and counters["dropped_blocks"] == 0 and counters["nonfinite"] == 0
    # Capture times are wall times, a little before the moment we read them.
    assert stamps and all(-0.1 < now - stamp < 2.0 for stamp, now in stamps)


def test_unknown_device_is_a_clear_error():
    pytest.importorskip("sounddevice", exc_type=OSError)
    with pytest.raises(AudioError, match="no input device matches 'no such card'; run rt-mer devices"):
        MicSource(device="no such card")
    with pytest.raises(AudioError, match="run rt-mer devices"):
        find_input_device(987)


def test_refused_rate_and_channels_are_clear_errors(virtual_audio):
    with pytest.raises(AudioError, match="refuses 1000000 Hz"):
        MicSource(device="pulse", rate=1_000_000)
    with pytest.raises(AudioError, match="not available"):
        MicSource(device="pulse", channels=[999])


def test_file_source_is_paced_at_real_time_and_finishes(tmp_path):
    rate = 16000
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (2 * rate, 2)).astype(np.float32)
    soundfile.write(tmp_path / "noise.wav", audio, rate, subtype="FLOAT")
    source = FileSource(tmp_path / "noise.wav")
    assert source.name == "noise" and source.rate == rate and source.channels == 2
    started = time.monotonic()
    source.start()
    time.sleep(0.5)
    early, stamp = source.read()
    elapsed = time.monotonic() - started
    assert 0 < len(early) < (elapsed + 0.5) * rate, "the file arrived faster than real time"
    assert not source.finished
    assert stamp == pytest.approx(time.time(), abs=0.5)
    rest = drain(source)
    source.stop()
    np.testing.assert_allclose(np.concatenate([early, rest]), audio.mean(axis=1), atol=1e-6)
    assert time.monotonic() - started > 1.5
    assert source.counters == {"overflows": 0, "dropped_blocks": 0, "underruns": 0, "nonfinite": 0,
                               "out_of_range": 0, "truncated": 0}


def test_file_source_loops(tmp_path):
    soundfile.write(tmp_path / "short.wav", np.arange(100, dtype=np.float32) / 100, 8000, subtype="FLOAT")
    source = FileSource(tmp_path / "short.wav", realtime=False, loop=True)
    source.start()
    chunks = []
    wait_until(lambda: chunks.append(source.read()[0]) or sum(map(len, chunks)) >= 1000)
    assert not source.finished                      # ten times through and still going
    source.stop()
    np.testing.assert_allclose(np.concatenate(chunks)[:1000], np.tile(np.arange(100) / 100, 10), atol=1e-6)


@pytest.mark.parametrize("suffix", [".flac", ".mp3"])
def test_a_truncated_file_ends_its_stream_and_is_counted(tmp_path, suffix):
    rate = 16000
    whole = write(tmp_path / f"whole{suffix}", chord_music(6, rate, 2, seed=5), rate)
    expected = soundfile.read(whole, dtype="float32")[0].mean(axis=1)
    for path, truncated in ((whole, 0), (cut_short(whole, 0.5), 1)):
        source = FileSource(path, realtime=False)
        source.start()
        audio = drain(source)                       # no AudioError: what decodes is delivered
        source.stop()
        assert source.counters["truncated"] == truncated, path
        if truncated:
            assert 0.3 * len(expected) < len(audio) < 0.7 * len(expected)
        else:
            assert len(audio) == len(expected)
        if suffix == ".flac":     # libsndfile 1.2's MP3 decoder gives other samples when read in blocks
            np.testing.assert_allclose(audio, expected[:len(audio)], atol=1e-6)


def test_bad_files_fail_at_construction(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        FileSource(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(AudioError, match="not a readable audio file"):
        FileSource(tmp_path / "junk.wav")


@pytest.mark.timeout(30)            # a regression waits for a writer that never comes: fail, not hang
def test_what_is_not_a_regular_file_is_named_not_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(AudioError, match=r"pipe\.wav: a FIFO \(named pipe\), not a regular file"):
        FileSource(tmp_path / "pipe.wav")
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(AudioError, match=r"folder\.wav: a directory, not a regular file"):
        FileSource(tmp_path / "folder.wav")
    with pytest.raises(AudioError, match=r"/dev/zero: a character device, not a regular file"):
        FileSource("/dev/zero")


def pipe_source(payload: bytes, **kwargs) -> StdinSource:
    """A StdinSource reading `payload` from a real pipe, written by a thread
    and then closed."""
    read_fd, write_fd = os.pipe()

    def feed():
        with os.fdopen(write_fd, "wb") as writer:
            for start in range(0, len(payload), 1000):   # in pieces that split frames
                writer.write(payload[start:start + 1000])
                writer.flush()

    threading.Thread(target=feed, daemon=True).start()
    source = StdinSource(stream=os.fdopen(read_fd, "rb"), **kwargs)
    source.start()
    return source


def s24le(values: np.ndarray) -> bytes:
    return b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)


@pytest.mark.parametrize("fmt, encode, scale", [
    ("f32le", lambda v: (v / 2**23).astype("<f4").tobytes(), 2**23),
    ("s16le", lambda v: (v // 2**8).astype("<i2").tobytes(), 2**15),
    ("s24le", s24le, 2**23),
])
def test_stdin_source_decodes_each_format(fmt, encode, scale):
    rng = np.random.default_rng(1)
    values = rng.integers(-2**23, 2**23, 3000)
    values[:4] = (-2**23, 2**23 - 1, 0, -1)                     # extremes and sign extension
    left, right = values[0::2], values[1::2]
    source = pipe_source(encode(values) + b"\x01\x02", rate=8000, channels=2, fmt=fmt)   # 2 stray bytes
    assert source.channels == 2 and source.rate == 8000
    got = drain(source)
    source.stop()
    if fmt == "s16le":
        left, right = left // 2**8, right // 2**8
    np.testing.assert_allclose(got, (left + right) / 2 / scale, atol=2e-7)
    assert source.counters["truncated_bytes"] == 2
    assert source.counters["nonfinite"] == 0


def test_stdin_nonfinite_samples_are_zeroed_and_counted():
    samples = np.full(1000, 0.5, np.float32)
    samples[[10, 500]] = (np.nan, np.inf)
    source = pipe_source(samples.astype("<f4").tobytes(), rate=16000, fmt="f32le")
    got = drain(source)
    source.stop()
    expected = np.where(np.isfinite(samples), samples, 0)
    np.testing.assert_array_equal(got, expected)
    assert 1 <= source.counters["nonfinite"] <= 2        # one or two blocks, as the pipe delivered them
    assert source.counters["truncated_bytes"] == 0


def test_stdin_samples_too_large_to_be_audio_are_zeroed_and_counted():
    samples = np.full(1000, 0.5, np.float32)
    samples[500] = 3e38
    source = pipe_source(samples.astype("<f4").tobytes(), rate=16000, fmt="f32le")
    got = drain(source)
    source.stop()
    assert np.isfinite(got).all() and np.abs(got).max() <= 0.5
    assert 1 <= source.counters["out_of_range"] <= 2 and source.counters["nonfinite"] == 0


@pytest.mark.parametrize("kwargs", [dict(rate=16000, fmt="u8"), dict(rate=0), dict(rate=16000, channels=0),
                                    dict(rate=44100.5)])
def test_stdin_refuses_unsupported_settings(kwargs):
    with pytest.raises(AudioError, match="unsupported"):
        StdinSource(**kwargs)


def test_demo_plays_music_in_a_loop():
    demo = DemoSource()
    assert demo.name == "demo" and demo.rate == 22050 and demo.channels == 1
    demo.start()
    time.sleep(1.0)
    audio, stamp = demo.read()
    demo.stop()
    assert 0.5 * demo.rate < len(audio) < 2.0 * demo.rate
    assert np.sqrt(np.mean(audio ** 2)) > 0.01
    assert stamp is not None and not demo.finished
