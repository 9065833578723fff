"""The wire schema (rt_mer.publish.schema): untrusted input counted and
skipped, values out of range, explanations and drivers, mood words up to
their limit, and a publisher that refuses what it must not send."""
from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from rt_mer.contract import DRIVERS
from rt_mer.messages import MAX_MOOD_CHARS, EmotionMessage
from rt_mer.publish import MAX_PAYLOAD_BYTES, Publisher, PublishError, Subscriber
from rt_mer.publish.schema import MessageError, decode, encode
from rt_mer.publish.sockets import MAX_FRAME_BYTES

from support.wire import emotion, explained, free_endpoint, handshake, publisher_sender, raw_publisher


def test_the_schema_carries_words_up_to_its_limit_and_rejects_longer():
    def payload(word):
        return encode(EmotionMessage(stream="s", seq=0, t=8.0, wall=1.7e9, valence=0.1, arousal=0.1,
                                     valence_raw=0.1, arousal_raw=0.1, quadrant=1, mood=word, level_dbfs=-20.0,
                                     peak_dbfs=-3.0, engine="onnxruntime").to_dict())
    assert decode(payload("ä" * MAX_MOOD_CHARS))["mood"] == "ä" * MAX_MOOD_CHARS
    with pytest.raises(MessageError, match="mood"):
        decode(payload("x" * (MAX_MOOD_CHARS + 1)))


def test_malformed_input_is_counted_and_skipped(endpoint):
    good = emotion("x", 0)
    nan = json.dumps(good).replace('"valence": ' + json.dumps(good["valence"]), '"valence": NaN').encode()
    assert b"NaN" in nan
    bad = [
        [b"emotion.x", b"not json"],
        [b"emotion.x", json.dumps({**good, "v": 2}).encode()],
        [b"emotion.x", json.dumps({k: v for k, v in good.items() if k != "mood"}).encode()],
        [b"emotion.x", nan],
        [b"emotion.x", json.dumps({**good, "level_dbfs": 1e999}).encode().replace(b"Infinity", b"1e999")],
        [b"emotion.x", json.dumps({**good, "pad": "y" * MAX_PAYLOAD_BYTES}).encode()],   # oversize
        [b"emotion.x", msgpack.packb({**good, "blob": b"\x00\x01"})],                     # bytes value
        [b"emotion.x", b"\x81\xc1"],                                                        # broken msgpack
        [b"emotion.x", b"[1, 2]"],
        [b"emotion.x"],                                                                      # one frame
        [b"emotion.x", json.dumps(good).encode(), b"extra"],                               # three frames
        [b"emotion.y", json.dumps(good).encode()],                                         # stream mismatch
        [b"status.x", json.dumps(good).encode()],                                          # type mismatch
        [b"emotion.x", json.dumps({**good, "seq": -1}).encode()],
        [b"emotion.x", json.dumps({**good, "t": 10 ** 400}).encode()],
        [b"emotion.x", json.dumps({**good, "mood": "\x1b[2Jcalm"}).encode()],             # a terminal escape
        [b"emotion.x", json.dumps({**good, "mood": "\ud800x"}).encode()],                 # a lone surrogate
        [b"emotion.x", json.dumps({**good, "engine": "a\nb"}).encode()],
        [b"emotion.x", json.dumps({**good, "drivers": {"valence": {"\x07": 1}, "arousal": {"\x07": 1}}}).encode()],
    ]
    assert len(bad[5][1]) < MAX_FRAME_BYTES     # received, then refused by the schema
    with raw_publisher(endpoint) as pub:
        with Subscriber(endpoint) as sub:
            handshake(pub.send_multipart, sub)
            for frames in bad:
                pub.send_multipart(frames)
            pub.send_multipart([b"emotion.x", json.dumps(good).encode()])
            assert sub.receive(3000) == good
            assert sub.rejected == len(bad) and sub.last_rejection
            assert sub.receive(100) is None


