"""A login's argon2 work runs beside the event loop, not on it: the loop that ingest shares keeps ticking."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
from argon2 import PasswordHasher

from collector.web import auth
from tests.web.conftest import Server, login, new_client, serve


class WatchedHasher(PasswordHasher):
    """The real argon2 hasher, counting calls and whether one is running right now."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.calls = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.running += 1
        self.calls += 1
        try:
            return super().hash(password, salt=salt)
        finally:
            self.running -= 1

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.running += 1
        self.calls += 1
        try:
            return super().verify(hash, password)
        finally:
            self.running -= 1


def test_the_loop_keeps_ticking_while_a_password_is_checked(
    store_url: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = WatchedHasher()
    monkeypatch.setattr(auth, "_hasher", hasher)

    async def body(srv: Server) -> None:
        ticks_while_hashing = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks_while_hashing
            while not stop.is_set():
                await asyncio.sleep(0.001)
                if hasher.running:
                    ticks_while_hashing += 1

        for user, password, want in (
            ("admin", "correct horse battery", 303),  # verify against the stored hash
            ("admin", "wrong horse battery", 401),  # the form again, with the error
            ("nobody", "correct horse battery", 401),  # no such user: a hash of the same cost
        ):
            ticks_while_hashing, calls = 0, hasher.calls
            tick = asyncio.create_task(ticker())
            async with new_client() as http:
                status, _ = await login(http, srv.url, user, password)
            stop.set()
            await tick
            stop.clear()
            assert status == want, (user, password, status)
            assert hasher.calls == calls + 1
            assert ticks_while_hashing > 0, f"the event loop stood still during argon2 ({user}, {password})"

    serve(store_url, body)
