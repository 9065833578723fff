"""Messages as the dashboard tests feed them, and a render as text."""
from __future__ import annotations

import io

from rich.console import Console

from rt_mer.messages import quadrant
from rt_mer.stream.moods import default_moods
from rt_mer.ui import render

mood = default_moods().word        # the shipped vocabulary, as `rt-mer run` names moods


def status(stream, seq, **fields):
    """A status message as schema.py describes it (also used by the tmux script)."""
    message = dict(v=1, type="status", stream=stream, seq=seq, t=10.0, wall=1.7e9, source="mic", rate=48000,
                   channels=1, engine="onnxruntime", engine_reason="no CUDA device", window_s=3.0, hop_s=0.5,
                   level_dbfs=-18.2, peak_dbfs=-3.1, clipped=0, overflows=3, dropped_blocks=2, nonfinite=0,
                   late_windows=1, state="running",
                   latency_ms={"p50": {"frontend": 2.0, "total": 12.3}, "p99": {"frontend": 4.0, "total": 25.7}})
    message.update(fields)
    return message


def emotion(stream, seq, t, valence, arousal, **fields):
    """An emotion message whose quadrant and mood come from the real post stage and vocabulary."""
    message = dict(v=1, type="emotion", stream=stream, seq=seq, t=t, wall=1.7e9 + t, valence=valence,
                   arousal=arousal, valence_raw=valence, arousal_raw=arousal, quadrant=quadrant(valence, arousal),
                   mood=mood(valence, arousal), level_dbfs=-20.0, peak_dbfs=-4.0,
                   latency_ms={"frontend": 2.0, "inference": 6.0, "post": 0.1, "publish": 0.1, "total": 8.2},
                   engine="onnxruntime")
    message.update(fields)
    return message


def screen(state, width=80, height=24):
    console = Console(record=True, width=width, height=height, force_terminal=True, color_system=None,
                      file=io.StringIO())
    console.print(render(state, width, height))
    return console.export_text()
