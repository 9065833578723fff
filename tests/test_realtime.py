"""Real-time scheduling (rt_mer.realtime) in process: inputs that can wait
run at normal priority, and a real-time thread gets the GIL back quickly."""
from __future__ import annotations

import sys
import threading

from rt_mer import realtime
from rt_mer.audio import FileSource, demo_path
from rt_mer.inference import open_engine
from rt_mer.stream.loop import AnalysisLoop


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
