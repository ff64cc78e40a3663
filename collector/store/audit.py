"""The audit trail (审计日志): a hash chain of every change that decides appraisals, and month digests.

``append_audit(db, actor=…, action=…, subject=…, before=…, after=…)`` appends
one entry — who, when, what, the state before and after (JSON) — and the
SHA-256 of the previous entry, so editing, removing or reordering any entry
breaks the chain from there on. It runs in the caller's transaction (or its
own), so the entry commits with the change it records or not at all. On
PostgreSQL the chain head (``audit_head``) is read ``FOR UPDATE``: concurrent
writers append one after the other, never both after the same entry; SQLite's
write transaction is exclusive already.

It is generic: any part of evalbox that makes a change worth proving later
calls it with its own ``action`` (dotted, e.g. ``case.visit``, ``token.use``)
and ``subject`` (``kind:id``, e.g. ``case:12``, ``month:2026-09``). Put no
personal data in ``before``/``after`` (no ticket numbers, no free text: give
``sha256_text(note)`` instead): the audit trail is never pruned or rewritten.

An entry's hash is the SHA-256 of the canonical JSON (sorted keys, no spaces,
UTF-8) of ``{"seq", "at_ms", "actor", "action", "subject", "before", "after",
"prev"}`` where ``before``/``after`` are the stored JSON texts and ``prev`` the
previous entry's hash (64 zeros for the first).

A closed month is sealed (``seal_month``, at ``evalbox month close``) in
``month_digests``: the SHA-256 over its events in identity order (``events``:
the month's presses and invites in the zone in force at closing, stored before
the close) and over its close (the ``months`` row, the snapshot and the frozen
counts), and the month's **digest** over both, which the report prints. The
seal is also the ``after`` of the month's audit entry. ``verify`` walks the
chain, recomputes every sealed month from the stored rows (a month whose raw
events were pruned: from its rollups, against the digest taken when they were
pruned), compares rollups with the events they come from, and the cases,
complaints, users and flag reviews with their last audited state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from collector.store.database import Database
from collector.store.records import EVENT_COLUMNS
from collector.store.rollups import ROLLUP_COLUMNS, ROLLUP_KEY, rollup_select
from collector.timeplace import month_bounds

GENESIS = "0" * 64
IDENTITY = ("device_id", "boot", "seq")
CHAIN = "audit"
PAGE = 5000

# What a month's events digest covers: every stored column (the pipeline's and ``late``) but ``month`` (derived:
# ``evalbox rebuild`` re-places it)
# and ``ticket`` (personal data that retention hashes or removes; it decides no figure).
EVENT_DIGEST_COLUMNS = (*(c for c in EVENT_COLUMNS if c not in ("month", "ticket")), "late")
DIGEST_FIELDS = ("month", "timezone", "events", "events_sha256", "close_sha256", "digest", "sealed_ms")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)  # made once: it is hot


def canonical(value: Any) -> str:
    """The canonical JSON text of ``value``: sorted keys, no spaces, UTF-8 characters as they are."""
    return _CANONICAL.encode(value)


def sha256_text(text: str | None) -> str | None:
    """SHA-256 (hex) of a text, for the audit trail in place of free text; None stays None."""
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def entry_hash(
    seq: int, at_ms: int, actor: str, action: str, subject: str, before: str | None, after: str | None, prev: str
) -> str:
    body = {
        "seq": seq,
        "at_ms": at_ms,
        "actor": actor,
        "action": action,
        "subject": subject,
        "before": before,
        "after": after,
        "prev": prev,
    }
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


async def append_audit(
    db: Database,
    *,
    actor: str,
    action: str,
    subject: str,
    before: Any = None,
    after: Any = None,
    at_ms: int | None = None,
) -> int:
    """Append one entry to the audit chain (in the caller's transaction, else its own); its ``seq``.

    ``actor``: who (a login, an OS user, ``system``, ``token:NAME``); ``action``: what (``case.visit``);
    ``subject``: ``kind:id`` of what changed; ``before``/``after``: JSON-able states (no personal data).
    """
    if not actor or not action or not subject:
        raise ValueError("append_audit: actor, action and subject are required")
    at = _now_ms() if at_ms is None else int(at_ms)
    before_json = None if before is None else canonical(before)
    after_json = None if after is None else canonical(after)
    async with db.transaction() as tx:
        head = await lock_chain(tx)
        if head is None:  # the migration inserts it; a store whose head row was deleted is refused by verify
            prev_seq, prev = 0, GENESIS
            await tx.execute("INSERT INTO audit_head (chain, seq, hash) VALUES (?, 0, ?)", (CHAIN, GENESIS))
        else:
            prev_seq, prev = int(head[0]), str(head[1])
        seq = prev_seq + 1
        digest = entry_hash(seq, at, actor, action, subject, before_json, after_json, prev)
        await tx.execute(
            "INSERT INTO audit_log (seq, at_ms, actor, action, subject, before_json, after_json, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, at, actor, action, subject, before_json, after_json, prev, digest),
        )
        await tx.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE chain = ?", (seq, digest, CHAIN))
    return seq


async def lock_chain(db: Database) -> Any:
    """Inside a transaction: the chain head (``seq``, ``hash``) or None, locked until the transaction ends.

    PostgreSQL: ``SELECT … FOR UPDATE``, so writers append one after the other; SQLite: the write transaction
    is the only writer already.
    """
    lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
    return await db.fetchone(f"SELECT seq, hash FROM audit_head WHERE chain = ?{lock}", (CHAIN,))


async def last_after(db: Database, subject: str, action: str | None = None) -> Any:
    """The ``after`` of the latest entry about ``subject`` (and ``action``), or None."""
    sql = "SELECT after_json FROM audit_log WHERE subject = ?"
    params: list[Any] = [subject]
    if action:
        sql += " AND action = ?"
        params.append(action)
    row = await db.fetchone(sql + " ORDER BY seq DESC LIMIT 1", params)
    return None if row is None or row[0] is None else json.loads(row[0])


# -- policy in force ----------------------------------------------------------------------


def policy_fingerprint(policy_dict: dict[str, Any]) -> str:
    """SHA-256 of a policy's canonical JSON (``policy_to_dict``)."""
    return hashlib.sha256(canonical(policy_dict).encode()).hexdigest()


async def note_policy(db: Database, policy_dict: dict[str, Any], *, actor: str) -> bool:
    """Record the policy taking effect when its fingerprint differs from the last one recorded; whether it did."""
    fp = policy_fingerprint(policy_dict)
    last = await last_after(db, "policy", "policy.in_force")
    if last is not None and last.get("fingerprint") == fp:
        return False
    async with db.transaction():
        await lock_chain(db)  # two collectors starting at once: the second sees the first one's entry
        last = await last_after(db, "policy", "policy.in_force")
        if last is not None and last.get("fingerprint") == fp:
            return False
        before = None if last is None else {"fingerprint": last.get("fingerprint")}
        await append_audit(
            db,
            actor=actor,
            action="policy.in_force",
            subject="policy",
            before=before,
            after={"fingerprint": fp, "policy": policy_dict},
        )
    return True


# -- month digests ------------------------------------------------------------------------


async def _keyset(db: Database, select: str, key: tuple[str, ...], where: str, params: list[Any]) -> AsyncIterator[Any]:
    """Rows of ``select … WHERE where`` in ``key`` order, a page at a time (keyset paging)."""
    cols = ", ".join(key)
    last: tuple[Any, ...] | None = None
    while True:
        extra, args = "", list(params)
        if last is not None:
            extra = f" AND ({cols}) > ({', '.join('?' for _ in key)})"
            args += list(last)
        rows = await db.fetch(f"{select} WHERE {where}{extra} ORDER BY {cols} LIMIT {PAGE}", args)
        for r in rows:
            yield r
        if len(rows) < PAGE:
            return
        last = tuple(rows[-1][: len(key)])


async def events_digest(db: Database, month: str, timezone: str, closed_ms: int) -> tuple[int, str]:
    """(events, SHA-256) over the month's events in identity order, as stored by ``closed_ms``."""
    start, end = month_bounds(month, timezone)
    h = hashlib.sha256()
    n = 0
    select = f"SELECT {', '.join(EVENT_DIGEST_COLUMNS)} FROM events"
    stored = "press_ms >= ? AND press_ms < ? AND late = 0 AND recv_ms <= ?"
    params = [start, end, closed_ms]
    # The month's events are placed in it (``events.month``; the index ``events_month_identity`` gives them in
    # identity order), except a few hours' worth at its edges that a rebuild in another zone moved to the month
    # before or after: those are read apart (the index filters them on ``press_ms``) and merged in.
    placed = _keyset(db, select, IDENTITY, f"month = ? AND {stored}", [month, *params])
    edges = await db.fetch(
        f"{select} WHERE month IN (?, ?) AND {stored} ORDER BY {', '.join(IDENTITY)}",
        [month_add(month, -1), month_add(month, 1), *params],
    )
    encode = _CANONICAL.encode
    async for row in _merge(placed, edges):  # a row: ints, strings and NULLs on both engines
        h.update(encode(row).encode() + b"\n")
        n += 1
    return n, h.hexdigest()


async def _merge(rows: AsyncIterator[Any], few: list[Any]) -> AsyncIterator[Any]:
    """Two row streams in identity order as one (``few``: a short list)."""
    i = 0
    async for row in rows:
        while i < len(few) and tuple(few[i][:3]) < tuple(row[:3]):
            yield few[i]
            i += 1
        yield row
    for row in few[i:]:
        yield row


def month_add(month: str, k: int) -> str:
    """``YYYY-MM`` ``k`` months later (earlier when negative)."""
    y, m = int(month[:4]), int(month[5:]) - 1 + k
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, bool) else v


