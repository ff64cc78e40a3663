"""Fuzzing: random and mutated bytes never raise anything but ProtocolError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol as p

KEY = bytes(range(32))
SEED = [
    p.encode(p.make("press", "box-1", b=1, s=2, ts=1, up=10, o="A1", k=1, n=2, i=3, tk="T1", f=0), KEY),
    p.encode(p.make("ack", "box-1", r=[[1, 2, 3]], now=5), KEY),
    p.encode(p.make("config", "box-1", cv=1, n=3, iw=10000, mi=2000, g=True, hr=[480, 1020]), KEY),
]
FAST = settings(max_examples=6000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
stats = {"decoded": 0, "rejected": 0}


def _decode(data: bytes) -> None:
    try:
        msg = p.decode(data, KEY)
    except p.ProtocolError:
        stats["rejected"] += 1
        return
    stats["decoded"] += 1
    p.validate(msg)  # anything that decodes is a valid message


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEED)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == 0 and data:
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2 and data:
            del data[i : i + draw(st.integers(1, 8))]
        else:
            data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@FAST
@given(st.binary(max_size=1500))
def test_random_bytes_to_message_decoder(data: bytes) -> None:
    _decode(data)


@FAST
@given(mutated())
def test_mutated_messages_to_message_decoder(data: bytes) -> None:
    _decode(data)


@FAST
@given(st.lists(st.one_of(st.binary(max_size=300), st.sampled_from([p.encode_frame(s) for s in SEED])), max_size=8))
def test_frame_decoder_keeps_every_good_frame(chunks: list[bytes]) -> None:
    dec = p.FrameDecoder()
    stream = b"\n".join(chunks) + b"\n"
    got: list[bytes] = []
    for i in range(0, len(stream), 37):  # arbitrary split points: torn reads
        got += dec.feed(stream[i : i + 37])
    for payload in got:
        _decode(payload)
    expected = sum(1 for c in chunks if c.startswith(b"@") and p.framing.check_line(c.rstrip(b"\n"))[0] is not None)
    assert len(got) >= expected


@FAST
@given(mutated())
def test_mutated_frames(data: bytes) -> None:
    dec = p.FrameDecoder()
    for payload in dec.feed(p.encode_frame(SEED[0])[:5] + data + b"\n" + p.encode_frame(SEED[1])):
        _decode(payload)
    assert dec.frames >= 1  # the good frame after the noise always survives


def test_fuzz_covered_both_outcomes() -> None:
    # Runs after the fuzz tests in file order: both outcomes were exercised.
    assert stats["rejected"] + stats["decoded"] >= 10_000
    assert stats["rejected"] >= 9_000
    assert stats["decoded"] >= 1
