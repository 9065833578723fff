"""What a hostile or careless publisher can cost a subscriber, over real
sockets: stream names without end hold every per-topic table at its cap
(least recently seen forgotten, counted), and a frame over the size limit
is counted as rejected without losing the message after it."""
import io
import json
import threading
import time

from rich.console import Console

from rt_mer.cli.subscribers import print_messages
from rt_mer.publish import Subscriber
from rt_mer.publish.seqs import MAX_TOPICS
from rt_mer.publish.sockets import MAX_FRAME_BYTES
from rt_mer.ui import DashboardState, dash
from rt_mer.ui.dashboard import MAX_STREAMS
from wire import emotion, free_endpoint, handshake, raw_publisher, status


def send(pub, message):
    pub.send_multipart([f"{message['type']}.{message['stream']}".encode(), json.dumps(message).encode()])


def receive_all(sub, count):
    got = [sub.receive(5000) for _ in range(count)]
    assert all(got), "a message sent was not received"
    return got


def test_stream_names_without_end_hold_the_seq_table_at_its_cap():
    endpoint = free_endpoint()
    names = MAX_TOPICS + 2000
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(pub.send_multipart, sub)
        base = len(sub.seqs)                       # the handshake's probe topic
        send(pub, emotion("old", 0))
        receive_all(sub, 1)
        live_seq, skipped = 0, 0
        for start in range(0, names, 250):        # in batches the queues hold: every message arrives
            for i in range(start, min(names, start + 250)):
                send(pub, status(f"flood-{i:06d}-" + "n" * 100, 0))       # long names, within MAX_STREAM_CHARS
            live_seq += 2                          # one live message lost per batch: a gap of one
            skipped += 1
            send(pub, emotion("live", live_seq))
            receive_all(sub, min(names, start + 250) - start + 1)
            assert len(sub.seqs) <= MAX_TOPICS
        assert len(sub.seqs) == MAX_TOPICS
        assert sub.forgotten == base + 2 + names - MAX_TOPICS    # probe, "old" and the first floods
        assert sub.missed == skipped - 1           # the live topic's first message is no gap
        # "old" was forgotten: its gap goes uncounted, as for a topic never seen
        send(pub, emotion("old", 5, t=2.5))
        assert receive_all(sub, 1)[0]["seq"] == 5 and sub.missed == skipped - 1
        assert sub.rejected == 0


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


def test_dashboard_holds_at_most_max_streams_and_says_how_many_it_forgot():
    endpoint, stop = free_endpoint(), threading.Event()
    console = Console(record=True, width=100, height=30, force_terminal=True, color_system=None, file=io.StringIO())
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(pub.send_multipart, sub, stream="first")
        state = DashboardState()
        thread = threading.Thread(target=dash, args=(sub, stop, 15.0), kwargs={"console": console, "state": state})
        thread.start()
        try:
            names = 20 * MAX_STREAMS
            for i in range(names):
                send(pub, status(f"deck{i}", 0))
                if i % 100 == 0:
                    time.sleep(0.02)
            note = f"{names - MAX_STREAMS} streams forgotten"
            deadline = time.monotonic() + 20
            while note not in console.export_text(clear=False) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert note in console.export_text(clear=False)
            assert state.forgotten == names - MAX_STREAMS and len(state.snapshot()) == MAX_STREAMS
            assert [v.name for v in state.snapshot()][-1] == f"deck{names - 1}"
        finally:
            stop.set()
            thread.join(10)


def test_dashboard_keeps_panel_order_and_forgets_the_least_recently_seen():
    state = DashboardState(max_streams=3)
    for name in ("a", "b", "c"):
        state.update(status(name, 0))
    state.update(status("a", 1))                 # "b" is now the least recently seen
    state.update(status("d", 0))
    assert [v.name for v in state.snapshot()] == ["a", "c", "d"] and state.forgotten == 1
    state.update(emotion("a", 0))
    state.update(emotion("a", 3, t=1.5))
    assert state.snapshot()[0].missed == 2        # the seq check works on a kept stream


def test_oversize_frames_are_counted_and_lose_nothing_else():
    endpoint = free_endpoint()
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(pub.send_multipart, sub)
        for seq, frames in enumerate([
                [b"emotion.x", b"{" + b" " * 70_000],                  # just over the payload limit
                [b"emotion.x", b"{" + b" " * 10_000_000],              # 10 MB
                [b"emotion.x" + b"x" * 70_000, json.dumps(emotion("x", 0)).encode()],   # an oversize topic
                [b"emotion.x", b"{" + b" " * (MAX_FRAME_BYTES - 100)]]):                # at the limit
            pub.send_multipart(frames)
            pub.send_multipart([b"emotion.x", json.dumps(emotion("x", seq)).encode()])
            assert sub.receive(5000) == emotion("x", seq)
            assert sub.rejected == seq + 1 and "exceeds 65536" in sub.last_rejection
        assert sub.reconnects == 0 and sub.missed == 0


def test_frame_beyond_max_frame_bytes_costs_a_reconnect_not_memory():
    endpoint = free_endpoint()
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(pub.send_multipart, sub)
        pub.send_multipart([b"emotion.x", b"{" + b" " * MAX_FRAME_BYTES], copy=False)
        # libzmq drops the connection rather than buffering it; the subscriber reconnects.
        handshake(pub.send_multipart, sub, stream="again")
        pub.send_multipart([b"emotion.x", json.dumps(emotion("x", 0)).encode()])
        assert sub.receive(3000) == emotion("x", 0)
        assert sub.reconnects >= 1