async def close_digest(db: Database, month: str) -> str | None:
    """SHA-256 over the month's close: its ``months`` row, snapshot and frozen counts; None when not closed."""
    closed = await db.fetchone("SELECT month, closed_ms, closed_by FROM months WHERE month = ?", (month,))
    if closed is None:
        return None
    snap = await db.fetchone("SELECT policy, registry, taken_ms FROM month_snapshots WHERE month = ?", (month,))
    counts = await db.fetch(
        "SELECT officer_id, window_id, kind, level, scale, n FROM month_rollups WHERE month = ?"
        " ORDER BY officer_id, window_id, kind, level, scale",
        (month,),
    )
    doc = {
        "months": list(closed),
        "snapshot": None if snap is None else list(snap),
        "counts": [list(r) for r in counts],
    }
    return hashlib.sha256(canonical(doc).encode()).hexdigest()


async def rollups_digest(db: Database, month: str) -> str:
    """SHA-256 over the month's rollups in key order (what a month's report is made of once its events are pruned)."""
    rows = await db.fetch(
        f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM rollups WHERE month = ? ORDER BY {', '.join(ROLLUP_KEY)}", (month,)
    )
    return hashlib.sha256(canonical([list(r) for r in rows]).encode()).hexdigest()


def month_digest(month: str, events: int, events_sha256: str, close_sha256: str) -> str:
    """The month's digest (月度摘要): SHA-256 over its events digest and its close digest."""
    doc = {"month": month, "events": events, "events_sha256": events_sha256, "close_sha256": close_sha256}
    return hashlib.sha256(canonical(doc).encode()).hexdigest()


