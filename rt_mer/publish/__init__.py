"""Message schema, codecs, and the ZeroMQ publisher and subscriber."""
from .schema import (MAX_PAYLOAD_BYTES, VERSION, EmotionMessage, Message, MessageError, StatusMessage, decode, encode,
                     topic)
from .sockets import DEFAULT_ENDPOINT, PublishError, Publisher, Subscriber, listen, parse_endpoint

__all__ = ["DEFAULT_ENDPOINT", "MAX_PAYLOAD_BYTES", "VERSION", "EmotionMessage", "Message", "MessageError",
           "PublishError", "Publisher", "StatusMessage", "Subscriber", "decode", "encode", "listen", "parse_endpoint",
           "topic"]
