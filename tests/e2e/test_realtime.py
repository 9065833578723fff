"""Real-time scheduling of a live run's threads: SCHED_FIFO where the system
allows it, normal where it refuses or is told not to; the status says
which, and the kernel agrees."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
import zmq

from rt_mer import realtime

from support.processes import CLI
from support.threads import real_time_threads
from support.wire import free_endpoint

DEMO = [*CLI, "demo", "--no-dash"]
LIVE_THREADS = [realtime.ANALYSIS_PRIORITY, realtime.CAPTURE_PRIORITY]


def run_demo(*command: str) -> tuple[dict, list[int]]:
    """`rt-mer demo` started by `command` (its arguments last): its first
    "running" status, and its threads' SCHED_FIFO priorities then."""
    endpoint = free_endpoint()
    subscriber = zmq.Context.instance().socket(zmq.SUB)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"status.")
    subscriber.connect(endpoint)
    process = subprocess.Popen([*command, "--pub", endpoint], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if subscriber.poll(200):
                status = json.loads(subscriber.recv_multipart()[1])
                if status["state"] == "running" and (status["capture_scheduling"] or "--no-realtime" in command):
                    return status, real_time_threads(process.pid)
        pytest.fail(f"rt-mer demo sent no running status: {process.stderr.read() if process.poll() else ''}")
    finally:
        if process.poll() is None:              # else pytest.fail above says why it ended
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=20) == 128 + signal.SIGINT, process.stderr.read()
        subscriber.close(0)


@pytest.mark.slow
def test_live_threads_run_real_time_where_allowed_and_say_so():
    status, priorities = run_demo(*DEMO)
    if realtime.is_real_time(status["scheduling"]):
        assert status["scheduling"] == f"real-time (SCHED_FIFO {realtime.ANALYSIS_PRIORITY})"
        assert status["capture_scheduling"] == f"real-time (SCHED_FIFO {realtime.CAPTURE_PRIORITY})"
        # the analysis thread and the demo's player above it; no thread they started
        assert priorities == LIVE_THREADS
    else:                                              # this machine refuses: nothing runs real-time, and it says why
        for thread in ("scheduling", "capture_scheduling"):
            assert status[thread].startswith("normal: real-time scheduling refused (")
        assert priorities == []


@pytest.mark.slow
def test_refused_real_time_leaves_every_thread_normal_and_says_why():
    """Without CAP_SYS_NICE (dropped from root's bounding set where this
    user has it) and with no rtprio limit, the request is refused: the run
    goes on, normally."""
    allowed = subprocess.run([sys.executable, "-c", "from rt_mer import realtime; print(realtime.request(1))"],
                             capture_output=True, text=True, check=True).stdout
    command = DEMO
    if realtime.is_real_time(allowed):
        if os.geteuid() != 0:
            pytest.skip("this user's rtprio limit allows real-time scheduling")
        if not shutil.which("setpriv"):
            pytest.skip("setpriv (util-linux) is not installed: root cannot drop CAP_SYS_NICE")
        if resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0:
            pytest.skip("root's rtprio limit allows real-time scheduling without CAP_SYS_NICE")
        command = ["setpriv", "--bounding-set", "-sys_nice", *DEMO]
    status, priorities = run_demo(*command)
    for thread in ("scheduling", "capture_scheduling"):
        assert status[thread] == ("normal: real-time scheduling refused (Operation not permitted; it needs "
                                  "CAP_SYS_NICE or an rtprio limit)")
    assert priorities == []


@pytest.mark.slow
def test_no_realtime_keeps_every_thread_normal():
    status, priorities = run_demo(*DEMO, "--no-realtime")
    assert status["scheduling"] == "normal: not asked for" and status["capture_scheduling"] == ""
    assert priorities == []
