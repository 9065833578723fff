"""rt-mer: real-time music emotion analysis.

    >>> import rt_mer
    >>> trajectory = rt_mer.analyze_file("song.flac")     # valence/arousal per window
"""
__version__ = "0.1.0"       # the one home of the version: pyproject.toml reads it

from .audio.io import AudioError, TruncatedAudio
from .stream.offline import Trajectory, analyze_file

__all__ = ["AudioError", "Trajectory", "TruncatedAudio", "analyze_file"]
