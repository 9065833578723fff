"""`rt-mer hub`: one place for the live streams of many machines.

A ZeroMQ XSUB/XPUB proxy, pyzmq's own `zmq.proxy_steerable`: `rt-mer run
--hub tcp://HOST:5557` connects its publisher to the hub's XSUB side (--in),
and every subscriber (listen, dash, osc, web, a user's script) connects to
its XPUB side (--out) exactly as to a single `run`. Subscriptions travel
upstream through the proxy to the publishers, so a subscriber to
``emotion.shop-17/`` is sent only that machine's messages.

`HubStats` reads the proxy's own counters (its STATISTICS command: no
copy of each message, no Python per message) and the two sockets' monitors
for publishers and subscribers connected. It keeps integers only: nothing
grows with the number of streams or peers.

    with Hub("tcp://127.0.0.1:5557", "tcp://127.0.0.1:5556") as hub:
        hub.start()
        ...                    # hub.stats.snapshot() any time
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from .sockets import PublishError, parse_endpoint

DEFAULT_IN = "tcp://127.0.0.1:5557"
DEFAULT_OUT = "tcp://127.0.0.1:5556"
HWM = 10_000                    # messages queued per peer before the newest are dropped
LINGER_MS = 0
POLL_MS = 250                   # the counters are read this often
STATISTICS_WAIT_MS = 5000       # a proxy busy forwarding answers between bursts
_CONNECTED = zmq.EVENT_ACCEPTED
_GONE = zmq.EVENT_DISCONNECTED


@dataclass(frozen=True)
class HubReport:
    """What the hub saw over one interval (rates) and so far (totals)."""
    seconds: float
    messages: int                 # messages forwarded downstream in the interval
    subscriptions: int            # (un)subscriptions passed upstream in the interval
    publishers: int               # connected now
    subscribers: int
    publishers_seen: int          # connections accepted since the start
    subscribers_seen: int
    total: int                    # messages forwarded since the start

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"rt-mer hub: {self.rate:,.0f} msg/s, {self.publishers} publishers ({self.publishers_seen} seen), "
                f"{self.subscribers} subscribers ({self.subscribers_seen} seen), {self.total:,} messages")


class HubStats:
    """The proxy's own counters and the peers its sockets' monitors saw:
    integers only, whatever the number of streams or peers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self.total = self.subscriptions = 0
        self._reported = (0, 0)
        self.connected = {"in": 0, "out": 0}
        self.seen = {"in": 0, "out": 0}

    def counters(self, frames_down: int, frames_up: int) -> None:
        """Take the proxy's totals. It counts frames; every rt-mer message is
        two ([topic, payload]) and every (un)subscription one."""
        with self._lock:
            self.total, self.subscriptions = frames_down // 2, frames_up

    def peer(self, side: str, event: int) -> None:
        with self._lock:
            if event == _CONNECTED:
                self.connected[side] += 1
                self.seen[side] += 1
            elif event == _GONE:
                self.connected[side] = max(0, self.connected[side] - 1)

    def report(self) -> HubReport:
        """The interval since the last report, and the totals."""
        now = time.monotonic()
        with self._lock:
            report = HubReport(now - self._since, self.total - self._reported[0],
                               self.subscriptions - self._reported[1], self.connected["in"],
                               self.connected["out"], self.seen["in"], self.seen["out"], self.total)
            self._since, self._reported = now, (self.total, self.subscriptions)
        return report


