"""The broker harness itself: passwords and ACLs are really enforced."""

from __future__ import annotations

import pathlib
import threading

import paho.mqtt.client as mqtt
import pytest

from tests.mosquitto import Mosquitto

ACL = "user collector\ntopic readwrite evalbox/#\n\npattern readwrite evalbox/%u/#\n"


def _connect(port: int, user: str, password: str) -> tuple[mqtt.Client, int]:
    done = threading.Event()
    result: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
    client.username_pw_set(user, password)

    def on_connect(c: mqtt.Client, u: object, f: object, rc: mqtt.ReasonCode, p: object) -> None:
        result.append(rc.value)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(5)
    return client, result[0] if result else -1


def test_password_and_acl_enforced(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("paho.mqtt")
    with Mosquitto(tmp_path, users={"collector": "c-pw", "box-1": "b1", "box-2": "b2"}, acl=ACL) as broker:
        _bad, rc = _connect(broker.port, "box-1", "wrong")
        _bad.loop_stop()
        assert rc != 0  # wrong password refused
        got: list[str] = []
        seen = threading.Event()
        col, rc = _connect(broker.port, "collector", "c-pw")
        assert rc == 0
        col.on_message = lambda c, u, m: (got.append(m.topic), seen.set())
        col.subscribe("evalbox/#", qos=1)
        box1, rc = _connect(broker.port, "box-1", "b1")
        assert rc == 0
        import time

        time.sleep(0.3)
        box1.publish("evalbox/box-2/up", b"forged", qos=1).wait_for_publish(5)  # not its topic: dropped
        box1.publish("evalbox/box-1/up", b"own", qos=1).wait_for_publish(5)
        assert seen.wait(5)
        time.sleep(0.3)
        assert got == ["evalbox/box-1/up"]
        for c in (box1, col):
            c.loop_stop()
            c.disconnect()
