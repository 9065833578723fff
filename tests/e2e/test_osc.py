"""`rt-mer osc` end to end: a real `rt-mer run` (or the project's Publisher)
publishing over ZeroMQ, the bridge as a subprocess, and a real OSC server
on a UDP socket receiving."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time

import pytest
from pythonosc import dispatcher, osc_server
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from rt_mer.publish import Publisher

from support.music import chord_music, windows_in, write
from support.processes import CLI, one_error_line, rt_mer
from support.wire import free_endpoint, osc_emotion as emotion

OSC = [*CLI, "osc"]


@pytest.fixture
def osc_receiver():
    """A python-osc server on 127.0.0.1 (a free port): yields (port, the
    list of (address, args) it has received, in order)."""
    received = []
    routes = dispatcher.Dispatcher()
    routes.set_default_handler(lambda address, *args: received.append((address, args)))
    server = osc_server.BlockingOSCUDPServer(("127.0.0.1", 0), routes)    # one thread: arrival order kept
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def start_bridge(*args):
    """`rt-mer osc ARGS`, returned once it says it is forwarding (its
    signal handlers are then in place)."""
    process = subprocess.Popen([*OSC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()
    assert first.startswith("rt-mer: emotion messages from "), first + process.stderr.read()
    return process


def stop(process, signum=signal.SIGINT):
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    return err


def expected_osc(message):
    """What a receiver should get for one published emotion message."""
    prefix = f"/rt-mer/{message['stream']}"
    return [(f"{prefix}/valence", message["valence"]), (f"{prefix}/arousal", message["arousal"]),
            (f"{prefix}/quadrant", message["quadrant"]), (f"{prefix}/mood", message["mood"]),
            (f"{prefix}/level", message["level_dbfs"])]


@pytest.mark.slow
def test_a_live_run_reaches_an_osc_server(osc_receiver, tmp_path):
    port, received = osc_receiver
    files = (write(tmp_path / "deck-a.wav", chord_music(10, 22050, 1, seed=41), 22050),
             write(tmp_path / "deck-b.wav", chord_music(10, 16000, 1, seed=42), 16000))
    endpoint, record = free_endpoint(), tmp_path / "run.jsonl"
    bridge = start_bridge(f"127.0.0.1:{port}", "--from", endpoint)
    try:
        run = subprocess.run([*rt_mer_run(files), "--pub", endpoint, "--record", str(record), "--hop", "1"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        published = [m for m in map(json.loads, record.read_text().splitlines()) if m["type"] == "emotion"]
        assert len(published) == 2 * windows_in(10, 1.0)
        deadline = time.monotonic() + 5
        while len(received) < 5 * len(published) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        err = stop(bridge)
    assert bridge.returncode == 128 + signal.SIGINT, err             # as `rt-mer run` ends on Ctrl-C
    assert err.strip().splitlines()[-1] == f"rt-mer: stopped; {len(published)} messages forwarded, " \
                                           "0 failed sends, 0 rejected, 0 missed, 0 topics forgotten"
    for stream in ("deck-a", "deck-b"):
        mine = [(address, args) for address, args in received if address.startswith(f"/rt-mer/{stream}/")]
        wanted = [pair for m in published if m["stream"] == stream for pair in expected_osc(m)]
        assert [address for address, _ in mine] == [address for address, _ in wanted]
        for (address, args), (_, value) in zip(mine, wanted):
            assert len(args) == 1 and type(args[0]) is type(value), (address, args, value)
            assert args[0] == (pytest.approx(value, abs=1e-6) if isinstance(value, float) else value)
    assert any(args[0] > -100 for address, args in received if address.endswith("/level"))   # music, not silence


def rt_mer_run(files):
    return [*CLI, "run", "--no-dash", *(a for f in files for a in ("--file", str(f)))]


def datagrams_for(publisher, receiver, stream, valence):
    """Publish emotion messages (the subscription takes a moment to reach
    the publisher) until the bridge's first datagram arrives, then one
    message of `valence`; returns the datagrams sent for that one."""
    seq, deadline = 0, time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "the bridge never sent a datagram"
        publisher.publish("emotion", stream, emotion(stream, seq))
        seq += 1
        try:
            receiver.recv(65536)
            break
        except socket.timeout:
            pass
    while True:                                          # drain the probes
        try:
            receiver.recv(65536)
        except socket.timeout:
            break
    publisher.publish("emotion", stream, emotion(stream, seq, valence=valence))
    datagrams = []
    while True:
        try:
            datagrams.append(receiver.recv(65536))
        except socket.timeout:
            return datagrams


@pytest.fixture
def udp():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.3)
    yield receiver
    receiver.close()


def test_one_bundle_per_message_safe_names_and_rejected_input(udp):
    endpoint, port = free_endpoint(), udp.getsockname()[1]
    with Publisher(endpoint) as publisher:
        bridge = start_bridge(f"localhost:{port}", "--from", endpoint)
        try:
            datagram, = datagrams_for(publisher, udp, "deck 1/#a*", valence=0.75)
            publisher._socket.send_multipart([b"emotion.x", json.dumps({**emotion("x", 0), "v": 9}).encode()])
            time.sleep(0.3)
        finally:
            err = stop(bridge, signal.SIGTERM)
    assert bridge.returncode == 128 + signal.SIGTERM, err
    assert "1 rejected" in err.strip().splitlines()[-1], err
    assert OscBundle.dgram_is_bundle(datagram)
    messages = [OscBundle(datagram).content(i) for i in range(OscBundle(datagram).num_contents)]
    assert [(m.address, m.dgram.split(b",")[1][:1], m.params) for m in messages] == [
        ("/rt-mer/deck_1__a_/valence", b"f", [0.75]), ("/rt-mer/deck_1__a_/arousal", b"f", [0.25]),
        ("/rt-mer/deck_1__a_/quadrant", b"i", [2]), ("/rt-mer/deck_1__a_/mood", b"s", ["tense"]),
        ("/rt-mer/deck_1__a_/level", b"f", [-18.5])]


def test_separate_messages_normalised_for_faders(udp):
    endpoint, port = free_endpoint(), udp.getsockname()[1]
    with Publisher(endpoint) as publisher:
        bridge = start_bridge(f"127.0.0.1:{port}", "--from", endpoint, "--no-bundle", "--normalize")
        try:
            datagrams = datagrams_for(publisher, udp, "mic", valence=-1.0)
        finally:
            stop(bridge)
    assert not any(OscBundle.dgram_is_bundle(d) for d in datagrams)
    values = {OscMessage(d).address.rsplit("/", 1)[1]: OscMessage(d).params[0] for d in datagrams}
    assert values["valence"] == 0.0 and values["arousal"] == pytest.approx(0.625)
    assert values["level"] == pytest.approx(1 - 18.5 / 60) and values["quadrant"] == 2


@pytest.mark.parametrize("target, message", [
    ("9000", "OSC target '9000' does not parse: expected HOST:PORT, e.g. 127.0.0.1:9000"),
    ("127.0.0.1:", "does not parse"), (":9000", "does not parse"), ("127.0.0.1:0", "does not parse"),
    ("127.0.0.1:65536", "does not parse"), ("host:port", "does not parse"), ("[::1:9000", "does not parse"),
    ("no-such-host.invalid:9000", "cannot resolve OSC host 'no-such-host.invalid'"),
])
def test_bad_targets_are_one_line(target, message):
    line = one_error_line(rt_mer("osc", target))
    assert message in line, line


def test_a_bad_publisher_endpoint_is_one_line():
    line = one_error_line(rt_mer("osc", "127.0.0.1:9000", "--from", "udp://127.0.0.1:5556"))
    assert "endpoint 'udp://127.0.0.1:5556' does not parse" in line
