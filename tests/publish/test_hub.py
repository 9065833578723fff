"""The hub (rt_mer.publish.hub) with real ZeroMQ sockets in process: prefix
subscriptions, counters, machine names in stream names."""
from __future__ import annotations

import socket
import time

from rt_mer.cli import build_parser, live
from rt_mer.publish import Publisher, Subscriber
from rt_mer.publish.hub import Hub, HubStats

from support.processes import PATIENCE_S, until
from support.wire import endpoints, hub_emotion as emotion


def publish_until_received(publisher, subscriber, stream):
    """Slow joiner: resend until the subscription has reached the publisher
    through the hub; returns the first message received."""
    deadline = time.monotonic() + PATIENCE_S
    seq = 0
    while time.monotonic() < deadline:
        publisher.publish("emotion", stream, emotion(stream, seq))
        seq += 1
        message = subscriber.receive(50)
        if message is not None:
            return message
    raise AssertionError(f"no message of {stream} came through the hub")


def test_prefix_subscriptions_pass_through_the_hub_and_peers_are_counted():
    inbound, outbound = endpoints()
    with Hub(inbound, outbound) as hub:
        hub.start()
        shop_1 = Publisher(inbound, connect=True)
        shop_2 = Publisher(inbound, connect=True)
        with shop_1, shop_2, Subscriber(outbound, topics=("emotion",), prefix="shop-1/") as only_1, \
                Subscriber(outbound, topics=("emotion",)) as everything:
            publish_until_received(shop_1, only_1, "shop-1/line-in")
            publish_until_received(shop_2, everything, "shop-2/line-in")
            for seq in range(100, 110):
                shop_2.publish("emotion", "shop-2/line-in", emotion("shop-2/line-in", seq))
                shop_1.publish("emotion", "shop-1/line-in", emotion("shop-1/line-in", seq))
            got = [only_1.receive(PATIENCE_S * 1000) for _ in range(10)]
            assert [m["stream"] for m in got] == ["shop-1/line-in"] * 10
            assert [m["seq"] for m in got] == list(range(100, 110))
            assert only_1.receive(300) is None            # shop-2 never reached it
            until(lambda: hub.stats.connected == {"in": 2, "out": 2}, "two publishers and two subscribers")
        until(lambda: hub.stats.connected == {"in": 0, "out": 0}, "the peers to be gone")
        until(lambda: hub.stats.total >= 20, "the proxy's counters")      # read every quarter second
        report = hub.stats.report()
        assert report.publishers_seen == 2 and report.subscribers_seen == 2 and report.subscriptions >= 2
        assert "msg/s" in report.line() and "2 seen" in report.line()


def test_the_stats_count_messages_and_subscriptions_and_keep_only_integers():
    stats = HubStats()
    stats.counters(frames_down=2 * 500, frames_up=3)
    first = stats.report()
    assert (first.messages, first.subscriptions, first.total) == (500, 3, 500)
    stats.counters(frames_down=2 * 800, frames_up=3)
    second = stats.report()
    assert (second.messages, second.subscriptions, second.total) == (300, 0, 800)   # per interval, and in all
    assert all(isinstance(value, (int, float)) for value in vars(second).values())


def test_stream_names_carry_the_machine_name_with_a_hub():
    parse = build_parser().parse_args
    host = socket.gethostname().split(".")[0]
    assert live.machine_name(parse(["run", "--hub", "tcp://hub:5557"])) == live.stream_name(host)
    assert live.machine_name(parse(["run", "--hub", "tcp://hub:5557", "--name", "shop-17"])) == "shop-17"
    assert live.machine_name(parse(["run", "--name", "shop-17"])) == "shop-17"
    assert live.machine_name(parse(["run"])) is None                    # alone: names as before
