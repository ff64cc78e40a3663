"""Every error text the firmware can put in its status ``err`` maps to a code and a supervisor's sentence.

The texts are collected from the firmware's source (``report(...)``, the outbox's ``_problem(...)``, the
exceptions whose text is reported as is, the ``err`` of a refused key), with their ``%`` fields filled in,
so a new message in the firmware without an entry in ``collector/ingest/device_errors.py`` fails here.
"""

from __future__ import annotations

import ast
import re

import pytest

from collector.ingest.device_errors import BY_CODE, COLLECTOR, ERRORS, collector_finding, explain
from tests.conftest import ROOT

FIRMWARE = ROOT / "firmware"
PROTOCOL = ROOT / "protocol"
# calls whose first argument becomes ``err`` (directly, or as the text of an exception the app reports)
REPORTING = {"report", "_problem", "OutboxFull", "MQTTError", "out_of_memory"}
# the sim board's control channel answers the test driver, never in a status: not a device error
CONTROL_CHANNEL = FIRMWARE / "boards" / "sim.py"


def _sample(node: ast.expr) -> str | None:
    """The text an argument produces, with ``%`` fields filled in; None when it is not a literal format."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant):
        fmt = str(node.left.value)
        return re.sub(r"%[dsr]", lambda m: {"%d": "7", "%s": "x.y", "%r": "OSError(5)"}[m.group()], fmt)
    return None


def _firmware_texts() -> set[str]:
    texts: set[str] = set()
    for path in FIRMWARE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args:
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if name in REPORTING:
                    text = _sample(node.args[0])
                    if text is not None:
                        texts.add("MemoryError %s (7 so far)" % text if name == "out_of_memory" else text)
            # {"ok": False, "err": ...}: a refused key, invite or sign-in
            if isinstance(node, ast.Dict) and path != CONTROL_CHANNEL:
                for k, v in zip(node.keys, node.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == "err" and v is not None:
                        text = _sample(v)
                        if text is not None:
                            texts.add(text)
    return texts


def _protocol_reasons() -> set[str]:
    found = set()
    for path in PROTOCOL.glob("*.py"):
        found |= set(re.findall(r'ProtocolError\("(\w+)"', path.read_text(encoding="utf-8")))
    return found


FIRMWARE_TEXTS = sorted(_firmware_texts())


def test_the_firmware_source_was_read() -> None:
    # the collection itself works: it finds the messages a supervisor complained about and the refusals
    assert "outbox full: 7 unacked events" in FIRMWARE_TEXTS
    assert "Wi-Fi not joined" in FIRMWARE_TEXTS
    assert "downlink rejected: x.y x.y" in FIRMWARE_TEXTS
    assert "MemoryError on key 7: press not taken (7 so far)" in FIRMWARE_TEXTS
    assert len(FIRMWARE_TEXTS) >= 30


@pytest.mark.parametrize("text", FIRMWARE_TEXTS)
def test_every_firmware_error_maps(text: str) -> None:
    got = explain(text)
    assert got is not None and got.known, f"{text!r} has no entry in collector/ingest/device_errors.py"
    assert got.code in BY_CODE
    assert re.search(r"[\u4e00-\u9fff]", got.zh) and got.do_zh and got.do_en
    assert "{" not in got.zh + got.en  # every field filled
    assert got.raw == text


@pytest.mark.parametrize("reason", sorted(_protocol_reasons()))
def test_every_downlink_refusal_maps(reason: str) -> None:
    got = explain(f"downlink rejected: {reason} some detail")
    assert got is not None and got.code in ("downlink_rejected", "downlink_bad_key")
    if reason in ("bad_mac", "no_mac", "wrong_device"):
        assert got.code == "downlink_bad_key" and "密钥" in got.zh
    else:
        assert reason in got.zh


def test_fields_are_filled_in() -> None:
    got = explain("key 3 beyond the scale 1..2 ignored (4 so far)")
    assert got is not None and got.code == "key_beyond_scale"
    assert got.zh.startswith("按下了评价档位以外的按键（第 3 键，本机为 2 档评价）")
    assert "key 3, 2-level box" in got.en
    full = explain("outbox full: 2048 unacked events")
    assert full is not None and "2048 条未确认" in full.zh
    dns = explain("DNS lookup of broker.local took 2300 ms: give an IP address")
    assert dns is not None and "2300 毫秒" in dns.zh and "IP" in dns.do_zh


def test_old_firmware_strings_and_codes_both_map() -> None:
    old = explain("ack names 1 ids not in the outbox")
    assert old is not None and old.code == "repeat_ack" and not old.serious
    # a firmware that sends codes instead of prose: understood alike
    for e in ERRORS:
        got = explain(e.code)
        assert got is not None and got.code == e.code and got.known


def test_firmware_text_cut_at_80_characters_still_maps() -> None:
    text = "restarted after a crash: OSError: [Errno 5] EIO while writing a very long path /j/0000001234"[:80]
    got = explain(text)
    assert got is not None and got.code == "crashed"


def test_unknown_and_empty() -> None:
    assert explain(None) is None and explain("  ") is None
    got = explain("something the table has never seen")
    assert got is not None and got.code == "unknown" and not got.known
    assert got.zh == "未知错误" and got.raw == "something the table has never seen"


def test_codes_are_unique_and_collector_findings_read_alike() -> None:
    codes = [e.code for e in (*ERRORS, *COLLECTOR)]
    assert len(codes) == len(set(codes))
    off = collector_finding("offline")
    assert off.code == "offline" and "离线" in off.zh and off.do_en