async def seal_month(
    db: Database, month: str, timezone: str, *, actor: str, action: str = "month.close"
) -> dict[str, Any]:
    """Compute and store the closed ``month``'s digest and append it to the audit chain; the seal (a dict).

    Called in the transaction that closes the month (``action`` ``month.close``), or later for a month closed
    before the audit trail existed (``month.seal``).
    """
    async with db.transaction():
        row = await db.fetchone("SELECT closed_ms, closed_by FROM months WHERE month = ?", (month,))
        if row is None:
            raise ValueError(f"month {month} is not closed")
        closed_ms = int(row[0])
        n, ev = await events_digest(db, month, timezone, closed_ms)
        close = await close_digest(db, month)
        assert close is not None
        seal = {
            "month": month,
            "timezone": timezone,
            "events": n,
            "events_sha256": ev,
            "close_sha256": close,
            "digest": month_digest(month, n, ev, close),
            "sealed_ms": _now_ms(),
        }
        await db.execute("DELETE FROM month_digests WHERE month = ?", (month,))
        await db.execute(
            f"INSERT INTO month_digests ({', '.join(DIGEST_FIELDS)}) VALUES ({', '.join('?' for _ in DIGEST_FIELDS)})",
            [seal[k] for k in DIGEST_FIELDS],
        )
        await append_audit(
            db,
            actor=actor,
            action=action,
            subject=f"month:{month}",
            after={**seal, "closed_by": row[1], "closed_ms": closed_ms},
        )
    return seal


