"""`rt-mer listen` as a process: malformed messages reported, a signal ends it
cleanly."""
from __future__ import annotations

import json
import select
import signal
import subprocess
import time

import pytest

from support.processes import CLI
from support.wire import emotion, raw_publisher


def listen_command(*args):
    return subprocess.Popen([*CLI, "listen", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_listen_reports_malformed_messages(endpoint):
    good = emotion("x", 0)
    with raw_publisher(endpoint) as pub:
        process = listen_command(endpoint, "--count", "3", "--timeout", "10")
        try:
            seq = 0
            while process.poll() is None:               # until the subscription is there and 3 arrived
                pub.send_multipart([b"emotion.x", json.dumps({**good, "v": 2}).encode()])
                pub.send_multipart([b"emotion.x", json.dumps(emotion("x", seq)).encode()])
                seq += 1
                time.sleep(0.05)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 0, err
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert len(seqs) == 3 and seqs == sorted(seqs)
    reports = err.strip().splitlines()
    assert reports and all(line.startswith("rt-mer: ") for line in reports), err
    # a bad message came before each of the last two good ones at least
    rejected = int(reports[-1].split()[1])
    assert 2 <= rejected <= 3 and "unsupported schema version 2" in reports[-1], err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_listen_stops_cleanly_on_a_signal(endpoint, signum):
    """As run, dash and osc: what arrived is written, then exit 128 + signal."""
    with raw_publisher(endpoint) as pub:
        process = listen_command(endpoint)
        try:
            seq, lines = 0, []
            while not lines:                            # until the subscription is there and one arrived
                pub.send_multipart([b"emotion.x", json.dumps(emotion("x", seq)).encode()])
                seq += 1
                lines = select.select([process.stdout], [], [], 0.05)[0]
            process.send_signal(signum)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 128 + signum, err
    assert out and all(json.loads(line)["stream"] == "x" for line in out.splitlines())
