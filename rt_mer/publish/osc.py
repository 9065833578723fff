"""The OSC sender behind `rt-mer osc HOST:PORT` (rt_mer.cli.subscribers):
every emotion message as OSC over UDP, for lighting desks, VJ software and
show control (QLC+, Resolume, TouchDesigner).

`rt-mer osc` is a subscriber like `rt-mer listen` and `rt-mer dash` (the
same size, schema and range checks, the same rejected counter), so a
receiver that is slow or gone never touches the analysis. Each emotion message becomes one
OSC bundle (or, with bundle=False, one datagram per address) of:

    /rt-mer/<stream>/valence   float  -1 .. 1 (smoothed)
    /rt-mer/<stream>/arousal   float  -1 .. 1 (smoothed)
    /rt-mer/<stream>/quadrant  int    1 .. 4
    /rt-mer/<stream>/mood      string
    /rt-mer/<stream>/level     float  dBFS: -200 (silence) up to about 0

With normalize=True the three floats are 0 .. 1 instead, for programs that
read a float as a fader's travel. <stream> keeps printable ASCII but the
characters OSC reserves (space # * , / ? [ ] { }), which become "_".
"""
from __future__ import annotations

import re
import socket

from ..messages import LEVEL_RANGE_DBFS
from .sockets import PublishError

PREFIX = "/rt-mer"
OSC_RESERVED = frozenset(" #*,/?[]{}")
LEVEL_FLOOR_DBFS = -60.0          # normalize: -60 dBFS and below is 0, 0 dBFS is 1
_TARGET = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]+)):(?P<port>[0-9]{1,5})")


def osc_name(stream: str) -> str:
    """`stream` fit for an OSC address part: printable ASCII but the
    characters OSC reserves, each other character replaced by "_"."""
    return "".join(c if "!" <= c <= "~" and c not in OSC_RESERVED else "_" for c in stream) or "_"


def parse_target(text: str) -> tuple[str, int]:
    """HOST:PORT (HOST a name, an IPv4 address or [IPv6]; PORT 1-65535)."""
    match = _TARGET.fullmatch(text)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise PublishError(f"OSC target {text!r} does not parse: expected HOST:PORT, e.g. 127.0.0.1:9000")
    return match["ipv6"] or match["host"], int(match["port"])


def osc_values(message: dict, normalize: bool = False) -> list[tuple[str, str, float | int | str]]:
    """(address, OSC type tag, value) for one decoded emotion message. A
    level that is missing or not a number is left out (untrusted input)."""
    valence, arousal, level = message["valence"], message["arousal"], level_dbfs(message)
    if normalize:
        valence, arousal = (valence + 1) / 2, (arousal + 1) / 2
        level = None if level is None else min(max(1 - level / LEVEL_FLOOR_DBFS, 0.0), 1.0)
    prefix = f"{PREFIX}/{osc_name(message['stream'])}"
    values = [("valence", "f", valence), ("arousal", "f", arousal), ("quadrant", "i", message["quadrant"]),
              ("mood", "s", message["mood"].replace("\0", ""))]     # a NUL would end an OSC string early
    if level is not None:
        values.append(("level", "f", level))
    return [(f"{prefix}/{name}", tag, value) for name, tag, value in values]


def level_dbfs(message: dict) -> float | None:
    """The message's level in the schema's range; None if it is missing or
    not a number (the schema does not require it)."""
    level = message.get("level_dbfs")
    if isinstance(level, bool) or not isinstance(level, (int, float)):
        return None
    low, high = LEVEL_RANGE_DBFS
    return float(min(max(level, low), high))          # clamped first: float() of a huge int overflows


class OscSender:
    """Sends emotion messages to one OSC receiver over UDP; never blocks.

    `forwarded` counts messages sent whole, `failed` sends the network
    refused (`last_failure` says why). Raises PublishError for a target
    that does not parse or resolve."""

    def __init__(self, target: str, bundle: bool = True, normalize: bool = False) -> None:
        from pythonosc.udp_client import UDPClient
        self.host, self.port = parse_target(target)
        self.target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:     # resolved once: a name given to sendto would be looked up again for every datagram
            family, _, _, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
        except (socket.gaierror, UnicodeError) as error:
            raise PublishError(f"cannot resolve OSC host {self.host!r}: "
                               f"{getattr(error, 'strerror', None) or error}") from None
        self.address = address[0]
        self.client = UDPClient(self.address, self.port, allow_broadcast=True, family=family)
        self.bundle, self.normalize = bundle, normalize
        self.forwarded = self.failed = 0
        self.last_failure: str | None = None

    def packets(self, message: dict) -> list:
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder
        messages = []
        for address, tag, value in osc_values(message, self.normalize):
            builder = OscMessageBuilder(address)
            builder.add_arg(value, tag)
            messages.append(builder.build())
        if not self.bundle:
            return messages
        bundle = OscBundleBuilder(IMMEDIATELY)
        for osc_message in messages:
            bundle.add_content(osc_message)
        return [bundle.build()]

    def send(self, message: dict) -> None:
        """Send one message's packets; one the network refuses (no route, a
        datagram too large, a full buffer) is counted, and the rest still go."""
        failures = []
        for packet in self.packets(message):
            try:
                self.client.send(packet)
            except OSError as error:
                failures.append(error.strerror or str(error))
        if failures:
            self.failed += 1
            self.last_failure = failures[-1]
        else:
            self.forwarded += 1

    def close(self) -> None:
        self.client.close()
