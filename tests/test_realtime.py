"""Real-time scheduling of the live threads: where the system allows it
the analysis thread runs SCHED_FIFO and the thread that delivers its audio
one step above; where it refuses, both run normally; the status message
says which, and the kernel agrees."""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import zmq

from rt_mer import realtime
from rt_mer.audio import FileSource, demo_path
from rt_mer.inference import open_engine
from rt_mer.stream.loop import AnalysisLoop
from test_live import free_endpoint
from threads import real_time_threads

DEMO = [sys.executable, "-m", "rt_mer.cli", "demo", "--no-dash"]
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


def test_inputs_that_can_wait_are_analysed_at_normal_priority():
    """A pipe, or a file read as fast as it is analysed, keeps no deadline:
    nothing asks for real-time (a busy real-time thread would only take a
    core from the rest of the machine)."""
    loop = AnalysisLoop([FileSource(demo_path(), realtime=False)], open_engine("onnxruntime", threads=1), [])
    assert loop.scheduling == "normal: no live input" and loop.streams[0].source.priority is None
    paced = AnalysisLoop([FileSource(demo_path(), realtime=True)], open_engine("onnxruntime", threads=1), [])
    assert paced.streams[0].source.priority == realtime.CAPTURE_PRIORITY


def test_a_real_time_analysis_thread_gets_the_gil_back_quickly():
    """While it runs real-time, another thread holding the GIL hands it over
    within GIL_SWITCH_SECONDS, not Python's 5 ms; afterwards all is as before."""
    before, seen = sys.getswitchinterval(), []

    def analysis():
        with realtime.analysis_thread() as scheduling:
            seen.append((scheduling, sys.getswitchinterval()))
    thread = threading.Thread(target=analysis)
    thread.start()
    thread.join()
    [(scheduling, interval)] = seen
    assert interval == (realtime.GIL_SWITCH_SECONDS if realtime.is_real_time(scheduling) else before)
    assert sys.getswitchinterval() == before
