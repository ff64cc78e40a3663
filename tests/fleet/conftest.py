"""The fleet tests' broker: a real mosquitto with a login per sim box and the collector's, and the box ACL."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.firmware.simbox import ACL
from tests.mosquitto import Mosquitto

BOXES = ["box-1", "box-2", "box-3", "box-4"]
USERS = {d: f"pw-{d}" for d in BOXES} | {"collector": "pw-collector"}


@pytest.fixture
def broker(tmp_path: pathlib.Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path, users=USERS, acl=ACL) as b:
        yield b
