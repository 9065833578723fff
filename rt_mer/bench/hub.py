"""`rt-mer bench hub`: the hub's throughput on loopback TCP against a direct
PUB -> SUB baseline, measured in the same run.

Three publisher processes send real emotion payloads (JSON, as `rt-mer run`
sends them) as fast as they can; one subscriber process counts what arrives,
without decoding: this measures the transport, what the hub adds to it, not
a subscriber's parsing. The hub is the real `Hub` (proxy and counters) in
this process. Rates are messages delivered per second, first to last;
`lost` is what PUB dropped at its high-water marks (a sender faster than
the path).
"""
from __future__ import annotations

import multiprocessing
import socket
import time

import zmq

from ..publish.hub import Hub
from ..messages import EmotionMessage
from ..publish.schema import encode, topic

PUBLISHERS = 3
MESSAGES = 200_000                # per publisher
HWM = 100_000
SUBSCRIBED_S = 60                # at most this long for the subscription to reach a publisher
IDLE_S = 2.0                      # the subscriber stops after this long without a message
END = b"end"


def _payload(stream: str) -> bytes:
    message = EmotionMessage(stream=stream, seq=123456, t=1234.5, wall=1.7e9, valence=0.1234, arousal=-0.4321,
                             valence_raw=0.2, arousal_raw=-0.5, quadrant=4, mood="calm", level_dbfs=-20.0,
                             peak_dbfs=-3.0, engine="onnxruntime",
                             latency_ms={"buffering": 1.0, "frontend": 2.0, "inference": 6.0, "post": 0.1,
                                         "total": 9.1})
    return encode(message.to_dict())


def _publish(endpoint: str, connect: bool, stream: str, count: int, ready, go) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)        # a PUB that shows its subscriptions: start once one came
    pub.setsockopt(zmq.SNDHWM, HWM)
    pub.setsockopt(zmq.LINGER, 5000)
    (pub.connect if connect else pub.bind)(endpoint)
    frames = [topic("emotion", stream), _payload(stream)]
    if pub.poll(SUBSCRIBED_S * 1000):
        pub.recv()
    ready.release()
    go.wait()
    for _ in range(count):
        pub.send_multipart(frames)
    for _ in range(100):              # the end marker: PUB may drop one, not a hundred
        pub.send_multipart([topic("emotion", stream), END])
    pub.close()
    context.term()


def _subscribe(endpoints: list[str], publishers: int, result, ready) -> None:
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, HWM)
    sub.setsockopt(zmq.SUBSCRIBE, b"emotion.")
    for endpoint in endpoints:
        sub.connect(endpoint)
    ready.release()
    received, ended, first, last = 0, set(), None, None
    while len(ended) < publishers and sub.poll((IDLE_S if first else SUBSCRIBED_S) * 1000):
        first = first or time.perf_counter()
        while True:                   # drain without a poll per message: the receiver is the bottleneck
            try:
                name = sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if sub.recv(zmq.NOBLOCK) == END:
                ended.add(name)
            else:
                received += 1
        last = time.perf_counter()
    result.put((received, (last - first) if first and last else 0.0))
    sub.close()
    context.term()


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _measure(publish_to: list[str], connect: bool, subscribe_to: list[str], count: int) -> dict:
    spawn = multiprocessing.get_context("spawn")
    ready, go, result = spawn.Semaphore(0), spawn.Event(), spawn.Queue()
    subscriber = spawn.Process(target=_subscribe, args=(subscribe_to, PUBLISHERS, result, ready))
    subscriber.start()
    ready.acquire()                   # subscribed first: every publisher then waits for its subscription
    publishers = [spawn.Process(target=_publish, args=(publish_to[i % len(publish_to)], connect,
                                                       f"bench-{i}/line-in", count, ready, go))
                  for i in range(PUBLISHERS)]
    for process in publishers:
        process.start()
    for _ in range(PUBLISHERS):
        ready.acquire()
    go.set()
    received, seconds = result.get()
    for process in [*publishers, subscriber]:
        process.join()
    sent = count * PUBLISHERS
    return {"received": received, "seconds": seconds, "rate": received / seconds if seconds else 0.0,
            "lost": sent - received}


def bench_hub(count: int = MESSAGES) -> dict:
    """{"direct": {...}, "hub": {...}, "ratio": hub rate / direct rate}."""
    direct = [_free_endpoint() for _ in range(PUBLISHERS)]
    baseline = _measure(direct, False, direct, count)
    inbound, outbound = _free_endpoint(), _free_endpoint()
    with Hub(inbound, outbound) as hub:
        hub.start()
        through = _measure([inbound], True, [outbound], count)
    return {"direct": baseline, "hub": through,
            "ratio": through["rate"] / baseline["rate"] if baseline["rate"] else 0.0}


def hub_lines(result: dict) -> list[str]:
    lines = []
    for label, key in (("direct PUB->SUB (3 publishers)", "direct"), ("through the hub (3 publishers)", "hub")):
        r = result[key]
        outran = ": the senders outran the subscriber" if r["lost"] else ""
        lines.append(f"{label}: {r['rate']:,.0f} messages/s ({r['received']:,} in {r['seconds']:.2f} s, "
                     f"{r['lost']:,} dropped at high-water marks{outran})")
    lines.append(f"hub / direct: {result['ratio']:.2f}")
    return lines
