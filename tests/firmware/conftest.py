"""Fixtures of the firmware tests: a real mosquitto with the boxes' ACL, a CPython acker, the deployed build."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.firmware.boardbox import build_firmware
from tests.firmware.simbox import ACL, USERS, Acker, wait_for
from tests.mosquitto import Mosquitto


@pytest.fixture
def broker(tmp_path: pathlib.Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path, users=USERS, acl=ACL) as b:
        yield b


@pytest.fixture
def acker(broker: Mosquitto) -> Iterator[Acker]:
    a = Acker(broker.port)
    wait_for(lambda: a.client.is_connected(), 20, "acker connected")
    yield a
    a.close()


@pytest.fixture(scope="session")
def firmware_build(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The tree tools/deploy_box.sh copies onto a board (mpy-cross output), built once per run."""
    return build_firmware(tmp_path_factory.mktemp("firmware") / "build")
