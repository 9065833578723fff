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

Real-time scheduling needs permission: root, CAP_SYS_NICE, or an rtprio
limit (Debian's jackd2 package offers one for the `audio` group). Without
it a thread stays normal and says why; nothing else changes.
"""
from __future__ import annotations

import os
import threading

ANALYSIS_PRIORITY = 1          # SCHED_FIFO's lowest: above every normal thread, below the audio servers
CAPTURE_PRIORITY = 2           # the thread that feeds the analysis, so it is never preempted by it
NORMAL = "normal"
REAL_TIME_POLICIES = {getattr(os, name): name for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name)}


def request(priority: int) -> str:
    """Ask for SCHED_FIFO at `priority` for the calling thread, unless it
    already runs real-time (a JACK callback keeps its own); -> how it runs,
    in words: "real-time (SCHED_FIFO 1)", or "normal: ..." with the reason."""
    if not hasattr(os, "sched_setscheduler"):
        return f"{NORMAL}: this system has no real-time scheduling"
    thread = threading.get_native_id()
    try:
        policy = os.sched_getscheduler(thread)
        if policy not in REAL_TIME_POLICIES:
            os.sched_setscheduler(thread, os.SCHED_FIFO, os.sched_param(priority))
            policy = os.SCHED_FIFO
        return f"real-time ({REAL_TIME_POLICIES[policy]} {os.sched_getparam(thread).sched_priority})"
    except OSError as error:        # EPERM: no CAP_SYS_NICE and no rtprio limit
        return f"{NORMAL}: real-time scheduling refused ({error.strerror}; it needs CAP_SYS_NICE or an rtprio limit)"


def is_real_time(scheduling: str) -> bool:
    return not scheduling.startswith(NORMAL)
