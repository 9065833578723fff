"""The wire: message codecs and checks (schema), the ZeroMQ publisher and
subscriber. The typed messages themselves live in rt_mer.messages."""
from .schema import MAX_PAYLOAD_BYTES, VERSION, MessageError, decode, encode, topic
from .sockets import DEFAULT_ENDPOINT, PublishError, Publisher, Subscriber, listen, parse_endpoint

__all__ = ["DEFAULT_ENDPOINT", "MAX_PAYLOAD_BYTES", "VERSION", "MessageError", "PublishError", "Publisher",
           "Subscriber", "decode", "encode", "listen", "parse_endpoint", "topic"]
