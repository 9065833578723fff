"""Sequence numbers per topic (rt_mer.publish.seqs): gaps counted as missed,
a seq far ahead a restart, the table held at its cap."""
from __future__ import annotations

from rt_mer.publish import Publisher, Subscriber
from rt_mer.publish.seqs import MAX_TOPICS

from support.wire import emotion, free_endpoint, handshake, publisher_sender, raw_publisher, send, status


def test_seq_gaps_count_missed_messages_per_topic(endpoint):
    with Publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(publisher_sender(pub), sub)
        plan = [("emotion", "a", s) for s in (0, 1, 2, 5, 6, 10)] + \
               [("status", "a", s) for s in (0, 1, 3)] + [("emotion", "b", s) for s in (7, 8, 9)]
        for kind, stream, seq in plan:
            pub.publish(kind, stream, (emotion if kind == "emotion" else status)(stream, seq))
        got = [sub.receive(2000) for _ in plan]
        assert all(got)
        assert sub.missed == (2 + 3) + 1                # a late join (b starts at 7) is no gap
        pub.publish("emotion", "a", emotion("a", 0))    # the publisher restarted
        pub.publish("emotion", "a", emotion("a", 1))
        assert sub.receive(2000)["seq"] == 0 and sub.receive(2000)["seq"] == 1
        assert sub.missed == 6


def test_seq_far_ahead_is_a_restart_not_a_loss(endpoint):
    """A seq further ahead than the stream or wall time since the previous
    message allows (a new publisher, a bogus message) is not a loss."""
    with Publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(publisher_sender(pub), sub)
        for seq in (0, 1):
            pub.publish("emotion", "a", emotion("a", seq))
        far = 10 ** 6
        for seq in (far, far + 1, far + 3):             # stream time goes on by one hop per seq
            pub.publish("emotion", "a", emotion("a", seq, t=0.5 * (seq - far + 2), wall=1.7e9 + seq - far + 2,
                                                valence=0.1))
        assert [sub.receive(2000)["seq"] for _ in range(5)] == [0, 1, far, far + 1, far + 3]
        assert sub.missed == 1
        # a real loss of many messages is still one: stream time shows they were sent
        pub.publish("emotion", "a", emotion("a", far + 1003, t=0.5 * 1005, valence=0.1))
        assert sub.receive(2000)["seq"] == far + 1003 and sub.missed == 1 + 999


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
