"""A file named with control characters: what rt-mer prints shows them
escaped, what it publishes passes its own subscribers' checks, and its own
recording plots."""
from __future__ import annotations

import subprocess
import threading

import pytest

from rt_mer.publish import Subscriber, decode
from rt_mer.text import printable

from support.files import HOSTILE, SHOWN
from support.music import chord_music, write
from support.processes import CLI
from support.wire import free_endpoint


def rt_mer(*args, timeout=120):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def assert_printable_lines(text):
    """Every line of `text` is printable: no escape sequence reached the terminal."""
    assert all(line.isprintable() for line in text.splitlines()), repr(text)


@pytest.mark.slow
def test_a_file_named_with_control_characters_runs_publishes_records_and_plots(tmp_path):
    song = write(tmp_path / f"{HOSTILE}.wav", chord_music(5, 16000, 1, seed=31), 16000)
    record, endpoint = tmp_path / "run.jsonl", free_endpoint()
    received, done = [], threading.Event()
    with Subscriber(endpoint, topics=("status",)) as subscriber:
        def collect():                              # until the "ended" status
            while not done.is_set():
                message = subscriber.receive(200)
                if message is not None:
                    received.append(message)
                    if message["state"] == "ended":
                        return

        thread = threading.Thread(target=collect)
        thread.start()
        try:
            result = rt_mer("run", "--no-dash", "--file", song, "--record", record, "--pub", endpoint)
            thread.join(10)
        finally:
            done.set()
            thread.join()
        assert result.returncode == 0, result.stderr
        assert_printable_lines(result.stderr)
        assert f"rt-mer: {SHOWN}.wav, 16000 Hz, 1 channel -> " in result.stderr.splitlines()[0]     # the start line
        # our own status messages pass our own subscriber's checks
        assert received and received[-1]["state"] == "ended", result.stderr
        assert subscriber.rejected == 0, subscriber.last_rejection
        assert all(m["source"].startswith(f"{SHOWN}.wav") for m in received)
    lines = record.read_text().splitlines()
    assert any('"emotion"' in line for line in lines)
    for line in lines:
        decode(line.encode())                       # the recording passes the schema, as plot reads it
    image = tmp_path / "run.png"
    plotted = rt_mer("plot", record, "-o", image)
    assert plotted.returncode == 0 and image.stat().st_size > 0, plotted.stderr
    assert_printable_lines(plotted.stdout + plotted.stderr)


def test_error_lines_show_control_characters_escaped(tmp_path):
    bad = tmp_path / f"{HOSTILE}.wav"
    bad.write_bytes(b"not audio at all")
    result = rt_mer("analyze", "--quiet", bad)
    assert result.returncode == 1, result.stderr
    assert_printable_lines(result.stderr)
    assert f"rt-mer: error: {printable(str(bad))}: not a readable audio file" in result.stderr
    # fail(): one line, escaped
    missing = rt_mer("run", "--no-dash", "--file", tmp_path / f"gone{HOSTILE}.wav", "--pub", free_endpoint())
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(lines) == 1, missing.stderr
    assert lines[0] == f"rt-mer: error: {printable(str(tmp_path))}/gone{SHOWN}.wav: no such file"
