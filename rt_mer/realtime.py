"""Real-time scheduling for the threads a live meter depends on.

Under the normal scheduler the analysis thread waits behind whatever else
the machine runs (a build, a browser, another model's training): its hop
takes a few milliseconds, but its p99 takes what the neighbours leave. So,
as audio software does (JACK, PipeWire), the analysis thread asks for
SCHED_FIFO, and so does the thread that delivers its audio (PortAudio's
callback, a file played in real time), one step above: a producer
preempted while it holds Python's GIL would stall the analysis thread
however high its priority (priority inversion). Both stay below the audio
servers (PulseAudio 5, PipeWire 88, JACK's own), so that rt-mer never
delays the audio it listens to, and the kernel keeps 5 % of each second
for normal threads whatever a real-time thread does.

A real-time analysis thread also shortens Python's switch interval while
it runs: a thread holding the GIL (the dashboard drawing) hands it over
within GIL_SWITCH_SECONDS of the analysis thread's asking, not 5 ms.

Real-time scheduling needs permission: root, CAP_SYS_NICE, or an rtprio
limit (Debian's jackd2 package offers one for the `audio` group). Without
it a thread stays normal and says why; nothing else changes.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

ANALYSIS_PRIORITY = 1          # SCHED_FIFO's lowest: above every normal thread, below the audio servers
CAPTURE_PRIORITY = 2           # the thread that feeds the analysis, so it is never preempted by it
GIL_SWITCH_SECONDS = 0.0005    # Python's default, 5 ms, is the whole p99 budget of a hop
REAL_TIME = "real-time"
NORMAL = "normal"
REAL_TIME_POLICIES = {getattr(os, name): name for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name)}
# Threads a real-time thread starts (a thread pool made on first use) start
# normal: only the threads that asked run real-time.
RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0)


def request(priority: int) -> str:
    """Ask for SCHED_FIFO at `priority` for the calling thread, unless it
    already runs real-time (a JACK or PipeWire callback keeps its own); ->
    how it runs, in words: "real-time (SCHED_FIFO 1)", or "normal: ..."
    with the reason."""
    if not hasattr(os, "sched_setscheduler"):
        return f"{NORMAL}: this system has no real-time scheduling"
    try:
        if os.sched_getscheduler(0) & ~RESET_ON_FORK not in REAL_TIME_POLICIES:    # 0: the calling thread
            os.sched_setscheduler(0, os.SCHED_FIFO | RESET_ON_FORK, os.sched_param(priority))
        policy = os.sched_getscheduler(0) & ~RESET_ON_FORK
        return f"{REAL_TIME} ({REAL_TIME_POLICIES[policy]} {os.sched_getparam(0).sched_priority})"
    except OSError as error:        # EPERM: no CAP_SYS_NICE and no rtprio limit, or a container's cgroup
        return (f"{NORMAL}: real-time scheduling refused ({error.strerror}; it needs CAP_SYS_NICE or an rtprio "
                "limit)")


def is_real_time(*schedulings: str) -> bool:
    """Whether every one of these threads runs real-time ("" for one that
    has not said: it does not count against)."""
    return all(scheduling.startswith(REAL_TIME) for scheduling in schedulings if scheduling)


@contextmanager
def analysis_thread():
    """The calling thread as the analysis thread: real-time at
    ANALYSIS_PRIORITY where allowed, and then the GIL's switch interval
    shortened while it runs. Yields how it runs (`request`)."""
    scheduling, previous = request(ANALYSIS_PRIORITY), sys.getswitchinterval()
    if is_real_time(scheduling):
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
    try:
        yield scheduling
    finally:
        sys.setswitchinterval(previous)
