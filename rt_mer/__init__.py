"""rt-mer: real-time music emotion analysis.

    >>> import rt_mer
    >>> trajectory = rt_mer.analyze_file("song.flac")     # valence/arousal per window
"""
from .stream.offline import Trajectory, analyze_file

__all__ = ["Trajectory", "analyze_file"]
