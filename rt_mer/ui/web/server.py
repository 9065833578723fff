"""The web server behind `rt-mer web`: Starlette on uvicorn, one WebSocket
per open page.

A thread receives from rt_mer.publish.Subscriber (which checks every
message) into a bounded backlog; the event loop applies the backlog to the
WallState and offers each message to every page's own bounded queue. Each
page has a sender task that drains its queue into one frame at a time, so a
slow browser fills only its own queue: what does not fit is dropped and
counted (shown on its page), and neither the subscriber nor other browsers
wait for it. The server only reads: no route changes anything.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import signal
import socket
import threading
import time
from collections import deque
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ...publish import Subscriber
from ...publish.loop import receive_until
from ...signals import STOP_SIGNALS
from ...messages import QUADRANT_NAMES
from ..panels import PITCH_NAMES
from .state import MAX_STREAMS, WALL_SPAN_S, WallState, dumps, text

STATIC = Path(__file__).with_name("static")
CLIENT_QUEUE = 2000        # messages a page may fall behind (several seconds of 100 streams) before drops
MAX_BATCH = 500            # messages in one WebSocket frame
MAX_CLIENTS = 64
BACKLOG = 20000            # messages received but not yet handled by the event loop
STATS_S = 1.0              # how often a page hears the server's counters
SEND_TIMEOUT_S = 30.0      # a page that takes no frame for this long is closed
STALE_S = 5.0              # a stream silent this long is marked silent (status comes about once a second)
RECEIVE_POLL_SECONDS = 0.1
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]", "::1"}
SECURITY_HEADERS = [
    # No inline script, nothing from elsewhere: even text that became markup could not run.
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),           # the token may be in the URL
    (b"cache-control", b"no-store"),
]


class WebError(Exception):
    """A user error of `rt-mer web` (one line)."""


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Client:
    """One open page: the stream it shows (None: the wall) and its queue."""

    def __init__(self, stream: str | None):
        self.stream = stream
        self.queue: asyncio.Queue[str] = asyncio.Queue(CLIENT_QUEUE)
        self.dropped = 0

    def offer(self, item: str) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True


class Feed:
    """The subscriber's thread, the wall's state and the open pages."""

    def __init__(self, subscriber: Subscriber, state: WallState):
        self.subscriber, self.state = subscriber, state
        self.clients: set[Client] = set()
        self.backlog_dropped = 0                       # received, never handled: the event loop fell behind
        self.pages_dropped = 0                         # not offered to a page whose queue was full, all pages
        self._backlog: deque[dict] = deque()
        self._woken = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._receive, name="rt-mer-web-receive", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.subscriber.close()

    def _receive(self) -> None:
        receive_until(self.subscriber, self._queue, self._stop, poll_s=RECEIVE_POLL_SECONDS)

    def _queue(self, message: dict) -> None:
        if len(self._backlog) >= BACKLOG:          # the loop is far behind: drop the oldest, counted
            self._backlog.popleft()
            self.backlog_dropped += 1
        self._backlog.append(message)
        if not self._woken:
            self._woken = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._woken = False                            # before draining: a message appended now wakes us again
        while self._backlog:
            message = self._backlog.popleft()
            update = self.state.update(message)
            if update is not None:
                self.fan_out(message["stream"], *update)

    def fan_out(self, name: str, compact: str, detail: str, gone: list[str]) -> None:
        for client in self.clients:
            items = [compact] if client.stream is None else [detail] if client.stream == name else []
            if gone and (client.stream is None or client.stream in gone):
                items += [dumps({"type": "gone", "stream": evicted}) for evicted in gone]
            self.pages_dropped += sum(not client.offer(item) for item in items)

    def open(self, stream: str | None) -> Client:
        """A new page's client, its queue starting with the hello and the
        snapshot: taken in one step of the loop, so no message falls between."""
        client = Client(stream)
        client.offer(dumps({"type": "hello", "source": self.subscriber.endpoint, "stream": stream,
                            "max_streams": self.state.max_streams, "history_points": self.state.history_points,
                            "wall_span_s": WALL_SPAN_S, "stale_s": STALE_S, "quadrants": QUADRANT_NAMES,
                            "pitch_names": PITCH_NAMES}))
        client.offer(dumps(self.state.snapshot(stream)))
        self.clients.add(client)
        return client

    def stats(self, client: Client) -> str:
        s = self.subscriber
        return dumps({"type": "server", "streams": len(self.state.streams), "evicted": self.state.evicted,
                      "rejected": s.rejected, "last_rejection": text(s.last_rejection), "missed": s.missed,
                      "reconnects": s.reconnects, "dropped": client.dropped, "pages_dropped": self.pages_dropped,
                      "backlog_dropped": self.backlog_dropped, "clients": len(self.clients)})

    async def send(self, websocket: WebSocket, client: Client) -> None:
        """Frames of whatever the page's queue holds, and the counters every STATS_S."""
        next_stats = 0.0
        while True:
            try:
                batch = [await asyncio.wait_for(client.queue.get(), STATS_S)]
            except TimeoutError:
                batch = []
            while batch and len(batch) < MAX_BATCH and not client.queue.empty():
                batch.append(client.queue.get_nowait())
            if time.monotonic() >= next_stats:
                batch.append(self.stats(client))
                next_stats = time.monotonic() + STATS_S
            if batch:
                await asyncio.wait_for(websocket.send_text("[" + ",".join(batch) + "]"), SEND_TIMEOUT_S)


