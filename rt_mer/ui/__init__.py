"""The live terminal dashboard (Rich)."""
from .dashboard import DashboardState, StreamView, dash, render, run_dashboard

__all__ = ["DashboardState", "StreamView", "dash", "render", "run_dashboard"]
