"""The wire as the tests drive it: bare sockets, free endpoints and valid
messages as dicts."""
from __future__ import annotations

import json
import random
import socket
import threading
import time
from contextlib import contextmanager

import zmq

from rt_mer.contract import DRIVERS  # noqa: F401 (the tests' names for them)
from rt_mer.messages import quadrant
from rt_mer.publish import Publisher
from rt_mer.stream.moods import default_moods


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_endpoint():
    return f"tcp://127.0.0.1:{free_port()}"


def emotion(stream, seq, **extra):
    return {"v": 1, "type": "emotion", "stream": stream, "seq": seq, "t": 0.5 * seq, "wall": 1.7e9 + seq / 3,
            "valence": round(-1 + seq / 997, 6), "arousal": 0.1234567 * (seq % 7), "valence_raw": 0.2,
            "arousal_raw": -0.3, "quadrant": seq % 4 + 1, "mood": "calm", "level_dbfs": -23.5, "peak_dbfs": -3.0,
            "latency_ms": {"frontend": 1.2, "inference": 3.4, "post": 0.1, "publish": 0.05, "total": 4.8},
            "engine": "onnxruntime-cpu", **extra}


def status(stream, seq, **extra):
    return {"v": 1, "type": "status", "stream": stream, "seq": seq, "wall": 1.7e9 + seq, "state": "running",
            **extra}                            # one a second, as the loop sends them


@contextmanager
def deck_publisher(endpoint, period_s, **options):
    """While inside: a Publisher on `endpoint` (its `options`) sends an
    emotion and a status message of stream "deck" every `period_s`."""
    stop = threading.Event()

    def publish():
        with Publisher(endpoint, **options) as publisher:
            seq = 0
            while not stop.is_set():
                publisher.publish("emotion", "deck", emotion("deck", seq))
                publisher.publish("status", "deck", status("deck", seq))
                seq += 1
                time.sleep(period_s)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


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


def endpoints():
    return free_endpoint(), free_endpoint()


def send(pub, message):
    pub.send_multipart([f"{message['type']}.{message['stream']}".encode(), json.dumps(message).encode()])


def publisher_sender(publisher):
    return lambda frames: publisher._socket.send_multipart(frames)


def explained(steps=4):
    """The explanation and drivers fields, as `--explain` sends them."""
    return {"explanation": {"valence": [[0.25] * steps] * 12, "arousal": [[-1.5] * steps] * 12},
            "drivers": {axis: dict(zip(DRIVERS, (1.25, -0.5, 0.0, 2, -3.125))) for axis in ("valence", "arousal")}}


def hub_emotion(stream, seq, t=5.0):
    return dict(v=1, type="emotion", stream=stream, seq=seq, t=t, wall=1.7e9 + t, valence=0.1, arousal=-0.2,
                valence_raw=0.1, arousal_raw=-0.2, quadrant=4, mood="calm", level_dbfs=-20.0, peak_dbfs=-4.0)


def osc_emotion(stream, seq, **fields):
    return {"v": 1, "type": "emotion", "stream": stream, "seq": seq, "t": 8.0 + seq, "wall": 1.7e9 + seq,
            "valence": -0.5, "arousal": 0.25, "valence_raw": -0.4, "arousal_raw": 0.3, "quadrant": 2,
            "mood": "tense", "level_dbfs": -18.5, "peak_dbfs": -3.0, "engine": "test", **fields}


mood = default_moods().word


def web_emotion(stream, seq, valence, arousal, wall=None, explain=False, **fields):
    """An emotion message as schema.py describes it, quadrant and mood from the real post stage and vocabulary."""
    message = dict(v=1, type="emotion", stream=stream, seq=seq, t=4.0 + seq * 0.5, wall=wall or time.time(),
                   valence=valence, arousal=arousal, valence_raw=valence, arousal_raw=arousal,
                   quadrant=quadrant(valence, arousal), mood=mood(valence, arousal), level_dbfs=-20.0,
                   peak_dbfs=-6.0, engine="onnxruntime", batch=1,
                   latency_ms={"buffering": 1.0, "frontend": 0.3, "inference": 2.0, "post": 0.1, "total": 3.4})
    if explain:
        message["drivers"] = {axis: {name: round(random.uniform(-1.5, 1.5), 3) for name in DRIVERS}
                              for axis in ("valence", "arousal")}
        message["explanation"] = {axis: [[round(random.uniform(-1, 1), 3)] * 16 for _ in range(12)]
                                  for axis in ("valence", "arousal")}
    message.update(fields)
    return message


def web_status(stream, seq, state="running", **fields):
    message = dict(v=1, type="status", stream=stream, seq=seq, t=4.0 + seq, wall=time.time(), state=state,
                   source="synthetic", rate=22050, channels=1, engine="onnxruntime", engine_reason="test",
                   scheduling="real-time (SCHED_FIFO 1)", capture_scheduling="", window_s=4.0, hop_s=0.5,
                   level_dbfs=-20.0, peak_dbfs=-6.0, clipped=0, overflows=0, dropped_blocks=0, underruns=0,
                   nonfinite=0, out_of_range=0, truncated=0, late_windows=0,
                   latency_ms={"p50": {"total": 3.4}, "p99": {"total": 6.1}})
    message.update(fields)
    return message
