"""evalbox wire protocol: shared, pure, runs on CPython and MicroPython.

Public names are re-exported here; see ``protocol/SPEC.md``.
"""

from protocol.errors import ProtocolError
from protocol.framing import FrameDecoder, encode_frame
from protocol.hmac256 import hmac_sha256
from protocol.limits import VERSION
from protocol.messages import (
    ACK,
    COMMAND,
    CONFIG,
    EVENT_TYPES,
    INVITE,
    PRESS,
    SIGNIN,
    SIGNOUT,
    STATUS,
    UNRATED,
    ack_ranges,
    acked,
    decode,
    encode,
    identity,
    make,
    parse,
    validate,
    verify,
)

__all__ = [
    "ACK",
    "COMMAND",
    "CONFIG",
    "EVENT_TYPES",
    "INVITE",
    "PRESS",
    "SIGNIN",
    "SIGNOUT",
    "STATUS",
    "UNRATED",
    "VERSION",
    "FrameDecoder",
    "ProtocolError",
    "ack_ranges",
    "acked",
    "decode",
    "encode",
    "encode_frame",
    "hmac_sha256",
    "identity",
    "make",
    "parse",
    "validate",
    "verify",
]