async def month_seal(db: Database, month: str) -> dict[str, Any] | None:
    """The stored seal of ``month`` (``month_digests`` row as a dict), or None."""
    if not await db.has_table("month_digests"):
        return None
    rows = (await db.fetch("SELECT * FROM month_digests WHERE month = ?", (month,))).dicts()
    return rows[0] if rows else None


# -- audited records: their state as the audit trail records it -----------------------------


@dataclasses.dataclass(frozen=True)
class Audited:
    """A kind of record whose every change is audited: how to read its current state for comparison."""

    kind: str  # subject prefix
    what: str  # bilingual name in messages
    sql: str  # id, created_ms, then the fields
    fields: tuple[str, ...]


CASE_FIELDS = (
    "device_id", "boot", "seq", "officer_id", "window_id", "unit_id", "month", "press_ms", "level", "scale",
    "visit_ms", "visit_by", "fix_ms", "fix_by", "state", "closed_ms", "closed_by",
)  # fmt: skip
COMPLAINT_FIELDS = ("officer_id", "day", "added_ms", "added_by")
REVIEW_FIELDS = ("decision", "reviewed_by", "reviewed_ms")
USER_FIELDS = ("role", "disabled", "units")

AUDITED = (
    Audited("case", "case 案件", f"SELECT id, opened_ms, {', '.join(CASE_FIELDS)} FROM cases", CASE_FIELDS),
    Audited(
        "complaint", "complaint 有效投诉",
        f"SELECT id, added_ms, {', '.join(COMPLAINT_FIELDS)} FROM complaints", COMPLAINT_FIELDS,
    ),
    Audited(
        "flag_review", "flag review 复核",
        "SELECT officer_id || '/' || month, reviewed_ms, decision, reviewed_by, reviewed_ms FROM officer_flag_reviews",
        REVIEW_FIELDS,
    ),
)  # fmt: skip


def state_of(fields: tuple[str, ...], row: dict[str, Any]) -> dict[str, Any]:
    """The audited fields of a record (a row as a dict)."""
    return {f: _plain(row.get(f)) for f in fields}


async def case_state(db: Database, case_id: int) -> dict[str, Any]:
    rows = (await db.fetch("SELECT * FROM cases WHERE id = ?", (case_id,))).dicts()
    return state_of(CASE_FIELDS, rows[0]) if rows else {}