class Guard:
    """ASGI middleware: the Host a browser used (loopback binds: against DNS
    rebinding), a WebSocket's Origin (against other sites' pages), the token
    (everything but /static/, which holds only the package's own files), and
    the security headers on every response."""

    def __init__(self, app, token: str | None, hosts: set[str] | None):
        self.app, self.token, self.hosts = app, token, hosts

    def refusal(self, scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.hosts is not None and urlsplit(f"//{host}").hostname not in self.hosts:
            return 400, "unexpected Host header: open the page as http://127.0.0.1:PORT/"
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin and urlsplit(origin).netloc.lower() != host.lower():
            return 403, "WebSocket from another site's page"
        if self.token is None or scope["path"].startswith("/static/"):
            return None
        authorization = headers.get("authorization", "")
        given = (QueryParams(scope["query_string"]).get("token") or headers.get("x-rt-mer-token")
                 or (authorization[7:] if authorization.lower().startswith("bearer ") else ""))
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return 401, "this wall needs its token: add ?token=... to the URL (or an X-RT-Mer-Token header)"
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused = self.refusal(scope)
        if refused and scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008, "reason": refused[1]})

        async def secured(event) -> None:
            if event["type"] == "http.response.start":
                event = {**event, "headers": [*event.get("headers", []), *SECURITY_HEADERS]}
            await send(event)

        if refused:
            return await PlainTextResponse(refused[1], status_code=refused[0])(scope, receive, secured)
        await self.app(scope, receive, secured)


def create_app(feed: Feed, token: str | None = None, hosts: set[str] | None = None) -> Guard:
    """The Starlette app (wrapped in Guard) serving `feed`'s state."""

    def page(name: str):
        async def endpoint(request) -> FileResponse:
            return FileResponse(STATIC / name, media_type="text/html")
        return endpoint

    async def streams(request) -> JSONResponse:
        snapshot = feed.state.snapshot()
        return JSONResponse({"source": feed.subscriber.endpoint,
                             "streams": [{k: v for k, v in s.items() if k not in ("history", "columns")}
                                         for s in snapshot["streams"]]})

    async def live(websocket: WebSocket) -> None:
        if len(feed.clients) >= MAX_CLIENTS:
            return await websocket.close(code=1013, reason="too many pages open")
        await websocket.accept()
        client = feed.open(websocket.query_params.get("stream"))
        tasks = {asyncio.create_task(feed.send(websocket, client)), asyncio.create_task(until_closed(websocket))}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            feed.clients.discard(client)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)     # the page left, or took no frame in time
            with suppress(Exception):
                await asyncio.wait_for(websocket.close(), 1.0)

    @asynccontextmanager
    async def lifespan(app):
        feed.start()
        try:
            yield
        finally:
            feed.stop()

    app = Starlette(routes=[Route("/", page("wall.html")), Route("/stream/{name:path}", page("stream.html")),
                            Route("/overlay/{name:path}", page("overlay.html")), Route("/api/streams", streams),
                            WebSocketRoute("/live", live), Mount("/static", StaticFiles(directory=STATIC))],
                    lifespan=lifespan)
    return Guard(app, token, hosts)


async def until_closed(websocket: WebSocket) -> None:
    """Read until the page goes: it sends nothing that matters (the server is read-only)."""
    with suppress(WebSocketDisconnect):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass


class _Server(uvicorn.Server):
    """uvicorn, stopping on rt-mer's STOP_SIGNALS like the other commands."""
    signals: list[int]

    @contextmanager
    def capture_signals(self):
        self.signals = []

        def stop(signum, _frame) -> None:
            self.signals.append(signum)
            self.should_exit = True

        previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def listening_socket(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise WebError(f"cannot listen on {host}:{port}: {reason.lower()}") from None


def serve(endpoint: str, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          no_token: bool = False, max_streams: int = MAX_STREAMS, out: IO[str] | None = None) -> int:
    """Serve the wall of `endpoint`'s streams until a stop signal; returns
    the exit status (128 + the signal's number). Raises WebError (and
    PublishError for a bad endpoint)."""
    import sys
    out = out or sys.stderr
    loopback = is_loopback(host)
    if token is not None and not (token.isascii() and token.isprintable() and token and " " not in token):
        raise WebError("--token must be printable ASCII without spaces, not empty")
    if token is not None and no_token:
        raise WebError("--token and --no-token contradict each other")
    if not loopback and token is None and not no_token:
        raise WebError(f"binding {host} opens the wall to the network: give --token T (pages then need ?token=T) "
                       "or say --no-token")
    sock = listening_socket(host, port)
    subscriber = Subscriber(endpoint)
    feed = Feed(subscriber, WallState(max_streams))
    app = create_app(feed, token, LOOPBACK_NAMES | {host.lower()} if loopback else None)
    server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, ws_max_size=64 * 1024,
                                    timeout_graceful_shutdown=2, lifespan="on"))
    bound = sock.getsockname()[1]
    shown = (socket.gethostname() if host.strip("[]") in ("0.0.0.0", "::")      # every address: name the machine
             else f"[{host.strip('[]')}]" if ":" in host else host)
    url = f"http://{shown}:{bound}/"
    if loopback:
        access = "this machine only"
    elif token is not None:
        access = f"open to the network, token required: {url}?token={token}"
    else:
        access = "open to the network WITHOUT a token (--no-token): anyone who reaches it can watch"
    print(f"rt-mer: web wall of {endpoint} on {url} ({access}); Ctrl-C stops it", file=out, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 128 + server.signals[0] if getattr(server, "signals", None) else 0
