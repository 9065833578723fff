"""The wire: message schema, codecs, the ZeroMQ publisher and subscriber, and
the one subscriber loop (rt_mer.publish.loop)."""
from .schema import (MAX_PAYLOAD_BYTES, VERSION, EmotionMessage, Message, MessageError, StatusMessage, decode, encode,
                     topic)
from .sockets import DEFAULT_ENDPOINT, PublishError, Publisher, Subscriber, parse_endpoint

__all__ = ["DEFAULT_ENDPOINT", "MAX_PAYLOAD_BYTES", "VERSION", "EmotionMessage", "Message", "MessageError",
           "PublishError", "Publisher", "StatusMessage", "Subscriber", "decode", "encode", "parse_endpoint",
           "topic"]
