"""The one subscriber loop (rt_mer.publish.loop) over real sockets: hands on
each message, stops on its event or on silence, reports at most once a
second."""
from __future__ import annotations

import io
import json
import threading
import time

from rt_mer.publish import Subscriber
from rt_mer.publish.loop import REPORT_SECONDS, CountReport, receive_until

from support.wire import emotion, handshake, raw_publisher


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