class Hub:
    """Bind the XSUB (`inbound`, publishers connect) and XPUB (`outbound`,
    subscribers connect) sockets and proxy between them in a thread.

    Raises PublishError when an endpoint does not parse or cannot be bound.
    `stop()` ends the proxy (through its control socket) and the counter."""

    def __init__(self, inbound: str = DEFAULT_IN, outbound: str = DEFAULT_OUT, context: zmq.Context | None = None):
        self.inbound, self.outbound = parse_endpoint(inbound), parse_endpoint(outbound)
        if inbound == outbound:
            raise PublishError(f"--in and --out are both {inbound}: the hub needs two endpoints")
        self.context = context or zmq.Context.instance()
        self.stats = HubStats()
        self._sockets: list[zmq.Socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        control = f"inproc://rt-mer-hub-control-{id(self):x}"
        try:
            self._in = self._bind(zmq.XSUB, inbound, zmq.RCVHWM)
            self._out = self._bind(zmq.XPUB, outbound, zmq.SNDHWM)
            self._control = self._socket(zmq.PAIR)
            self._control.bind(control)
            self._steer = self._socket(zmq.PAIR)          # the counting thread's alone
            self._steer.connect(control)
            # monitors: set up here, read only by the counting thread
            self._monitors = {"in": self._in.get_monitor_socket(_CONNECTED | _GONE),
                              "out": self._out.get_monitor_socket(_CONNECTED | _GONE)}
        except BaseException:
            self.close()
            raise

    def _socket(self, kind: int) -> zmq.Socket:
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.LINGER, LINGER_MS)
        self._sockets.append(socket)
        return socket

    def _bind(self, kind: int, endpoint: str, hwm_option: int) -> zmq.Socket:
        socket = self._socket(kind)
        socket.setsockopt(hwm_option, HWM)
        if endpoint.startswith("tcp://["):
            socket.setsockopt(zmq.IPV6, 1)
        try:
            socket.bind(endpoint)
        except zmq.ZMQError as error:
            raise PublishError(f"cannot bind {endpoint}: {zmq.strerror(error.errno).lower()}") from None
        return socket

    def start(self) -> None:
        """Start the proxy and the counter threads; returns at once."""
        for target, name in ((self._proxy, "rt-mer-hub-proxy"), (self._count, "rt-mer-hub-count")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _proxy(self) -> None:
        # pyzmq's (libzmq's) own forwarding loop; it returns on TERMINATE
        with suppress(zmq.ContextTerminated):
            zmq.proxy_steerable(self._in, self._out, None, self._control)

    def _count(self) -> None:
        poller = zmq.Poller()
        sides = {monitor: side for side, monitor in self._monitors.items()}
        for monitor in sides:
            poller.register(monitor, zmq.POLLIN)
        while not self._stop.is_set():
            for monitor, _ in poller.poll(POLL_MS):
                self.stats.peer(sides[monitor], parse_monitor_message(monitor.recv_multipart())["event"])
            self._steer.send(b"STATISTICS")            # answered between two bursts of forwarding
            if self._steer.poll(STATISTICS_WAIT_MS):
                counts = [int.from_bytes(frame, sys.byteorder) for frame in self._steer.recv_multipart()]
                self.stats.counters(counts[0], counts[4])    # frontend msgs in, backend msgs in
        self._steer.send(b"TERMINATE")

    def stop(self) -> None:
        """End the proxy and the counter; idempotent."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def close(self) -> None:
        self.stop()
        for side in ("_in", "_out"):
            socket = getattr(self, side, None)
            if socket is not None and not socket.closed:
                with suppress(zmq.ZMQError):
                    socket.disable_monitor()
        for monitor in getattr(self, "_monitors", {}).values():
            monitor.close(0)
        for socket in self._sockets:
            socket.close(0)

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve(inbound: str, outbound: str, every: float, quiet: bool, stop: threading.Event, out) -> None:
    """Run a hub until `stop` is set, a stats line on `out` every `every` s
    unless quiet. Raises PublishError for a bad or busy endpoint."""
    with Hub(inbound, outbound) as hub:
        hub.start()
        wide = [e for e in (inbound, outbound) if not _loopback(e)]
        note = f" (reachable beyond this machine: {', '.join(wide)})" if wide else ""
        print(f"rt-mer hub: publishers connect to {inbound}, subscribers to {outbound}{note}; Ctrl-C stops it",
              file=out, flush=True)
        while not stop.wait(every):
            report = hub.stats.report()
            if not quiet:
                print(report.line(), file=out, flush=True)
        print(f"rt-mer hub: stopped; {hub.stats.total:,} messages forwarded", file=out, flush=True)


def _loopback(endpoint: str) -> bool:
    if not endpoint.startswith("tcp://"):
        return True                                  # ipc, inproc: this machine only
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0]
    return host.startswith("127.") or host in ("localhost", "[::1]")
