"""Users, argon2 password hashes, sessions with expiry, CSRF tokens, login throttling.

Hashing and checking a password costs tens of milliseconds of CPU and 64 MiB (argon2's point): it runs
in a worker thread (``asyncio.to_thread``; argon2-cffi releases the GIL), so the event loop that ingest
shares keeps receiving and committing during a login.

The session cookie holds a random token; the store keeps only its SHA-256, so
a copy of the database does not let anyone in. Each session has its own CSRF
token, sent back in every form (``csrf`` field) or API call (``X-CSRF-Token``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from collector.clock import now_ms
from collector.errors import EvalboxError, UsageError
from collector.store import Database
from collector.store.audit import append_audit, user_state
from collector.web.settings import WebSettings

ROLES = ("admin", "supervisor")
_hasher = PasswordHasher()


class LoginError(EvalboxError):
    """Wrong name or password (the message never says which)."""


class LoginThrottled(EvalboxError):
    """Too many wrong passwords: try again after ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Session:
    token: str  # the cookie value (only on creation)
    user_name: str
    csrf: str
    expires_ms: int


def hash_password(password: str) -> str:
    """The argon2 hash of ``password`` (blocking: call it through ``asyncio.to_thread`` from the loop)."""
    return _hasher.hash(password)


def check_password(pw_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``pw_hash`` (blocking, like ``hash_password``)."""
    try:
        return _hasher.verify(pw_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise UsageError(f"user name {name!r}: 1–64 characters, no spaces")


async def add_user(db: Database, name: str, role: str, password: str, units: list[str], *, by: str = "system") -> None:
    """Create or update a user (audited as done ``by``); a supervisor needs at least one existing unit."""
    _check_name(name)
    if role not in ROLES:
        raise UsageError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise UsageError("password: at least 8 characters")
    if role == "supervisor" and not units:
        raise UsageError("a supervisor needs --unit (the units they may see)")
    for u in units:
        if await db.fetchone("SELECT id FROM units WHERE id = ?", (u,)) is None:
            raise UsageError(f"unit {u!r} does not exist")
    pw_hash = await asyncio.to_thread(hash_password, password)
    async with db.transaction() as tx:
        before = await user_state(tx, name)
        await tx.execute(
            "INSERT INTO users (name, role, password_hash, created_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,"
            " disabled = 0",
            (name, role, pw_hash, now_ms()),
        )
        await tx.execute("DELETE FROM user_units WHERE user_name = ?", (name,))
        for u in units:
            await tx.execute("INSERT INTO user_units (user_name, unit_id) VALUES (?, ?)", (name, u))
        after = {**(await user_state(tx, name) or {}), "password_set": True}
        action = "user.add" if before is None else "user.change"
        await append_audit(tx, actor=by, action=action, subject=f"user:{name}", before=before, after=after)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _throttle_check(db: Database, keys: list[str], now: int) -> None:
    for key in keys:
        row = await db.fetchone("SELECT locked_until_ms FROM login_failures WHERE key = ?", (key,))
        if row and row["locked_until_ms"] > now:
            raise LoginThrottled(max(1, (row["locked_until_ms"] - now + 999) // 1000))


async def _throttle_fail(db: Database, keys: list[str], now: int, settings: WebSettings) -> None:
    window = settings.login_lockout_s * 1000
    async with db.transaction() as tx:
        for key in keys:
            row = await tx.fetchone("SELECT failures, first_ms FROM login_failures WHERE key = ?", (key,))
            if row is None or now - row["first_ms"] > window:
                failures, first = 1, now
            else:
                failures, first = row["failures"] + 1, row["first_ms"]
            locked = now + window if failures >= settings.login_max_failures else 0
            await tx.execute(
                "INSERT INTO login_failures (key, failures, first_ms, locked_until_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, first_ms = excluded.first_ms,"
                " locked_until_ms = excluded.locked_until_ms",
                (key, failures, first, locked),
            )


async def login(db: Database, name: str, password: str, remote: str, settings: WebSettings) -> Session:
    """Check the password and open a session; ``LoginError`` or ``LoginThrottled`` otherwise."""
    now = now_ms()
    keys = [f"user:{name[:64]}", f"addr:{remote}"]
    await _throttle_check(db, keys, now)
    user = await db.fetchone("SELECT name, password_hash FROM users WHERE name = ? AND disabled = 0", (name,))
    if user is not None:
        ok = await asyncio.to_thread(check_password, user["password_hash"], password)
    else:
        await asyncio.to_thread(hash_password, password)  # same cost whether or not the user exists
        ok = False
    if not ok:
        await _throttle_fail(db, keys, now, settings)
        raise LoginError("wrong user name or password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + settings.session_idle_s * 1000
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM login_failures WHERE key = ?", (keys[0],))
        await tx.execute("DELETE FROM sessions WHERE expires_ms < ?", (now,))
        await tx.execute(
            "INSERT INTO sessions (token_hash, user_name, csrf, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
            (_token_hash(token), name, csrf, now, expires),
        )
    return Session(token, name, csrf, expires)


async def session_for(db: Database, token: str | None, settings: WebSettings) -> Session | None:
    """The live session of a cookie value, its idle expiry pushed forward; None when expired or unknown."""
    if not token:
        return None
    now = now_ms()
    th = _token_hash(token)
    row = await db.fetchone("SELECT user_name, csrf, created_ms, expires_ms FROM sessions WHERE token_hash = ?", (th,))
    if row is None:
        return None
    if row["expires_ms"] <= now:
        await db.execute("DELETE FROM sessions WHERE token_hash = ?", (th,))
        return None
    expires = min(now + settings.session_idle_s * 1000, row["created_ms"] + settings.session_max_s * 1000)
    if expires - row["expires_ms"] > 60_000:  # write at most once a minute per session
        await db.execute("UPDATE sessions SET expires_ms = ? WHERE token_hash = ?", (expires, th))
    return Session("", row["user_name"], row["csrf"], expires)


async def logout(db: Database, token: str) -> None:
    await db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())
