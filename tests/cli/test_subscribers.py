"""`rt-mer listen` in process (rt_mer.cli.subscribers): JSON lines, its
reports, the topics it forgot."""
from __future__ import annotations

import io
import json
import threading
import time

from rt_mer.cli.subscribers import print_messages
from rt_mer.publish.seqs import MAX_TOPICS

from support.wire import deck_publisher, free_endpoint, raw_publisher, send, status


def test_listen_reports_forgotten_topics():
    endpoint = free_endpoint()
    stop = threading.Event()
    out, errors = io.StringIO(), io.StringIO()
    total = MAX_TOPICS + 50

    def flood():
        with raw_publisher(endpoint) as pub:
            while not stop.is_set():            # until listen is subscribed and has them all
                for i in range(total):
                    send(pub, status(f"s{i}", 0))
                    if i % 200 == 0:
                        time.sleep(0.01)       # within the queues: nothing dropped

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        written = print_messages(endpoint, out=out, errors=errors, count=2 * total, timeout_s=20)
    finally:
        stop.set()
        thread.join(10)
    assert written == 2 * total
    assert "topic(s) forgotten so far" in errors.getvalue(), errors.getvalue()
    assert "malformed" not in errors.getvalue()


def test_listen_writes_json_lines_and_stops(endpoint):
    out = io.StringIO()
    with deck_publisher(endpoint, 0.005, codec="msgpack"):
        assert print_messages(endpoint, out=out, topics=("emotion",), count=5, timeout_s=5) == 5
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    messages = [json.loads(line) for line in lines]
    assert all(m["type"] == "emotion" and m["stream"] == "deck" for m in messages)
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
    # nobody publishing: the timeout ends it
    assert print_messages(free_endpoint(), out=out, timeout_s=0.2) == 0
