"""Clean stops for the commands that run until stopped (run, demo, dash,
osc, listen): each of STOP_SIGNALS ends the command cleanly (an "ended"
status, a complete recording, a closed socket), and its exit status is then
128 + the signal's number, as the shell reports it.

Closing the terminal sends SIGHUP, and from then on every write to it fails
(EIO); a pipe whose reader left fails with EPIPE. Either ends the command
quietly: `output_gone` tells such an error, `silence` points the dead
streams at /dev/null (Python flushes them again at exit), and the status is
that of the hang-up (129) or of the broken pipe (141)."""
from __future__ import annotations

import errno
import os
import signal
import threading
from contextlib import suppress
from typing import IO

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopOnSignal:
    """Sets `event` on any of STOP_SIGNALS; `exit_status` is then 128 + the
    first signal's number (0 while none came). A signal the process was
    started ignoring stays ignored: `nohup rt-mer run` outlives its terminal."""

    def __init__(self, event: threading.Event) -> None:
        self.event, self.signals = event, []
        self.ignored = {signum for signum in STOP_SIGNALS if signal.getsignal(signum) == signal.SIG_IGN}
        for signum in set(STOP_SIGNALS) - self.ignored:
            signal.signal(signum, self._stop)

    def _stop(self, signum: int, _frame) -> None:
        self.stop_for(signum)

    def stop_for(self, signum: int) -> None:
        """Stop as if `signum` had come (SIGHUP: the terminal was found gone,
        maybe before its hang-up signal came), unless it is ignored."""
        if signum in self.ignored:
            return
        self.signals.append(signum)
        self.event.set()

    @property
    def exit_status(self) -> int:
        return 128 + self.signals[0] if self.signals else 0


def output_gone(error: BaseException) -> bool:
    """A write failed because the terminal hung up (EIO) or the reader of a
    pipe left (EPIPE)."""
    return isinstance(error, OSError) and error.errno in (errno.EIO, errno.EPIPE)


def lost_output_signal(error: OSError) -> int:
    """The signal that goes with an `output_gone` error: SIGHUP for a
    terminal, SIGPIPE for a pipe."""
    return signal.SIGHUP if error.errno == errno.EIO else signal.SIGPIPE


def silence(*streams: IO) -> None:
    """Point these streams' file descriptors at /dev/null, so that what is
    still buffered, and whatever is written later, goes nowhere instead of
    failing again (with a traceback, at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in streams:
            with suppress(AttributeError, ValueError, OSError):     # no descriptor (a StringIO), or closed
                os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)
