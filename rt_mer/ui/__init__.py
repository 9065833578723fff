"""The live terminal dashboard (Rich); the web wall is rt_mer.ui.web."""
from .dashboard import DashboardState, dash, render, run_dashboard
from .panels import StreamView

__all__ = ["DashboardState", "StreamView", "dash", "render", "run_dashboard"]
