"""ZeroMQ publisher and subscriber for rt-mer messages.

A `Publisher` binds a PUB socket and never blocks its caller (the analysis
thread); a `Subscriber` connects a SUB socket and treats everything it
receives as untrusted. Both speak the schema in `rt_mer.publish.schema`:
multipart ``[topic, payload]`` with topic ``emotion.<stream>`` or
``status.<stream>``.

Reading the live trajectory from a script::

    from rt_mer.publish import Subscriber

    with Subscriber("tcp://127.0.0.1:5556", topics=("emotion",)) as sub:
        for message in sub:
            print(message["stream"], message["valence"], message["arousal"])
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from contextlib import suppress
from typing import Any, Iterable, Iterator

import zmq

from ..messages import Message
from . import schema
from ..errors import RtMerError
from .seqs import MAX_TOPICS, SeqTable

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
LINGER_MS = 200                  # close() flushes queued messages briefly, never hangs
# libzmq drops the connection on a frame over MAXMSGSIZE, and with it
# whatever the publisher had queued for us. So the limit is far above any
# valid frame (MAX_PAYLOAD_BYTES): a frame up to it is received, counted as
# rejected before it is copied or decoded, and nothing else is lost. Only one
# beyond it costs a reconnect. Memory: a reader that stalls while a publisher
# sends such frames queues at most hwm of them (valid messages: hwm x 64 KB).
MAX_FRAME_BYTES = 16 * 1024 * 1024

_TCP = re.compile(r"tcp://(?P<host>\*|\[[^\]]+\]|[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?):(?P<port>[0-9]{1,5})")
_OTHER = re.compile(r"(?:ipc|inproc)://[^\x00-\x1f\x7f]+")


class PublishError(RtMerError):
    """A user-facing failure (bad endpoint, address in use): one line, no traceback needed."""


def parse_endpoint(text: str) -> str:
    """Check an endpoint and return it: ``tcp://HOST:PORT`` (HOST a name, an
    IPv4 address, ``*`` or ``[ipv6]``; PORT 1-65535), ``ipc://PATH`` or
    ``inproc://NAME``. Raises PublishError otherwise."""
    error = PublishError(f"endpoint {text!r} does not parse: "
                         "expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    if not isinstance(text, str):
        raise error
    match = _TCP.fullmatch(text)
    if match:
        host, port = match["host"], int(match["port"])
        if not 1 <= port <= 65535:
            raise error
        try:
            if host.startswith("["):
                ipaddress.IPv6Address(host[1:-1])
            elif re.fullmatch(r"[0-9.]+", host):      # all digits: must be a real IPv4 address
                ipaddress.IPv4Address(host)
        except ValueError:
            raise error from None
        return text
    if _OTHER.fullmatch(text):
        return text
    raise error


def _socket(context: zmq.Context | None, kind: int, endpoint: str) -> zmq.Socket:
    socket = (context or zmq.Context.instance()).socket(kind)
    if endpoint.startswith("tcp://["):
        socket.setsockopt(zmq.IPV6, 1)               # libzmq refuses IPv6 addresses without it
    return socket


def _check_codec(codec: str, allowed: tuple[str, ...]) -> None:
    if codec not in allowed:
        raise PublishError(f"unknown codec {codec!r}: expected one of {', '.join(allowed)}")
    if codec == "msgpack":
        try:
            import msgpack  # noqa: F401
        except ImportError:
            raise PublishError("the msgpack codec needs the msgpack package: "
                               "pip install 'rt-mer[msgpack]'") from None


class Publisher:
    """Bind a PUB socket (or, with ``connect=True``, connect it to an
    `rt-mer hub`'s input) and publish schema messages without ever blocking.

    Each subscriber gets its own queue of `hwm` messages. By default a
    subscriber whose queue is full simply misses messages (it sees the gap in
    `seq`) while the others still get them; `publish` then still returns
    True, because libzmq does not tell PUB sockets about per-subscriber drops.
    With ``nodrop=True`` a full queue refuses the whole message instead:
    `publish` returns False and counts it in `dropped` -- honest accounting,
    at the price that one stuck subscriber silences all of them.

    Connected to a hub, messages sent while the hub is away are dropped
    (the gap shows in `seq`); libzmq reconnects by itself.

    Raises PublishError when the endpoint does not parse or cannot be bound.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, codec: str = "json", hwm: int = 1000,
                 context: zmq.Context | None = None, nodrop: bool = False, connect: bool = False):
        self.endpoint = parse_endpoint(endpoint)
        _check_codec(codec, ("json", "msgpack"))
        self.codec = codec
        self.sent = 0
        self.dropped = 0
        self._socket = _socket(context, zmq.PUB, endpoint)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        if nodrop:
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)   # full queue -> zmq.Again instead of a silent drop
        self.connected = connect
        try:
            (self._socket.connect if connect else self._socket.bind)(endpoint)
        except zmq.ZMQError as error:
            self._socket.close(0)
            verb = "connect to" if connect else "bind"
            raise PublishError(f"cannot {verb} {endpoint}: {zmq.strerror(error.errno).lower()}") from None

    def publish(self, kind: str, stream: str, message: dict) -> bool:
        """Send one message on topic ``kind.stream``; True if queued.

        Never blocks. `message` must already carry ``type == kind`` and
        ``stream == stream`` (subscribers reject a mismatch) and only finite
        numbers (ValueError otherwise: clamp -inf dBFS of silence first), and
        encode to at most MAX_PAYLOAD_BYTES (ValueError: subscribers would
        refuse it)."""
        if message.get("type") != kind or message.get("stream") != stream:
            raise ValueError(f"message type/stream {message.get('type')!r}/{message.get('stream')!r} "
                             f"do not match topic {kind}.{stream}")
        frames = [schema.topic(kind, stream), schema.encode(message, self.codec)]
        if len(frames[1]) > schema.MAX_PAYLOAD_BYTES:
            raise ValueError(f"{kind} message of {len(frames[1])} bytes exceeds {schema.MAX_PAYLOAD_BYTES}")
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def send(self, message: Message) -> bool:
        """Publish a typed message (EmotionMessage or StatusMessage); the
        loop's sink. True if queued, as `publish`."""
        return self.publish(message.type, message.stream, message.to_dict())

    def close(self) -> None:
        """Close the socket, flushing queued messages for at most LINGER_MS."""
        self._socket.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Subscriber:
    """Connect to an rt-mer publisher and receive validated messages.

    Args:
        endpoint: where the publisher binds, e.g. ``tcp://127.0.0.1:5556``.
        topics: message kinds to receive, from ``("emotion", "status")``.
        streams: stream names to keep (None: every stream).
        prefix: keep only streams whose name starts with it, e.g.
            ``"shop-17/"`` for one machine's streams through a hub; the
            filter runs on the publisher's (or hub's) side.
        codec: ``"auto"`` (JSON or msgpack, told per message), ``"json"`` or
            ``"msgpack"``.
        hwm: messages queued before the newest are dropped (bounds memory,
            with MAX_FRAME_BYTES bounding each frame).
        context: a zmq.Context (default: the process-wide instance; inproc
            endpoints need the publisher's context).

    Messages are plain dicts as described in `rt_mer.publish.schema`.
    Counters: `received` (valid messages returned), `rejected` (malformed
    messages skipped: wrong frame count, topic not matching the payload's
    type or stream, oversize, schema violations; `last_rejection` says why),
    `missed` (messages the publisher sent that never arrived, from gaps in
    each topic's `seq`), `forgotten` (topics dropped from the table of
    `seqs`, least recently seen first, to hold it at MAX_TOPICS: a gap on
    one goes uncounted), `reconnects` (connections re-made after libzmq
    dropped one, e.g. for a frame over MAX_FRAME_BYTES). A subscriber only
    sees messages published after its subscription reaches the publisher
    (ZeroMQ's "slow joiner"): allow a moment after connecting.

    Raises PublishError when the endpoint or codec is wrong; connecting to
    a publisher that is not there yet is not an error (ZeroMQ retries).
    """

    def __init__(self, endpoint: str, topics: Iterable[str] = schema.TOPICS,
                 streams: Iterable[str] | None = None, codec: str = "auto", hwm: int = 1000,
                 context: zmq.Context | None = None, prefix: str = ""):
        self.endpoint = parse_endpoint(endpoint)
        _check_codec(codec, ("auto", "json", "msgpack"))
        self.topics = (topics,) if isinstance(topics, str) else tuple(topics)
        if not self.topics or not set(self.topics) <= set(schema.TOPICS):
            raise PublishError(f"topics {list(self.topics)} are not among {', '.join(schema.TOPICS)}")
        if isinstance(streams, str):
            streams = (streams,)
        self.streams = None if streams is None else frozenset(streams)
        self.prefix = prefix
        self.codec = codec
        self.received = self.rejected = self.missed = self.reconnects = 0
        self.last_rejection: str | None = None
        self.seqs = SeqTable(MAX_TOPICS)         # keyed by a digest: a long topic costs no more
        self._socket = _socket(context, zmq.SUB, endpoint)
        self._socket.setsockopt(zmq.RCVHWM, hwm)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self._socket.setsockopt(zmq.LINGER, 0)
        # Prefix subscriptions filter on the publisher's side; "emotion.a"
        # also matches "emotion.ab", so _accept checks the stream exactly.
        for kind in self.topics:
            for stream in sorted(self.streams) if self.streams is not None else [prefix]:
                self._socket.setsockopt(zmq.SUBSCRIBE, f"{kind}.{stream}".encode())
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as error:
            self._socket.close(0)
            raise PublishError(f"cannot connect to {endpoint}: {zmq.strerror(error.errno).lower()}") from None
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def receive(self, timeout_ms: int | None = None) -> dict[str, Any] | None:
        """The next valid message, or None if none arrives within `timeout_ms`
        (None: wait for ever; 0: only what is already queued). Malformed
        messages are counted and skipped, never raised."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            remaining = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            ready = dict(self._poller.poll(remaining))
            if self._socket in ready:                 # queued messages first, then reconnect
                message = self._accept(self._read_frames())
                if message is not None:
                    return message
            elif self._monitor in ready:
                self._reconnect()
            else:
                return None

    def _reconnect(self) -> None:
        # libzmq treats a frame over MAXMSGSIZE as a protocol error: it drops
        # the connection and never retries, which would leave us deaf for good.
        # Re-making it is harmless after an ordinary disconnect too.
        while self._monitor.poll(0):
            self._monitor.recv_multipart()
        with suppress(zmq.ZMQError):
            self._socket.disconnect(self.endpoint)
        self._socket.connect(self.endpoint)
        self.reconnects += 1

    @property
    def forgotten(self) -> int:
        return self.seqs.forgotten

    def _read_frames(self) -> list[zmq.Frame]:
        # Frame by frame, keeping at most three: a hostile many-part message
        # costs a loop, not memory. Uncopied: an oversize frame is refused by
        # its length alone.
        frames = [self._socket.recv(zmq.NOBLOCK, copy=False)]
        while self._socket.getsockopt(zmq.RCVMORE):
            frame = self._socket.recv(zmq.NOBLOCK, copy=False)
            if len(frames) < 3:
                frames.append(frame)
        return frames

    def _accept(self, frames: list[zmq.Frame]) -> dict[str, Any] | None:
        try:
            if len(frames) != 2:
                raise schema.MessageError(f"{len(frames)} frames, expected [topic, payload]")
            for name, frame in zip(("topic", "payload"), frames):
                if len(frame) > schema.MAX_PAYLOAD_BYTES:     # a topic names a stream inside the payload
                    raise schema.MessageError(f"{name} frame of {len(frame)} bytes exceeds "
                                              f"{schema.MAX_PAYLOAD_BYTES}")
            topic, payload = (frame.bytes for frame in frames)
            message = schema.decode(payload, self.codec)
            if topic != schema.topic(message["type"], message["stream"]):
                raise schema.MessageError(f"topic {topic[:80]!r} does not match a {message['type']} "
                                          f"message of stream {message['stream'][:80]!r}")
        except schema.MessageError as error:
            self.rejected += 1
            self.last_rejection = str(error)
            return None
        if (self.streams is not None and message["stream"] not in self.streams) or \
                not message["stream"].startswith(self.prefix):
            return None                          # a prefix match for a stream we did not ask for
        self.missed += self.seqs.gap(hashlib.blake2b(topic, digest_size=16).digest(), message)
        self.received += 1
        return message

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield messages for ever, blocking while none arrive (Ctrl-C ends it)."""
        while True:
            yield self.receive()

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.disable_monitor()
            self._monitor.close(0)
            self._socket.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
