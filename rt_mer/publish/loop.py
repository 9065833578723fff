"""The one subscriber loop: receive until stopped, hand each message on,
report what was refused.

Every program that reads a stream (listen, osc, the remote dashboard, the
web wall) runs `receive_until` in its own way: the loop is the same, the
handler and the report differ."""
from __future__ import annotations

import threading
import time
from typing import IO, Callable

from ..text import printable
from .sockets import Subscriber

REPORT_SECONDS = 1.0             # reports come at most this often, and once more at the end
STOP_POLL_SECONDS = 0.25         # how soon the loop notices its stop event


def receive_until(subscriber: Subscriber, handle: Callable[[dict], bool | None], stop: threading.Event,
                  timeout_s: float | None = None, report: Callable[[], None] | None = None,
                  poll_s: float = STOP_POLL_SECONDS) -> None:
    """Call `handle(message)` for each message `subscriber` receives until
    `stop` is set (noticed within `poll_s`), `handle` returns False, or no
    message came for `timeout_s` seconds (None: wait for ever). `report()`
    runs at most every REPORT_SECONDS and once at the end, however the loop
    ended. Errors of the subscriber or the handler propagate."""
    idle_since = time.monotonic()
    next_report = idle_since + REPORT_SECONDS
    try:
        while not stop.is_set():
            wait = poll_s if timeout_s is None else min(poll_s, max(0.0, idle_since + timeout_s - time.monotonic()))
            message = subscriber.receive(int(wait * 1000))
            if report and time.monotonic() >= next_report:
                report()
                next_report = time.monotonic() + REPORT_SECONDS
            if message is None:
                if timeout_s is not None and time.monotonic() - idle_since >= timeout_s:
                    break
                continue
            idle_since = time.monotonic()
            if handle(message) is False:
                break
    finally:
        if report:
            report()


class CountReport:
    """Writes a line on `errors` for each of the subscriber's rejected and
    forgotten counts that grew since the last call (a callable for
    `receive_until`'s `report`)."""

    def __init__(self, subscriber: Subscriber, errors: IO[str]) -> None:
        self.subscriber, self.errors = subscriber, errors
        self.rejected = self.forgotten = 0

    def __call__(self) -> None:
        subscriber = self.subscriber
        if subscriber.rejected > self.rejected:
            self.errors.write(f"rt-mer: {subscriber.rejected} malformed message(s) rejected so far "
                              f"(last: {printable(subscriber.last_rejection or '')})\n")
        if subscriber.forgotten > self.forgotten:
            self.errors.write(f"rt-mer: {subscriber.forgotten} topic(s) forgotten so far, the least recently seen "
                              f"of more than {subscriber.seqs.capacity} streams (gaps on them go uncounted)\n")
        self.errors.flush()
        self.rejected, self.forgotten = subscriber.rejected, subscriber.forgotten
