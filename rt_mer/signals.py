"""Clean stops for the commands that run until stopped (run, demo, dash,
osc, listen): each of STOP_SIGNALS ends the command cleanly (an "ended"
status, a complete recording, a closed socket), and its exit status is then
128 + the signal's number, as the shell reports it."""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopOnSignal:
    """Sets `event` on any of STOP_SIGNALS; `exit_status` is then 128 + the
    first signal's number (0 while none came)."""

    def __init__(self, event: threading.Event) -> None:
        self.event, self.signals = event, []
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop)

    def _stop(self, signum: int, _frame) -> None:
        self.signals.append(signum)
        self.event.set()

    @property
    def exit_status(self) -> int:
        return 128 + self.signals[0] if self.signals else 0
