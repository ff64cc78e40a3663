"""MQTT 3.1.1 packets byte for byte (OASIS spec, section 3), run under MicroPython.

Prints ``mqtt packets: N passed`` last.
"""

import sys

from firmware import mqtt
from firmware.mqtt import _packet, connect_packet, publish_packet, subscribe_packet

passed = 0


def check(got: bytes, want: bytes, name: str) -> None:
    global passed
    assert got == want, "%s: %r != %r" % (name, got, want)
    passed += 1
    print("ok", name)


check(
    connect_packet("box-1", "box-1", "pw", 30, "evalbox/box-1/status", b"offline", False),
    b"\x10\x3b\x00\x04MQTT\x04\xec\x00\x1e"
    + b"\x00\x05box-1"
    + b"\x00\x14evalbox/box-1/status\x00\x07offline"
    + b"\x00\x05box-1\x00\x02pw",
    "CONNECT: user, password, will QoS 1 retained, persistent session, keepalive 30",
)
check(
    connect_packet("c", None, None, 60, None, b"", True),
    b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c",
    "CONNECT clean",
)
check(publish_packet("a/b", b"hi", 1, False, 10), b"\x32\x09\x00\x03a/b\x00\x0ahi", "PUBLISH QoS 1 with packet id")
check(publish_packet("a/b", b"x", 1, True, 1), b"\x33\x08\x00\x03a/b\x00\x01x", "PUBLISH QoS 1 retained")
check(publish_packet("a", b"", 0, False, 0), b"\x30\x03\x00\x01a", "PUBLISH QoS 0 has no packet id")
check(publish_packet("a", b"", 1, False, 2, True), b"\x3a\x05\x00\x01a\x00\x02", "PUBLISH DUP flag")
check(
    subscribe_packet(7, ["x/ack", "x/cmd"]),
    b"\x82\x12\x00\x07\x00\x05x/ack\x01\x00\x05x/cmd\x01",
    "SUBSCRIBE two topics QoS 1",
)
check(_packet(0xC0, b""), b"\xc0\x00", "PINGREQ")
check(_packet(0x30, bytes(127))[:2], b"\x30\x7f", "remaining length 127: one byte")
check(_packet(0x30, bytes(128))[:3], b"\x30\x80\x01", "remaining length 128: two bytes")
check(_packet(0x30, bytes(16384))[:4], b"\x30\x80\x80\x01", "remaining length 16384: three bytes")

# the broker's address: looked up once per boot (getaddrinfo blocks the loop), an IP literal taken as it is
lookups = []
real_socket = mqtt.socket


class CountingSocketModule:
    SOCK_STREAM = real_socket.SOCK_STREAM

    def getaddrinfo(self, *args: "object") -> "object":
        lookups.append(args[0])
        return real_socket.getaddrinfo(*args)


mqtt.socket = CountingSocketModule()
first = mqtt.resolve("localhost", 1883)
assert mqtt.resolve("localhost", 1883) == first and mqtt.resolve("127.0.0.1", 1883)[0] == first[0]
mqtt.resolve("127.0.0.1", 1883)
assert lookups == ["localhost", "127.0.0.1"], lookups
mqtt.socket = real_socket
passed += 1
print("ok broker address looked up once per host and cached")

print("mqtt packets: %d passed" % passed)
sys.exit(0)
