"""`rt-mer hub` and `rt-mer run` as processes: three runs through one hub, a
hub killed and restarted while a run publishes, a busy endpoint."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from rt_mer.publish import PublishError, Subscriber
from rt_mer.publish.hub import Hub

from support.music import chord_music, windows_in, write
from support.processes import CLI, PATIENCE_S, until
from support.wire import endpoints


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
