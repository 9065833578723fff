"""The wire as the tests drive it: bare sockets, free endpoints and valid
messages as dicts."""
from __future__ import annotations

import json
import socket
import time
from contextlib import contextmanager

import zmq


@contextmanager
def raw_publisher(endpoint):
    """A bare PUB socket, to send frames rt-mer's Publisher never would."""
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    try:
        yield pub
    finally:
        pub.close()


def free_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def emotion(stream, seq, **extra):
    return {"v": 1, "type": "emotion", "stream": stream, "seq": seq, "t": 0.5 * seq, "wall": 1.7e9 + seq / 3,
            "valence": round(-1 + seq / 997, 6), "arousal": 0.1234567 * (seq % 7), "valence_raw": 0.2,
            "arousal_raw": -0.3, "quadrant": seq % 4 + 1, "mood": "calm", "level_dbfs": -23.5, "peak_dbfs": -3.0,
            "latency_ms": {"frontend": 1.2, "inference": 3.4, "post": 0.1, "publish": 0.05, "total": 4.8},
            "engine": "onnxruntime-cpu", **extra}


def status(stream, seq, **extra):
    return {"v": 1, "type": "status", "stream": stream, "seq": seq, "wall": 1.7e9 + seq, "state": "running",
            **extra}                            # one a second, as the loop sends them


def handshake(send, subscriber, stream="probe"):
    """Publish status probes until one arrives (the subscription has reached
    the publisher), then drain the rest. `send(frames)` publishes raw frames."""
    deadline = time.monotonic() + 5
    seq = 0
    while subscriber.receive(20) is None:
        assert time.monotonic() < deadline, "subscriber never connected"
        send([f"status.{stream}".encode(), json.dumps(status(stream, seq)).encode()])
        seq += 1
    while subscriber.receive(100) is not None:
        pass
