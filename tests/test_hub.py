"""`rt-mer hub`: the proxy with real ZeroMQ sockets in process (prefix
subscriptions, counters, bounded tables), then real `rt-mer run` and `rt-mer
hub` processes: three runs through one hub, and a hub killed and restarted
while a run publishes."""
import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from music import chord_music, windows_in, write
from rt_mer.cli import live
from rt_mer.bench.hub import bench_hub, hub_lines
from rt_mer.cli import build_parser
from rt_mer.publish import Publisher, PublishError, Subscriber
from rt_mer.publish.hub import Hub, HubStats

CLI = [sys.executable, "-m", "rt_mer.cli"]
PATIENCE_S = 60          # generous: the machine may be loaded; every wait polls a condition


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def endpoints():
    return f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"


def emotion(stream, seq, t=5.0):
    return dict(v=1, type="emotion", stream=stream, seq=seq, t=t, wall=1.7e9 + t, valence=0.1, arousal=-0.2,
                valence_raw=0.1, arousal_raw=-0.2, quadrant=4, mood="calm", level_dbfs=-20.0, peak_dbfs=-4.0)


def until(condition, what, timeout=PATIENCE_S):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


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


def test_a_busy_or_bad_endpoint_is_one_line():
    inbound, outbound = endpoints()
    with Hub(inbound, outbound):
        with pytest.raises(PublishError, match="cannot bind"):
            Hub(inbound, endpoints()[1])
        result = subprocess.run([*CLI, "hub", "--in", endpoints()[0], "--out", outbound],
                                capture_output=True, text=True, timeout=PATIENCE_S)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "cannot bind" in result.stderr
    result = subprocess.run([*CLI, "run", "--no-dash", "--name", "shop 17"], capture_output=True, text=True,
                            timeout=PATIENCE_S)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--name" in result.stderr


def test_stream_names_carry_the_machine_name_with_a_hub():
    parse = build_parser().parse_args
    host = socket.gethostname().split(".")[0]
    assert live.machine_name(parse(["run", "--hub", "tcp://hub:5557"])) == live.stream_name(host)
    assert live.machine_name(parse(["run", "--hub", "tcp://hub:5557", "--name", "shop-17"])) == "shop-17"
    assert live.machine_name(parse(["run", "--name", "shop-17"])) == "shop-17"
    assert live.machine_name(parse(["run"])) is None                    # alone: names as before


def start_hub(inbound, outbound):
    process = subprocess.Popen([*CLI, "hub", "--in", inbound, "--out", outbound, "--every", "0.5"],
                               stderr=subprocess.PIPE, text=True)
    assert "publishers connect to" in process.stderr.readline()     # bound: runs may connect
    return process


def stop(process, signum=signal.SIGTERM):
    process.send_signal(signum)
    return process.wait(timeout=PATIENCE_S)


@pytest.mark.slow
def test_three_runs_through_one_hub_arrive_whole(tmp_path):
    inbound, outbound = endpoints()
    hub = start_hub(inbound, outbound)
    runs = []
    try:
        with Subscriber(outbound) as subscriber:
            until(lambda: "1 subscribers" in hub.stderr.readline(), "the hub to see the subscriber")
            for i in range(3):
                path = write(tmp_path / f"in{i}.wav", chord_music(7, 22050, 1, seed=i)[:, 0], 22050)
                runs.append(subprocess.Popen([*CLI, "run", "--no-dash", "--threads", "1", "--hub", inbound,
                                              "--name", f"shop-{i}", "--file", str(path),
                                              "--record", str(tmp_path / f"run{i}.jsonl")],
                                             stderr=subprocess.PIPE, text=True))
            received = []
            ended = set()
            deadline = time.monotonic() + 4 * PATIENCE_S
            while len(ended) < 3 and time.monotonic() < deadline:
                message = subscriber.receive(1000)
                if message is not None:
                    received.append(message)
                    if message["type"] == "status" and message["state"] == "ended":
                        ended.add(message["stream"])
            for run in runs:
                assert run.wait(timeout=PATIENCE_S) == 0, run.stderr.read()
        assert ended == {"shop-0/in0", "shop-1/in1", "shop-2/in2"}
        for i in range(3):
            recorded = [json.loads(line) for line in (tmp_path / f"run{i}.jsonl").read_text().splitlines()]
            mine = [m for m in received if m["stream"] == f"shop-{i}/in{i}" and m["type"] == "emotion"]
            assert [m["seq"] for m in mine] == list(range(windows_in(7, 0.5)))      # gap-free, every window
            assert mine == [m for m in recorded if m["type"] == "emotion"]          # and exactly what was sent
        assert subscriber.missed == 0
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
        assert stop(hub) == 128 + signal.SIGTERM


@pytest.mark.slow
def test_a_hub_restarted_mid_run_is_reconnected_and_counted():
    """libzmq keeps a connecting PUB's queue across the outage (up to its
    high-water mark), so a short restart may lose nothing, or what was in
    flight: either way seq only rises, every gap is counted in `missed`,
    and messages made after the restart arrive."""
    inbound, outbound = endpoints()
    hub = start_hub(inbound, outbound)
    run = subprocess.Popen([*CLI, "demo", "--no-dash", "--threads", "1", "--hop", "0.25", "--hub", inbound,
                            "--name", "studio"], stderr=subprocess.PIPE, text=True)
    try:
        with Subscriber(outbound, topics=("emotion",), prefix="studio/") as subscriber:
            received = [subscriber.receive(PATIENCE_S * 1000) for _ in range(3)]
            assert all(m is not None and m["stream"] == "studio/demo" for m in received)
            hub.kill()                                   # no goodbye: as a crash or a power cut
            hub.wait()
            time.sleep(2.0)                              # the run goes on publishing into the void
            assert run.poll() is None
            hub = start_hub(inbound, outbound)           # same ports: runs and subscribers reconnect
            restarted = time.time()
            while received[-1]["wall"] < restarted + 1:  # until messages made after the restart arrive
                message = subscriber.receive(PATIENCE_S * 1000)
                assert message is not None, "nothing came through the restarted hub"
                received.append(message)
            seqs = [m["seq"] for m in received]
            assert seqs == sorted(set(seqs))             # no repeats, never backwards
            assert subscriber.missed == seqs[-1] - seqs[0] + 1 - len(seqs)      # every gap counted
        assert run.poll() is None
        assert stop(run) == 128 + signal.SIGTERM
        assert "studio/demo" in run.stderr.read()
    finally:
        if run.poll() is None:
            run.kill()
        assert stop(hub, signal.SIGINT) == 128 + signal.SIGINT


@pytest.mark.slow
def test_bench_hub_measures_the_hub_against_direct_pub_sub():
    result = bench_hub(count=20_000)
    for key in ("direct", "hub"):
        r = result[key]
        assert 0 < r["received"] <= 3 * 20_000 and r["rate"] > 0 and r["seconds"] > 0
    assert result["ratio"] == pytest.approx(result["hub"]["rate"] / result["direct"]["rate"])
    lines = hub_lines(result)
    assert len(lines) == 3 and "messages/s" in lines[0] and lines[2].startswith("hub / direct: ")
