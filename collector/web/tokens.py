"""API tokens for integrations: issued once, stored hashed, one scope, rate-limited, revocable.

A token is ``evb_<id>_<secret>`` (64 characters): ``id`` is 16 hex digits,
public, the row's key; ``secret`` is 32 random bytes (256 bits) in URL-safe
base64. ``evalbox token add`` prints it once; the store keeps the id and the
SHA-256 of the whole token, never the secret, so a copy of the database (or
of a backup) lets nobody in.

Why SHA-256 and not argon2 as for the web page's passwords: argon2 is slow on
purpose because a password has little entropy and a stolen hash can be
guessed at offline. A 256-bit random secret cannot be guessed at any speed, so
a slow hash adds nothing but tens of milliseconds and 64 MiB per API request —
a request flood would become a CPU and memory flood. A fast hash of a
high-entropy secret is the standard choice (as for the session cookies); the
row is found by its public id and the hash compared in constant time
(``hmac.compare_digest``), so response times say nothing about the secret.

Scopes (``SCOPES``) and what each may call (``SCOPE_ROUTES``, JSON API only):

- ``read:reports``       ``GET /api/month``, ``GET /api/officers/{officer}``
- ``read:devices``       ``GET /api/devices``
- ``write:box-commands`` ``POST /api/box-commands`` (invite, sign-in, sign-out)

A token given ``--unit U`` sees U and the units under it, like a supervisor.
Every use is counted (``uses``, ``last_used_ms``) and rate-limited per token
(``[web] token_rate_per_min``, a fixed one-minute window kept in the store, so
every collector on one store shares it); each use and change is an entry of the hash-chained audit trail
(``audit_token``, ``collector.store.audit``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collector.clock import now_ms
from collector.errors import EvalboxError, UsageError
from collector.store import Database
from collector.store.audit import append_audit
from collector.timeplace import zone

SCOPES = ("read:reports", "read:devices", "write:box-commands")
SCOPE_ROUTES: dict[str, frozenset[tuple[str, str]]] = {
    "read:reports": frozenset({("GET", "/api/month"), ("GET", "/api/officers/{officer}")}),
    "read:devices": frozenset({("GET", "/api/devices")}),
    "write:box-commands": frozenset({("POST", "/api/box-commands")}),
}
PREFIX = "evb_"
TOKEN_LENGTH = 64
_TOKEN = re.compile(r"evb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
RATE_WINDOW_MS = 60_000


class TokenRefused(EvalboxError):
    """A bearer token that lets nobody in (HTTP 401): malformed, unknown, forged, revoked or expired."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TokenRateLimited(EvalboxError):
    """Too many requests with this token in the current minute (HTTP 429, ``Retry-After``)."""

    def __init__(self, name: str, retry_after_s: int) -> None:
        super().__init__(f"token {name!r}: too many requests; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ApiToken:
    """A token as the store knows it (never its secret)."""

    id: str
    name: str
    scope: str
    unit_id: str | None
    expires_ms: int | None


def token_hash(token: str) -> str:
    """What the store keeps of a token: the SHA-256 (hex) of the whole ``evb_…`` string."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_expiry(text: str, timezone: str, now: int | None = None) -> int:
    """``--expires``: ``YYYY-MM-DD`` (valid through that day in ``timezone``) or an ISO date-time; epoch ms."""
    now = now_ms() if now is None else now
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1)
            at = dt.datetime(day.year, day.month, day.day, tzinfo=zone(timezone))
        else:
            at = dt.datetime.fromisoformat(text)
            if at.tzinfo is None:
                at = at.replace(tzinfo=zone(timezone))
    except ValueError:
        raise UsageError(
            f"--expires {text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[+08:00] / 有效期格式错误"
        ) from None
    ms = int(at.timestamp() * 1000)
    if ms <= now:
        raise UsageError(f"--expires {text!r} is already past / 有效期已过")
    return ms


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise UsageError(f"token name {name!r}: 1–64 characters, no spaces")


async def add_token(
    db: Database, name: str, scope: str, *, unit_id: str | None, expires_ms: int | None, created_by: str
) -> str:
    """Issue a token; returns the token itself (the only time it exists outside the caller)."""
    _check_name(name)
    if scope not in SCOPES:
        raise UsageError(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if unit_id is not None and await db.fetchone("SELECT id FROM units WHERE id = ?", (unit_id,)) is None:
        raise UsageError(f"unit {unit_id!r} does not exist")
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = now_ms()
    async with db.transaction() as tx:
        if await tx.fetchone("SELECT id FROM api_tokens WHERE name = ?", (name,)) is not None:
            raise UsageError(f"a token named {name!r} exists already (revoked ones keep their name); choose another")
        await tx.execute(
            "INSERT INTO api_tokens (id, name, token_hash, scope, unit_id, created_ms, created_by, expires_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (token_id, name, token_hash(token), scope, unit_id, now, created_by, expires_ms),
        )
        after = {"id": token_id, "scope": scope, "unit": unit_id, "expires_ms": expires_ms}
        await audit_token(tx, actor=created_by, action="token.add", subject=f"token:{name}", before=None,
                               after=after)  # fmt: skip
    return token


async def revoke_token(db: Database, name: str, revoked_by: str) -> bool:
    """Revoke token ``name`` at once; False when it was revoked already. ``UsageError`` when unknown."""
    now = now_ms()
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT id, revoked_ms FROM api_tokens WHERE name = ?", (name,))
        if row is None:
            raise UsageError(f"no token named {name!r} (evalbox token list)")
        if row["revoked_ms"] is not None:
            return False
        await tx.execute(
            "UPDATE api_tokens SET revoked_ms = ?, revoked_by = ? WHERE id = ?", (now, revoked_by, row["id"])
        )
        await audit_token(tx, actor=revoked_by, action="token.revoke", subject=f"token:{name}",
                               before={"revoked_ms": None}, after={"revoked_ms": now})  # fmt: skip
    return True


async def list_tokens(db: Database) -> list[dict[str, Any]]:
    """Every token with its scope, unit, dates, last use and counts (the store has no secret to show)."""
    return (
        await db.fetch(
            "SELECT id, name, scope, unit_id, created_ms, created_by, expires_ms, revoked_ms, revoked_by,"
            " last_used_ms, uses, limited FROM api_tokens ORDER BY name"
        )
    ).dicts()


async def authenticate(db: Database, header: str, now: int | None = None) -> ApiToken:
    """The token of an ``Authorization: Bearer …`` header; ``TokenRefused`` (never echoing the token) otherwise."""
    now = now_ms() if now is None else now
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise TokenRefused("malformed_token", "Authorization header: expected 'Bearer evb_…'")
    m = _TOKEN.fullmatch(value)
    if m is None:
        raise TokenRefused(
            "malformed_token",
            f"malformed token ({len(value)} characters): an evalbox token is evb_<16 hex digits>_<43 characters>, "
            f"{TOKEN_LENGTH} in all — cut off or altered when copied?",
        )
    row = await db.fetchone(
        "SELECT id, name, token_hash, scope, unit_id, expires_ms, revoked_ms FROM api_tokens WHERE id = ?", (m[1],)
    )
    # Both refusals below cost the same hash and comparison, so timing does not tell a known id from an unknown one.
    ok = hmac.compare_digest(token_hash(value), row["token_hash"] if row else "0" * 64)
    if row is None or not ok:
        raise TokenRefused("unknown_token", "unknown token: not issued by this store, or forged or altered")
    if row["revoked_ms"] is not None:
        raise TokenRefused("revoked_token", f"token {row['name']!r} has been revoked")
    if row["expires_ms"] is not None and row["expires_ms"] <= now:
        raise TokenRefused("expired_token", f"token {row['name']!r} has expired")
    return ApiToken(row["id"], row["name"], row["scope"], row["unit_id"], row["expires_ms"])


async def admit(db: Database, token: ApiToken, rate_per_min: int, now: int | None = None) -> None:
    """Count one use of ``token`` against its rate limit; record it, or raise ``TokenRateLimited``.

    One statement: concurrent requests (on any collector of the store) each see their own count.
    """
    now = now_ms() if now is None else now
    window = now - now % RATE_WINDOW_MS
    over = "(rate_window_ms = ? AND rate_n >= ?)"
    row = await db.fetchone(
        "UPDATE api_tokens SET"
        " rate_n = CASE WHEN rate_window_ms = ? THEN rate_n + 1 ELSE 1 END,"
        " rate_window_ms = ?,"
        f" uses = uses + CASE WHEN {over} THEN 0 ELSE 1 END,"
        f" limited = limited + CASE WHEN {over} THEN 1 ELSE 0 END,"
        f" last_used_ms = CASE WHEN {over} THEN last_used_ms ELSE ? END"
        " WHERE id = ? RETURNING rate_n",
        (window, window, window, rate_per_min, window, rate_per_min, window, rate_per_min, now, token.id),
    )
    if row is not None and row["rate_n"] > rate_per_min:
        raise TokenRateLimited(token.name, max(1, -(-(window + RATE_WINDOW_MS - now) // 1000)))


def allows(scope: str, method: str, route: str) -> bool:
    """Whether a token of ``scope`` may call ``method route`` (the path pattern: ``/api/officers/{officer}``)."""
    return (method, route) in SCOPE_ROUTES.get(scope, frozenset())


async def audit_token(
    db: Database,
    *,
    actor: str,
    action: str,
    subject: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    """One entry in the hash-chained audit trail for a token's use or change (``collector.store.audit``).

    ``actor`` is ``token:NAME`` for a use (``action`` ``token.use``, ``subject`` ``METHOD PATH``, ``after`` the
    HTTP status) and the person's name for ``token.add`` / ``token.revoke`` (inside their transaction). The
    token's secret never reaches it: only its name, scope, unit and expiry."""
    await append_audit(db, actor=actor, action=action, subject=subject, before=before, after=after)
