"""The programs that read a stream (rt_mer.cli.subscribers) and the one
subscriber loop they share (rt_mer.publish.loop), over real sockets on
127.0.0.1. Every wait has a timeout, so nothing hangs."""
import io
import json
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from rt_mer.cli.subscribers import print_messages
from rt_mer.publish import Publisher, Subscriber
from rt_mer.publish.loop import REPORT_SECONDS, CountReport, receive_until
from wire import emotion, free_endpoint, handshake, raw_publisher, status


@pytest.fixture
def endpoint():
    return free_endpoint()


# ------------------------------------------------------------------ the loop

def test_the_loop_hands_on_each_message_until_the_handler_says_stop(endpoint):
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as subscriber:
        handshake(pub.send_multipart, subscriber)
        for seq in range(5):
            pub.send_multipart([b"emotion.x", json.dumps(emotion("x", seq)).encode()])
        seen, reports = [], []

        def handle(message):
            seen.append(message["seq"])
            return len(seen) < 3
        receive_until(subscriber, handle, threading.Event(), timeout_s=10, report=lambda: reports.append(1))
    assert seen == [0, 1, 2]
    assert reports == [1]                   # once at the end; the run took far less than REPORT_SECONDS


def test_the_loop_ends_on_its_stop_event_and_on_silence(endpoint):
    with Subscriber(endpoint) as subscriber:
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        receive_until(subscriber, lambda message: None, stop, poll_s=0.05)
        assert stop.is_set() and time.monotonic() - started < 10
        started = time.monotonic()
        receive_until(subscriber, lambda message: None, threading.Event(), timeout_s=0.2)
        assert 0.2 <= time.monotonic() - started < 10


def test_the_loop_reports_at_most_once_a_second_and_at_the_end(endpoint):
    """Rejected messages arrive all the time; the report comes once a
    second, however many arrive, and once more at the end."""
    errors = io.StringIO()
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as subscriber:
        handshake(pub.send_multipart, subscriber)
        stop = threading.Event()
        reports = []
        report = CountReport(subscriber, errors)

        def counted():
            reports.append(time.monotonic())
            report()

        def send_bad():
            while not stop.is_set():
                pub.send_multipart([b"emotion.x", b"not json"])
                time.sleep(0.01)
        sender = threading.Thread(target=send_bad)
        sender.start()
        threading.Timer(2.5, stop.set).start()
        try:
            receive_until(subscriber, lambda message: None, stop, report=counted, poll_s=0.05)
        finally:
            stop.set()
            sender.join(5)
    gaps = [b - a for a, b in zip(reports, reports[1:-1])]      # the last one is the end's
    assert 2 <= len(reports) and all(gap >= REPORT_SECONDS for gap in gaps)
    lines = errors.getvalue().splitlines()
    assert lines and all("malformed message(s) rejected so far" in line for line in lines)
    assert len(lines) <= len(reports)                           # a line only where the count grew
    assert int(lines[-1].split()[1]) == subscriber.rejected


# ------------------------------------------------------------- rt-mer listen

def listen_command(*args):
    return subprocess.Popen([sys.executable, "-m", "rt_mer.cli", "listen", *args],
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


def test_listen_writes_json_lines_and_stops(endpoint):
    stop = threading.Event()

    def publish_until_stopped():
        with Publisher(endpoint, codec="msgpack") as pub:
            seq = 0
            while not stop.is_set():
                pub.publish("emotion", "deck", emotion("deck", seq))
                pub.publish("status", "deck", status("deck", seq))
                seq += 1
                time.sleep(0.005)

    thread = threading.Thread(target=publish_until_stopped)
    thread.start()
    try:
        out = io.StringIO()
        assert print_messages(endpoint, out=out, topics=("emotion",), count=5, timeout_s=5) == 5
    finally:
        stop.set()
        thread.join(5)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    messages = [json.loads(line) for line in lines]
    assert all(m["type"] == "emotion" and m["stream"] == "deck" for m in messages)
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
    # nobody publishing: the timeout ends it
    assert print_messages(free_endpoint(), out=out, timeout_s=0.2) == 0


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


