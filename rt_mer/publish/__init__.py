"""The wire: message codecs and checks (schema), the ZeroMQ publisher and
subscriber, and the one subscriber loop (rt_mer.publish.loop). The typed
messages themselves live in rt_mer.messages."""
from .schema import MAX_PAYLOAD_BYTES, VERSION, MessageError, decode, encode, topic
from .sockets import DEFAULT_ENDPOINT, PublishError, Publisher, Subscriber, parse_endpoint

__all__ = ["DEFAULT_ENDPOINT", "MAX_PAYLOAD_BYTES", "VERSION", "MessageError", "PublishError", "Publisher",
           "Subscriber", "decode", "encode", "parse_endpoint", "topic"]