async def user_state(db: Database, name: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT role, disabled FROM users WHERE name = ?", (name,))
    if row is None:
        return None
    units = sorted(str(r[0]) for r in await db.fetch("SELECT unit_id FROM user_units WHERE user_name = ?", (name,)))
    return {"role": row[0], "disabled": int(row[1]), "units": units}


async def _users_now(db: Database) -> dict[str, tuple[int, dict[str, Any]]]:
    out = {}
    for name, created in await db.fetch("SELECT name, created_ms FROM users"):
        state = await user_state(db, name)
        assert state is not None
        out[str(name)] = (int(created), state)
    return out


# -- verification -------------------------------------------------------------------------


@dataclasses.dataclass
class VerifyResult:
    entries: int = 0
    months: int = 0
    pruned_months: int = 0
    records: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


async def verify(db: Database, *, progress: Callable[[str], None] | None = None) -> VerifyResult:
    """Walk the chain, recompute every sealed month, compare rollups and audited records; the findings.

    ``problems`` name the first entry of the chain that does not match, then every month and record that
    does not; an untouched store has none.
    """
    res = VerifyResult()
    latest: dict[str, tuple[int, str, Any]] = {}  # subject -> (seq, action, after)
    first_ms: int | None = None
    prev_seq, prev_hash = 0, GENESIS
    chain_ok = True
    select = "SELECT seq, at_ms, actor, action, subject, before_json, after_json, prev_hash, hash FROM audit_log"
    async for seq, at, actor, action, subject, before, after, prev, digest in _keyset(
        db, select, ("seq",), "1 = 1", []
    ):
        seq, at = int(seq), int(at)
        res.entries += 1
        first_ms = at if first_ms is None else first_ms
        where = f"audit entry {seq} ({action} {subject}, {_when(at)} by {actor})"
        if chain_ok:
            if seq != prev_seq + 1:
                res.problems.append(
                    f"audit entry {prev_seq + 1}: missing — the chain is cut between entries {prev_seq} and {seq}"
                    f" / 审计链在第 {prev_seq} 与第 {seq} 条之间断开"
                )
                chain_ok = False
            elif prev != prev_hash:
                res.problems.append(
                    f"{where}: its previous hash does not match entry {prev_seq} (an entry removed or replaced)"
                    f" / 第 {seq} 条的前一条哈希不符"
                )
                chain_ok = False
            elif entry_hash(seq, at, actor, action, subject, before, after, prev) != digest:
                res.problems.append(f"{where}: its hash does not match its content (edited) / 第 {seq} 条内容被修改")
                chain_ok = False
        prev_seq, prev_hash = seq, digest
        try:
            latest[subject] = (seq, action, None if after is None else json.loads(after))
        except ValueError:
            latest[subject] = (seq, action, None)
    head = await db.fetchone("SELECT seq, hash FROM audit_head WHERE chain = ?", (CHAIN,))
    if chain_ok and (head is None or (int(head[0]), str(head[1])) != (prev_seq, prev_hash)):
        said = "missing" if head is None else f"entry {head[0]}"
        res.problems.append(
            f"audit trail: it ends at entry {prev_seq} but its head says {said} (entries removed from the end)"
            f" / 审计链末尾被删除"
        )
    if progress:
        progress(f"audit chain: {res.entries} entries")
    start = first_ms if first_ms is not None else _now_ms()
    await _verify_months(db, res, latest, start, progress)
    await _verify_rollups(db, res)
    await _verify_records(db, res, latest, start)
    return res


async def _verify_months(
    db: Database,
    res: VerifyResult,
    latest: dict[str, tuple[int, str, Any]],
    start_ms: int,
    progress: Callable[[str], None] | None,
) -> None:
    seals = {str(r["month"]): r for r in (await db.fetch("SELECT * FROM month_digests ORDER BY month")).dicts()}
    closed = {str(m): int(ms) for m, ms in await db.fetch("SELECT month, closed_ms FROM months ORDER BY month")}
    for month in sorted(closed.keys() - seals.keys()):
        if closed[month] >= start_ms:
            res.problems.append(
                f"month {month}: closed at {_when(closed[month])} but never sealed (closed directly in the store?)"
                f" / {month} 关账未经审计"
            )
        else:
            res.notes.append(
                f"month {month}: closed before the audit trail began, not sealed (`evalbox audit seal {month}`)"
                f" / 审计启用前关账，未封存"
            )
    for month, seal in seals.items():
        res.months += 1
        name = f"month {month}"
        audited = latest.get(f"month:{month}")
        if audited is None or audited[2] is None:
            res.problems.append(f"{name}: its digest is not in the audit trail / {month} 摘要不在审计链中")
            continue
        recorded = audited[2]
        changed = [k for k in seal if _plain(seal[k]) != recorded.get(k)]
        if changed:
            res.problems.append(
                f"{name}: its stored digest differs from the audit trail's (entry {audited[0]}: {', '.join(changed)})"
                f" / {month} 摘要被修改"
            )
            continue
        if month not in closed:
            res.problems.append(f"{name}: its close was removed from the store / {month} 关账记录被删除")
            continue
        if await close_digest(db, month) != seal["close_sha256"]:
            res.problems.append(
                f"{name}: the month close (months, month_snapshots, month_rollups) differs from what was sealed"
                f" at closing / {month} 关账数据被修改"
            )
        if seal.get("pruned_ms") is not None:
            res.pruned_months += 1
            if await rollups_digest(db, month) != seal.get("rollups_sha256"):
                res.problems.append(
                    f"{name}: raw events pruned; its rollups differ from those sealed at pruning / {month} 汇总被修改"
                )
        else:
            n, ev = await events_digest(db, month, str(seal["timezone"]), closed[month])
            if ev != seal["events_sha256"]:
                res.problems.append(
                    f"{name}: its events differ from the digest sealed at closing ({seal['events']} events then,"
                    f" {n} now) / {month} 事件被修改"
                )
        if progress:
            progress(f"month {month}")


async def _verify_rollups(db: Database, res: VerifyResult) -> None:
    """Each month's stored rollups against the rollups of its stored events (pruned months: their seal)."""
    pruned = {str(r[0]) for r in await db.fetch("SELECT month FROM month_digests WHERE pruned_ms IS NOT NULL")}
    cols = ", ".join(ROLLUP_COLUMNS)
    stored = {tuple(r[:7]): int(r[7]) for r in await db.fetch(f"SELECT {cols} FROM rollups") if r[1] not in pruned}
    again = {tuple(r[:7]): int(r[7]) for r in await db.fetch(rollup_select("1 = 1")) if r[1] not in pruned}
    for key in sorted(stored.keys() | again.keys(), key=lambda k: tuple(str(x) for x in k)):
        if stored.get(key) != again.get(key):
            officer, month, window, kind, level, scale, late = key
            res.problems.append(
                f"rollups of month {month} (officer {officer or '-'}, window {window}, {kind},"
                f" level {level}/{scale}, late {late}): {stored.get(key, 0)} stored, {again.get(key, 0)} in its"
                f" events / {month} 汇总与事件不符"
            )
            return  # the first one named; the rest follow from the same edit or rebuild


async def _verify_records(
    db: Database, res: VerifyResult, latest: dict[str, tuple[int, str, Any]], start_ms: int
) -> None:
    for a in AUDITED:
        rows = await db.fetch(a.sql)
        now: dict[str, tuple[int, dict[str, Any]]] = {
            str(r[0]): (int(r[1] or 0), {f: _plain(v) for f, v in zip(a.fields, r[2:], strict=True)}) for r in rows
        }
        _compare(res, a.kind, a.what, a.fields, now, latest, start_ms)
    _compare(res, "user", "user 账号", USER_FIELDS, await _users_now(db), latest, start_ms)


def _compare(
    res: VerifyResult,
    kind: str,
    what: str,
    fields: tuple[str, ...],
    now: dict[str, tuple[int, dict[str, Any]]],
    latest: dict[str, tuple[int, str, Any]],
    start_ms: int,
) -> None:
    prefix = f"{kind}:"
    for key, (created, state) in sorted(now.items()):
        res.records += 1
        audited = latest.get(prefix + key)
        if audited is None:
            if created >= start_ms:
                res.problems.append(f"{what} {key}: not in the audit trail (added directly in the store?) / 未经审计")
            continue
        recorded = audited[2] or {}
        diff = [f for f in fields if recorded.get(f) != state.get(f)]
        if diff:
            res.problems.append(
                f"{what} {key}: {', '.join(diff)} differ from audit entry {audited[0]} ({audited[1]}) / 与审计记录不符"
            )
    for subject, (seq, action, _after) in latest.items():
        if subject.startswith(prefix) and subject[len(prefix) :] not in now and not action.endswith(".delete"):
            res.problems.append(
                f"{what} {subject[len(prefix) :]}: deleted from the store (audit entry {seq}) / 记录被删除"
            )