def test_values_out_of_range_are_rejected(endpoint):
    good = emotion("x", 0)
    bad = [{**good, "valence": 1.5}, {**good, "arousal": -1.01}, {**good, "valence_raw": 2},
           {**good, "arousal_raw": -7.0}, {**good, "quadrant": 0}, {**good, "quadrant": 5}]
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(pub.send_multipart, sub)
        for message in bad:
            pub.send_multipart([b"emotion.x", json.dumps(message).encode()])
        pub.send_multipart([b"emotion.x", json.dumps(good).encode()])
        assert sub.receive(3000) == good
        assert sub.rejected == len(bad) and "outside [1, 4]" in sub.last_rejection


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_explanation_and_drivers_go_over_the_wire(endpoint, codec):
    """A typed message's harmony map and drivers arrive as nested lists and
    named numbers, rounded, non-finite values made finite."""
    rng = np.random.default_rng(1)
    explanation, drivers = rng.normal(0, 3, (2, 12, 16)), rng.normal(0, 1, (2, len(DRIVERS)))
    explanation[0, 3, 5], explanation[1, 0, 0], drivers[1, 4] = np.nan, 1e9, -np.inf
    message = EmotionMessage(stream="a", seq=0, t=8.0, wall=1.7e9, valence=0.5, arousal=-0.25, valence_raw=0.5,
                             arousal_raw=-0.25, quadrant=4, mood="calm", level_dbfs=-20, peak_dbfs=-6,
                             engine="onnxruntime", explanation=explanation, drivers=drivers)
    with Publisher(endpoint, codec=codec) as pub, Subscriber(endpoint) as sub:
        handshake(publisher_sender(pub), sub)
        assert pub.send(message)
        got = sub.receive(2000)
    assert got is not None and sub.rejected == 0
    assert list(got["drivers"]) == ["valence", "arousal"] and list(got["drivers"]["arousal"]) == list(DRIVERS)
    assert got["drivers"]["valence"]["timbre"] == round(drivers[0, 3], 3)
    assert got["drivers"]["arousal"]["rhythm"] == -1e6                       # -inf, clipped
    valence_map, arousal_map = np.array(got["explanation"]["valence"]), np.array(got["explanation"]["arousal"])
    assert valence_map.shape == arousal_map.shape == (12, 16)
    assert valence_map[3, 5] == 0 and arousal_map[0, 0] == 1e6               # NaN to 0, 1e9 clipped
    np.testing.assert_allclose(valence_map[4], explanation[0, 4], atol=5e-4)


def test_malformed_explanations_and_drivers_are_rejected(endpoint):
    good = emotion("x", 0, **explained())
    maps, drivers = good["explanation"], good["drivers"]
    bad = [
        {"explanation": {"valence": maps["valence"]}},                                 # an axis missing
        {"explanation": {**maps, "tempo": maps["valence"]}},                            # an axis too many
        {"explanation": [maps["valence"], maps["arousal"]]},
        {"explanation": {**maps, "arousal": maps["arousal"][:11]}},                     # 11 pitch classes
        {"explanation": {**maps, "arousal": [[1.0] * 4] * 11 + [[1.0] * 3]}},           # ragged
        {"explanation": {**maps, "arousal": [[1.0] * 5] * 12}},                         # axes differ in steps
        {"explanation": {axis: [[]] * 12 for axis in maps}},                            # no steps
        {"explanation": {axis: [[0] * 300] * 12 for axis in maps}},                     # too many steps
        {"explanation": {**maps, "valence": [["0.5"] * 4] * 12}},
        {"explanation": {**maps, "valence": [[True] * 4] * 12}},
        {"explanation": {**maps, "valence": [[2e6] * 4] * 12}},                          # beyond any logit term
        {"drivers": {"valence": drivers["valence"]}},
        {"drivers": {**drivers, "arousal": {"harmony": 1.0}}},                          # names differ
        {"drivers": {"valence": {}, "arousal": {}}},
        {"drivers": {**drivers, "arousal": {**drivers["arousal"], "rhythm": "fast"}}},
        {"drivers": {**drivers, "arousal": {**drivers["arousal"], "rhythm": None}}},
        {"drivers": {axis: {f"d{i}": 0.0 for i in range(17)} for axis in drivers}},    # too many
        {"drivers": {axis: {"x" * 33: 0.0} for axis in drivers}},                       # name too long
        {"drivers": {axis: [0.0] * 5 for axis in drivers}},
        {"drivers": {axis: {"harmony": -1e7} for axis in drivers}},
    ]
    with raw_publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        handshake(pub.send_multipart, sub)
        for fields in bad:
            assert len(json.dumps({**good, **fields})) < MAX_PAYLOAD_BYTES
            pub.send_multipart([b"emotion.x", json.dumps({**good, **fields}).encode()])
        pub.send_multipart([b"emotion.x", json.dumps(good).encode()])
        assert sub.receive(3000) == good
        assert sub.rejected == len(bad) and "'drivers'" in sub.last_rejection
        assert sub.receive(100) is None


def test_publisher_refuses_inconsistent_or_nonfinite_messages(endpoint):
    with Publisher(endpoint) as pub:
        with pytest.raises(ValueError):
            pub.publish("status", "a", emotion("a", 0))
        with pytest.raises(ValueError):
            pub.publish("emotion", "b", emotion("a", 0))
        with pytest.raises(ValueError):
            pub.publish("emotion", "a", emotion("a", 0, level_dbfs=float("-inf")))
        with pytest.raises(ValueError):
            pub.publish("emotion", "a", emotion("a", 0, explanation={"valence": [[0.125] * 3000] * 12}))
        assert (pub.sent, pub.dropped) == (0, 0)
    with pytest.raises(PublishError):
        Publisher(free_endpoint(), codec="pickle")
    with pytest.raises(PublishError):
        Subscriber(endpoint, topics=("emotions",))
