"""Messages: bad input gets a precise error; acks, topics and identities behave."""

from __future__ import annotations

import pytest

import protocol as p
from protocol import topics

KEY = bytes(range(32))


def press(**over: object) -> dict[str, object]:
    fields: dict[str, object] = dict(b=1, s=2, ts=None, up=10, o="A1", k=1, n=2, i=None, tk=None, f=0)
    fields.update(over)
    return p.make("press", "box-1", **fields)


@pytest.mark.parametrize(
    ("over", "reason", "needle"),
    [
        ({"k": "1"}, "bad_field", "k: expected an integer"),
        ({"k": 0}, "bad_field", "k: 0 outside 1..5"),
        ({"n": 7}, "bad_field", "n: 7 outside 2..5"),
        ({"o": "王警官"}, "bad_field", "o: character"),
        ({"o": "x" * 33}, "bad_field", "o: length must be 1..32"),
        ({"tk": "T 1"}, "bad_field", "tk: character ' '"),
        ({"s": -1}, "bad_field", "s: -1 outside"),
        ({"b": True}, "bad_field", "b: expected an integer"),
        ({"f": 1024}, "bad_field", "f: 1024 outside"),
        ({"zz": 1}, "unknown_field", "'zz' in press"),
        ({"s": None}, "missing_field", "s is null"),
    ],
)
def test_bad_fields_are_named(over: dict[str, object], reason: str, needle: str) -> None:
    with pytest.raises(p.ProtocolError) as err:
        press(**over)
    assert err.value.reason == reason
    assert needle in str(err.value)


def test_unknown_version_and_type() -> None:
    with pytest.raises(p.ProtocolError, match="bad_version"):
        p.validate({"v": 2, "t": "press", "d": "x"})
    with pytest.raises(p.ProtocolError, match="unknown message type 'dance'"):
        p.validate({"v": 1, "t": "dance", "d": "x"})
    with pytest.raises(p.ProtocolError, match="missing_field: d"):
        p.validate({"v": 1, "t": "press"})
    with pytest.raises(p.ProtocolError, match="o \\(officer signing in\\)"):
        p.make("signin", "x", b=0, s=0, up=0)


def test_unknown_device_and_oversize() -> None:
    wire = p.encode(press(), KEY)
    with pytest.raises(p.ProtocolError) as err:
        p.decode(wire, lambda device: None)
    assert err.value.reason == "unknown_device"
    assert p.decode(wire, lambda device: KEY if device == "box-1" else None)["s"] == 2
    with pytest.raises(p.ProtocolError) as err:
        p.decode(b"{" + b" " * 2000 + b"}", KEY)
    assert err.value.reason == "oversize"


def test_chinese_text_round_trips_in_free_text() -> None:
    msg = p.make("status", "box-1", b=1, up=1, fw="1.0", q=0, full=False, mem=1, rst="上电", st="ok", cv=0)
    wire = p.encode(msg, KEY)
    assert "上电".encode() in wire
    assert p.decode(wire, KEY)["rst"] == "上电"


def test_ack_ranges_compress_and_match() -> None:
    ranges = p.ack_ranges([(2, 5), (1, 3), (1, 4), (1, 4), (2, 7), (1, 2)])
    assert ranges == [[1, 2, 4], [2, 5, 5], [2, 7, 7]]
    assert p.acked(ranges, 1, 3)
    assert not p.acked(ranges, 2, 6)
    ack = p.make("ack", "box-1", r=ranges, now=1)
    assert p.decode(p.encode(ack, KEY), KEY)["r"] == ranges
    with pytest.raises(p.ProtocolError, match="first 5 > last 4"):
        p.make("ack", "box-1", r=[[1, 5, 4]], now=1)


def test_identity_is_device_boot_seq() -> None:
    assert p.identity(press(b=7, s=9)) == ("box-1", 7, 9)


def test_topics_are_per_device_and_parse_back() -> None:
    assert topics.uplink("box-1") == "evalbox/box-1/up"
    assert topics.status("box-1") == "evalbox/box-1/status"
    assert topics.ack("box-1") == "evalbox/box-1/ack"
    assert topics.config("box-1") == "evalbox/box-1/config"
    assert topics.device_of(topics.uplink("box-1")) == "box-1"
    assert topics.kind_of(topics.command("box-1")) == "cmd"
    assert topics.device_of(topics.alerts()) is None
    assert topics.device_of("other/box-1/up") is None


def test_frame_decoder_survives_oversize_and_torn_lines() -> None:
    good = p.encode(press(), KEY)
    frame = p.encode_frame(good)
    dec = p.FrameDecoder(max_line=400)
    out = dec.feed(b"x" * 1000)  # a runaway line with no newline
    out += dec.feed(b"more garbage\n" + frame)
    assert out == [good]
    assert dec.counts["oversize"] == 1
    bad_crc = frame[:-3] + (b"0" if frame[-3:-2] != b"0" else b"1") + frame[-2:]
    assert dec.feed(bad_crc + frame[: len(frame) // 2] + b"\n" + frame) == [good]
    assert dec.counts["bad_crc"] == 1
    assert dec.counts["no_crc"] == 1
    assert dec.skipped[-1][0] == "no_crc"


def test_frame_refuses_line_breaks() -> None:
    with pytest.raises(ValueError):
        p.encode_frame(b"a\nb")
