"""API tokens on the JSON API: scope and unit, revoked/expired/forged/truncated refused, rate limit, no secret kept.

Against the seeded store (U1: O1, O2, O4 on box-1; U2: O3 on box-2) on SQLite and PostgreSQL, the web app on a
real port, requests with ``Authorization: Bearer``; tokens issued by the ``evalbox token`` command itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from collector.clock import now_ms
from collector.store.audit import verify
from collector.web import tokens
from collector.web.settings import WebSettings
from tests.web.conftest import Server, serve
from tests.web.seed import EXPECTED, MONTH


def evalbox(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args, "--db", store_url],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, LC_ALL="C.UTF-8"),
    )


def issue(store_url: str, name: str, scope: str, *extra: str) -> str:
    """``evalbox token add``: the token it prints once."""
    out = evalbox(store_url, "token", "add", name, "--scope", scope, *extra)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("evb_") and len(token) == tokens.TOKEN_LENGTH, out.stdout
    return token


async def call(
    srv: Server, method: str, path: str, token: str | None, json: object = None
) -> tuple[int, dict[str, object], dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as http,  # no cookies: the token alone
        http.request(method, srv.url + path, headers=headers, json=json) as r,
    ):
        body = await r.json(content_type=None) if r.content_type == "application/json" else {"text": await r.text()}
        return r.status, body, dict(r.headers)


def test_read_reports_token_reads_its_unit_only_and_never_writes(store_url: str) -> None:
    async def body(srv: Server) -> None:
        token = await asyncio.to_thread(issue, store_url, "province-u1", "read:reports", "--unit", "U1")
        status, doc, _ = await call(srv, "GET", f"/api/month?month={MONTH}", token)
        assert status == 200, doc
        lines = {o["officer"]: (o["rated"], o["satisfied"]) for o in doc["officers"]}  # type: ignore[union-attr]
        assert lines == {k: EXPECTED[k][:2] for k in ("O1", "O2", "O4")}  # U1's officers, the report's numbers
        status, doc, _ = await call(srv, "GET", f"/api/month?month={MONTH}&unit=U1", token)
        assert status == 200 and {o["officer"] for o in doc["officers"]} == {"O1", "O2", "O4"}  # type: ignore[union-attr]
        status, _, _ = await call(srv, "GET", f"/api/officers/O2?month={MONTH}", token)
        assert status == 200
        # another unit: 403
        assert (await call(srv, "GET", f"/api/month?month={MONTH}&unit=U2", token))[0] == 403
        assert (await call(srv, "GET", f"/api/officers/O3?month={MONTH}", token))[0] == 403
        # outside its scope, reads and every write: 403 naming the scope
        for method, path, payload in (
            ("GET", "/api/devices", None),
            ("GET", "/api/cases", None),
            ("GET", "/api/me", None),
            ("POST", "/api/cases/1", {"action": "visit", "note": "x"}),
            ("POST", "/api/alerts/1/ack", None),
            ("POST", "/api/box-commands", {"device": "box-1", "op": "invite"}),
        ):
            status, doc, _ = await call(srv, method, path, token, payload)
            assert status == 403, (method, path, status, doc)
            assert doc["error"] == "scope" and "read:reports" in str(doc["message"]), doc
        assert await srv.db.fetchone("SELECT COUNT(*) FROM box_commands") == (0,)
        # an all-units token sees U2 too
        every = await asyncio.to_thread(issue, store_url, "province-all", "read:reports")
        status, doc, _ = await call(srv, "GET", f"/api/month?month={MONTH}&unit=U2", every)
        assert status == 200 and [o["officer"] for o in doc["officers"]] == ["O3"]  # type: ignore[union-attr]
        # a devices token sees its unit's boxes only
        dev = await asyncio.to_thread(issue, store_url, "noc", "read:devices", "--unit", "U2")
        status, doc, _ = await call(srv, "GET", "/api/devices", dev)
        assert status == 200 and [d["id"] for d in doc["devices"]] == ["box-2"]  # type: ignore[union-attr]
        assert (await call(srv, "GET", f"/api/month?month={MONTH}", dev))[0] == 403
        # uses are counted and shown, the secret never
        listing = (await asyncio.to_thread(evalbox, store_url, "token", "list")).stdout
        row = next(ln for ln in listing.splitlines() if ln.startswith("province-u1 "))
        assert row.split()[-2:] == ["11", "0"], listing  # 11 uses, none refused by the rate limit
        assert token[4:20] not in listing and token[21:] not in listing
        used = await srv.db.fetchone("SELECT last_used_ms, uses FROM api_tokens WHERE name = 'province-u1'")
        assert used is not None and used["uses"] == 11 and now_ms() - used["last_used_ms"] < 60_000

    serve(store_url, body)


def test_revoked_expired_forged_and_truncated_tokens_get_401(store_url: str) -> None:
    async def body(srv: Server) -> None:
        token = await asyncio.to_thread(issue, store_url, "hall", "read:reports", "--unit", "U1")
        path = f"/api/month?month={MONTH}"
        assert (await call(srv, "GET", path, token))[0] == 200
        cases = {
            "truncated": token[:-5],
            "forged secret": token[:21] + ("A" if token[21] != "A" else "B") + token[22:],
            "forged id": "evb_" + "0" * 16 + token[20:],
            "garbage": "hello",
        }
        for what, bad in cases.items():
            status, doc, headers = await call(srv, "GET", path, bad)
            assert status == 401, (what, doc)
            assert "Bearer" in headers["WWW-Authenticate"]
            if what in ("truncated", "garbage"):
                assert doc["error"] == "malformed_token" and "cut off" in str(doc["message"]), doc
            else:
                assert doc["error"] == "unknown_token" and "forged" in str(doc["message"]), doc
            assert bad not in str(doc)  # the refusal never echoes what was sent
        status, doc, _ = await call(srv, "GET", path, None)
        assert status == 401  # neither token nor session
        async with (
            aiohttp.ClientSession() as http,  # another scheme
            http.get(srv.url + path, headers={"Authorization": f"Basic {token}"}) as r,
        ):
            assert r.status == 401 and (await r.json())["error"] == "malformed_token"
        # revoked: refused at once
        out = await asyncio.to_thread(evalbox, store_url, "token", "revoke", "hall")
        assert out.returncode == 0, out.stderr
        status, doc, _ = await call(srv, "GET", path, token)
        assert status == 401 and doc["error"] == "revoked_token", doc
        # expired
        soon = await tokens.add_token(
            srv.db, "temp", "read:reports", unit_id=None, expires_ms=now_ms() + 400, created_by="test"
        )
        assert (await call(srv, "GET", path, soon))[0] == 200
        await asyncio.sleep(0.6)
        status, doc, _ = await call(srv, "GET", path, soon)
        assert status == 401 and doc["error"] == "expired_token", doc

    serve(store_url, body)


def test_rate_limit_per_token_answers_429_with_retry_after(store_url: str) -> None:
    async def body(srv: Server) -> None:
        busy = await tokens.add_token(srv.db, "busy", "read:devices", unit_id=None, expires_ms=None, created_by="t")
        calm = await tokens.add_token(srv.db, "calm", "read:devices", unit_id=None, expires_ms=None, created_by="t")
        # stay inside one rate window: start just after a minute boundary if the next one is near
        left = tokens.RATE_WINDOW_MS - now_ms() % tokens.RATE_WINDOW_MS
        if left < 10_000:
            await asyncio.sleep(left / 1000 + 0.05)
        statuses = [(await call(srv, "GET", "/api/devices", busy))[0] for _ in range(5)]
        assert statuses == [200] * 5
        status, doc, headers = await call(srv, "GET", "/api/devices", busy)
        assert status == 429 and doc["error"] == "rate_limited", doc
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert (await call(srv, "GET", "/api/devices", calm))[0] == 200  # per token: the other one is not limited
        row = await srv.db.fetchone("SELECT uses, limited FROM api_tokens WHERE name = 'busy'")
        assert row is not None and (row["uses"], row["limited"]) == (5, 1)

    serve(store_url, body, WebSettings(token_rate_per_min=5))


def test_box_commands_over_http_in_the_tokens_unit(store_url: str) -> None:
    async def body(srv: Server) -> None:
        token = await asyncio.to_thread(issue, store_url, "queue-hall1", "write:box-commands", "--unit", "U1")
        status, doc, _ = await call(srv, "POST", "/api/box-commands", token, {"device": "box-1", "op": "signin",
                                                                              "officer": "O1"})  # fmt: skip
        assert status == 202, doc
        status, doc, _ = await call(srv, "POST", "/api/box-commands", token,
                                    {"device": "box-1", "op": "invite", "ticket": "A-0042"})  # fmt: skip
        assert status == 202 and doc["op"] == "invite", doc
        rows = await srv.db.fetch("SELECT id, device_id, op, officer_id, ticket, sent_ms FROM box_commands ORDER BY id")
        assert [tuple(r) for r in rows] == [
            (1, "box-1", "signin", "O1", None, None),
            (2, "box-1", "invite", None, "A-0042", None),
        ]  # queued: the running collector signs and sends them (tests/e2e/test_box_commands.py)
        assert doc["id"] == 2
        refusals = [
            ({"device": "box-2", "op": "invite"}, 403, "another unit"),
            ({"device": "box-9", "op": "invite"}, 404, "does not exist"),
            ({"device": "box-1", "op": "reboot"}, 400, "expected one of"),
            ({"device": "box-1", "op": "signin"}, 400, 'needs "officer"'),
            ({"device": "box-1", "op": "signout", "ticket": "A1"}, 400, '"ticket" goes with invite only'),
            ({"device": "box-1", "op": "invite", "ticket": "x" * 500}, 400, "box command"),
            ({"device": "box-1"}, 400, "required"),
            ({"device": "box-1", "op": "invite", "extra": 1}, 400, "unknown field"),
            ([1, 2], 400, "JSON object"),
        ]
        for payload, want, words in refusals:
            status, doc, _ = await call(srv, "POST", "/api/box-commands", token, payload)
            assert status == want and words in str(doc["message"]), (payload, status, doc)
        async with aiohttp.ClientSession() as http:
            hdr = {"Authorization": f"Bearer {token}"}
            async with http.post(srv.url + "/api/box-commands", data=b"{not json", headers=hdr) as r:
                assert r.status == 400
            async with http.post(srv.url + "/api/box-commands", data=b"x" * 10_000, headers=hdr) as r:
                assert r.status == 413
        assert len(await srv.db.fetch("SELECT id FROM box_commands")) == 2  # nothing refused was queued
        # its scope reads nothing
        assert (await call(srv, "GET", f"/api/month?month={MONTH}", token))[0] == 403

    serve(store_url, body)


def test_token_secrets_never_reach_the_store_or_the_logs(
    store_url: str, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's access log included
    issued: list[str] = []

    async def body(srv: Server) -> None:
        for name, scope in (("a", "read:reports"), ("b", "write:box-commands"), ("c", "read:devices")):
            issued.append(await asyncio.to_thread(issue, store_url, name, scope))
        await call(srv, "GET", f"/api/month?month={MONTH}", issued[0])
        await call(srv, "POST", "/api/box-commands", issued[1], {"device": "box-1", "op": "invite"})
        await call(srv, "GET", "/api/devices", issued[2])
        await call(srv, "GET", "/api/devices", issued[2][:-3])  # truncated: refused, not logged either
        await asyncio.to_thread(evalbox, store_url, "token", "revoke", "c")
        if not store_url.startswith("postgresql"):
            return
        dump: list[str] = []  # PostgreSQL: every row of every table as text
        for (table,) in await srv.db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            dump += [str(tuple(r)) for r in await srv.db.fetch(f"SELECT * FROM {table}")]
        text = "\n".join(dump)
        assert "api_tokens" in text or len(dump) > 10
        for token in issued:
            assert token[21:] not in text and token not in text

    serve(store_url, body)
    assert len(issued) == 3
    logs = caplog.text
    assert "api token a (read:reports): GET" in logs  # uses are logged, by name
    if not store_url.startswith("postgresql"):
        files = [p for p in pathlib.Path(store_url).parent.iterdir() if p.name.startswith("evalbox.db")]
        raw = b"".join(p.read_bytes() for p in files)  # the database and its WAL/journal, as on disk
        assert b"api_tokens" in raw
        for token in issued:
            assert token[21:].encode() not in raw and token.encode() not in raw
            assert tokens.token_hash(token).encode() in raw  # what it keeps instead
    for token in issued:
        assert token[21:] not in logs and token[21:-3] not in logs


def test_every_token_use_and_change_is_in_the_audit_trail(store_url: str) -> None:
    """Each use (allowed or refused by scope or unit) and each add and revoke is an entry of the hash-chained
    audit trail, with the token's name as actor and never its secret; the chain still verifies."""
    entries: list[Any] = []
    issued: list[str] = []

    async def body(srv: Server) -> None:
        token = await tokens.add_token(srv.db, "hcp", "read:reports", unit_id="U1", expires_ms=None, created_by="ops")
        issued.append(token)
        await call(srv, "GET", f"/api/month?month={MONTH}", token)
        await call(srv, "GET", f"/api/month?month={MONTH}&unit=U2", token)
        await call(srv, "GET", "/api/devices", token)
        await call(srv, "GET", "/api/devices", token[:-1])  # not a token of this store: nobody to audit
        await tokens.revoke_token(srv.db, "hcp", "ops")
        entries.extend(
            await srv.db.fetch(
                "SELECT actor, action, subject, before_json, after_json FROM audit_log"
                " WHERE action LIKE 'token.%' ORDER BY seq"
            )
        )
        assert (await verify(srv.db)).ok

    serve(store_url, body)
    assert [(e[0], e[1]) for e in entries] == [("ops", "token.add")] + [("token:hcp", "token.use")] * 3 + [
        ("ops", "token.revoke")
    ]
    uses = [(e[2], json.loads(e[4])) for e in entries if e[1] == "token.use"]
    assert uses == [
        (f"GET /api/month?month={MONTH}", {"status": 200}),
        (f"GET /api/month?month={MONTH}&unit=U2", {"status": 403}),
        ("GET /api/devices", {"status": 403}),
    ]
    added = json.loads(entries[0][4])
    assert added == {"id": added["id"], "scope": "read:reports", "unit": "U1", "expires_ms": None}
    assert all(issued[0][21:] not in str(e) for e in entries)
