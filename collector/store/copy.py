"""Copy a whole store to another (``evalbox store copy``): SQLite ↔ PostgreSQL, resumable, verified.

How a province that outgrows SQLite moves to PostgreSQL (and back, or to a
fresh SQLite file). Both ends are ``Database``s (``collector.store.connect``),
so any pair of stores works.

- The target is migrated first; the two ``schema_migrations`` lists must be
  the same (a source with migrations this evalbox does not know, or one
  not yet migrated to this version, is refused).
- Tables are copied in an order that respects foreign keys, in batches read
  in primary-key order (keyset paging, stable on both engines: text compares
  by code point on both). Each batch is written in its own transaction, so an
  interrupted copy (Ctrl-C, kill, network error) keeps what it committed and
  running the copy again resumes:

  * ``events`` (append-only, the big table): a batch whose key range already
    holds as many rows in the target as in the source is skipped with one
    indexed ``COUNT``; otherwise it is inserted with ``ON CONFLICT DO NOTHING``.
  * every other table: the target's rows in the batch's key range are read
    and compared; missing or changed rows are upserted (so a second run after
    stopping the collector also picks up changed devices, invites, duty,
    cases …). ``rejected`` (trimmed by design) and ``user_units`` (replaced
    when a user's units change) also lose target rows the source deleted.

- ``rollups`` (derived from events) is replaced in one transaction at the end.
- ``sessions`` and ``login_failures`` are not copied: they are ephemeral
  (sign-in cookies and login throttling); users sign in again on the new store.
- The audit trail (``audit_log``) is copied entry by entry and the target's
  chain head set to its last one; once the copy verifies, the copy itself is
  appended to the target's trail (``store.copy``). A later run (resuming, or
  picking up the tail) accepts those ``store.copy`` entries at the target's
  end, and reports a target whose trail diverges from the source's.
- On a PostgreSQL target the identity sequences (``rejected``, ``cases``,
  ``alerts``, ``box_commands``) are moved past the copied ids.

Verification at the end: row counts equal per table; rollups equal on both
sides; the target's rollups equal rollups recomputed from the target's events
(a source whose rollups disagree with its events is noticed too); and no table
of the target holds rows the source lacks (a target that was not empty, or not
a copy of this source, is reported, never silently merged).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from collector.errors import StoreError, UsageError
from collector.store import connect
from collector.store.audit import CHAIN, append_audit
from collector.store.database import Database, Rows
from collector.store.rollups import ROLLUP_COLUMNS, ROLLUP_KEY, rollup_select
from collector.store.schema import MIGRATIONS
from collector.store.url import StoreUrl, parse_store_url

DEFAULT_BATCH = 5000

Progress = Callable[[str, int, int], None]
"""``progress(table, rows_done, rows_total)`` after each batch."""


@dataclasses.dataclass(frozen=True)
class Table:
    """A copied table: its key (the order batches are read in) and how rows are reconciled."""

    name: str
    key: tuple[str, ...]
    append_only: bool = False  # rows never change: a batch whose range count matches is skipped
    prune: bool = False  # the source deletes rows by design: the target loses them too
    identity: bool = False  # ``INTEGER PRIMARY KEY id``: an identity column on PostgreSQL


# Parents before children (foreign keys): units → windows → officers, devices → box_commands,
# users → user_units, alerts → alert_deliveries, officers → complaints,
# months → month_snapshots → month_rollups.
TABLES: tuple[Table, ...] = (
    Table("units", ("id",)),
    Table("windows", ("id",)),
    Table("officers", ("id",)),
    Table("devices", ("id",)),
    Table("events", ("device_id", "boot", "seq"), append_only=True),
    Table("duty", ("device_id", "officer_id", "start_ms")),
    Table("invites", ("device_id", "boot", "invite_no")),
    Table("rejected", ("id",), prune=True, identity=True),
    Table("rejected_counts", ("reason",)),
    Table("months", ("month",)),
    Table("month_snapshots", ("month",)),
    Table("month_rollups", ("month", "officer_id", "window_id", "kind", "level", "scale")),
    Table("complaints", ("id",)),
    Table("users", ("name",)),
    Table("user_units", ("user_name", "unit_id"), prune=True),
    Table("cases", ("id",), identity=True),
    Table("alerts", ("id",), identity=True),
    Table("alert_deliveries", ("alert_id", "sink")),
    Table("anomalies", ("device_id", "boot", "seq", "rule")),
    Table("device_watch", ("device_id",)),
    Table("web_watermarks", ("name",)),
    Table("box_commands", ("id",), identity=True),
    Table("officer_flags", ("officer_id", "month", "rule"), prune=True),  # a month's re-check replaces its flags
    Table("officer_flag_reviews", ("officer_id", "month")),
    Table("clock_refs", ("device_id", "boot"), prune=True),
    Table("api_tokens", ("id",)),
    Table("feed_ledger", ("device_id", "boot", "seq")),
    Table("audit_log", ("seq",), append_only=True),
    Table("month_digests", ("month",)),
    Table("fw_rollouts", ("id",), identity=True),  # firmware rollouts → their boxes
    Table("fw_rollout_boxes", ("rollout_id", "device_id")),
    Table("fw_box_state", ("device_id",)),
)
ROLLUPS = Table("rollups", ROLLUP_KEY)
SKIPPED: dict[str, str] = {
    "sessions": "sign-in sessions are ephemeral: users sign in again on the new store",
    "login_failures": "login throttling counters are ephemeral",
    "schema_migrations": "the target is migrated by this evalbox instead",
    "audit_head": "set from the copied audit trail's last entry",
}


@dataclasses.dataclass
class TableResult:
    """One table's numbers: rows in the source and target (at verification), and what this run wrote."""

    name: str
    source: int = 0
    target: int = 0
    copied: int = 0  # rows inserted or updated in the target by this run
    removed: int = 0  # target rows deleted because the source deleted them (pruned tables)
    extra: int = 0  # target rows the source lacks (not pruned): the target is not a copy of the source


@dataclasses.dataclass
class CopyResult:
    tables: list[TableResult]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    def table(self, name: str) -> TableResult:
        return next(t for t in self.tables if t.name == name)


# -- helpers -----------------------------------------------------------------------


Key = tuple[Any, ...]


def _range(key: Sequence[str], lo: Key | None, hi: Key | None) -> tuple[str, list[Any]]:
    """``WHERE`` for keys in ``(lo, hi]`` (either bound open when ``None``) and its parameters."""
    cols = key[0] if len(key) == 1 else f"({', '.join(key)})"
    marks = "?" if len(key) == 1 else f"({', '.join('?' for _ in key)})"
    terms: list[str] = []
    params: list[Any] = []
    if lo is not None:
        terms.append(f"{cols} > {marks}")
        params.extend(lo)
    if hi is not None:
        terms.append(f"{cols} <= {marks}")
        params.extend(hi)
    return (f"WHERE {' AND '.join(terms)}" if terms else ""), params


async def _count(db: Database, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
    row = await db.fetchone(f"SELECT COUNT(*) FROM {table} {where}", params)
    return int(row[0]) if row else 0


async def _same_postgres(a: Database, b: Database) -> bool:
    """Whether two PostgreSQL connections reach the same database (however the URLs are spelt)."""
    sql = "SELECT current_database(), inet_server_port(), CAST(pg_postmaster_start_time() AS TEXT)"
    return await a.fetch(sql) == await b.fetch(sql)


# -- copying -----------------------------------------------------------------------


class _Copier:
    def __init__(self, src: Database, dst: Database, batch: int, progress: Progress | None) -> None:
        self.src, self.dst, self.batch, self.progress = src, dst, batch, progress

    async def table(self, t: Table, result: TableResult) -> None:
        cols = await self.dst.columns(t.name)
        if sorted(await self.src.columns(t.name)) != sorted(cols):
            raise UsageError(f"table {t.name}: the source and target columns differ; both must be on one schema")
        idx = [cols.index(k) for k in t.key]
        col_list, key_list = ", ".join(cols), ", ".join(t.key)
        marks = ", ".join("?" for _ in cols)
        insert = f"INSERT INTO {t.name} ({col_list}) VALUES ({marks})"
        others = [c for c in cols if c not in t.key]
        if t.append_only or not others:
            insert += " ON CONFLICT DO NOTHING"
        else:
            sets = ", ".join(f"{c} = excluded.{c}" for c in others)
            insert += f" ON CONFLICT ({key_list}) DO UPDATE SET {sets}"
        delete = f"DELETE FROM {t.name} WHERE " + " AND ".join(f"{k} = ?" for k in t.key)

        def key_of(row: tuple[Any, ...]) -> Key:
            return tuple(row[i] for i in idx)

        total = result.source
        done = 0
        lo: Key | None = None
        while True:
            where, params = _range(t.key, lo, None)
            rows = await self.src.fetch(
                f"SELECT {col_list} FROM {t.name} {where} ORDER BY {key_list} LIMIT ?", [*params, self.batch]
            )
            hi = key_of(rows[-1]) if rows else None
            where, params = _range(t.key, lo, hi)
            if t.append_only:
                have = await _count(self.dst, t.name, where, params)
                if rows and have != len(rows):
                    async with self.dst.transaction():
                        await self.dst.executemany(insert, rows)
                        now = await _count(self.dst, t.name, where, params)
                    result.copied += now - have
                    have = now
                result.extra += max(have - len(rows), 0)
            else:
                there = {key_of(r): r for r in await self.dst.fetch(f"SELECT {col_list} FROM {t.name} {where}", params)}
                wanted = {key_of(r) for r in rows}
                changed = [r for r in rows if there.get(key_of(r)) != r]
                gone = [k for k in there if k not in wanted]
                if changed or (gone and t.prune):
                    async with self.dst.transaction():
                        if gone and t.prune:
                            await self.dst.executemany(delete, gone)
                        if changed:
                            await self.dst.executemany(insert, changed)
                result.copied += len(changed)
                if t.prune:
                    result.removed += len(gone)
                else:
                    result.extra += len(gone)
            if not rows:
                break
            done += len(rows)
            if self.progress:
                self.progress(t.name, done, max(total, done))
            lo = hi

    async def rollups(self, result: TableResult) -> None:
        """Replace the target's rollups with the source's, in one transaction."""
        rows = await self.src.fetch(f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM rollups ORDER BY {', '.join(ROLLUP_KEY)}")
        async with self.dst.transaction():
            await self.dst.execute("DELETE FROM rollups")
            for i in range(0, len(rows), self.batch):
                await self.dst.copy_records("rollups", ROLLUP_COLUMNS, rows[i : i + self.batch])
        result.copied = len(rows)
        if self.progress:
            self.progress("rollups", len(rows), len(rows))

    async def reset_identities(self) -> None:
        """PostgreSQL: identity sequences past the copied ids, so later inserts do not collide."""
        if self.dst.dialect != "postgresql":
            return
        for t in TABLES:
            if t.identity:
                await self.dst.fetch(
                    f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), COALESCE(MAX(id), 0) + 1, false)"
                    f" FROM {t.name}"
                )


# -- verification --------------------------------------------------------------------


def _rollup_map(rows: Rows) -> dict[Key, int]:
    return {r[:7]: int(r[7]) for r in rows}


def _months_differing(a: dict[Key, int], b: dict[Key, int]) -> list[str]:
    return sorted({str(k[1]) for k in a.keys() | b.keys() if a.get(k) != b.get(k)})


async def verify(src: Database, dst: Database, results: list[TableResult]) -> list[str]:
    """Compare the two stores; the problems found (empty when the target is a faithful copy)."""
    for r in results:
        r.source = await _count(src, r.name)
        r.target = await _count(dst, r.name)
    problems = await _verify_audit(src, dst, next(r for r in results if r.name == "audit_log"))
    for r in results:
        if r.extra:
            problems.append(
                f"{r.name}: the target holds {r.extra:,} rows the source does not (the target was not empty, or the "
                f"source deleted them since an earlier copy); copy into an empty store / 目标库有源库没有的数据"
            )
        if r.source != r.target:
            problems.append(f"{r.name}: {r.source:,} rows in the source, {r.target:,} in the target / 行数不一致")
    cols = ", ".join(ROLLUP_COLUMNS)
    source_rollups = _rollup_map(await src.fetch(f"SELECT {cols} FROM rollups"))
    target_rollups = _rollup_map(await dst.fetch(f"SELECT {cols} FROM rollups"))
    months = _months_differing(source_rollups, target_rollups)
    if months:
        problems.append(f"rollups: the source and target differ for months {', '.join(months)} / 汇总不一致")
    recomputed = _rollup_map(await dst.fetch(rollup_select("1 = 1")))
    months = _months_differing(target_rollups, recomputed)
    if months:
        problems.append(
            f"rollups: do not match the copied events for months {', '.join(months)} (if the source was live, stop "
            f"the collector and copy again; else run `evalbox rebuild` on the source) / 汇总与事件不符"
        )
    return problems


async def _verify_audit(src: Database, dst: Database, result: TableResult) -> list[str]:
    """The target's trail: the source's entries, then only earlier copies' own ``store.copy`` entries."""
    last = await src.fetchone("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    top = int(last[0]) if last else 0
    if last is not None:
        there = await dst.fetchone("SELECT hash FROM audit_log WHERE seq = ?", (top,))
        if there is None or there[0] != last[1]:
            return [
                f"audit_log: the target's audit trail diverges from the source's at entry {top} (the target was"
                " written to since an earlier copy); copy into an empty store / 目标库审计链与源库不一致"
            ]
    ours = await _count(dst, "audit_log", "WHERE seq > ? AND action = 'store.copy'", (top,))
    result.extra -= ours
    result.target -= ours
    return []


async def _set_audit_head(dst: Database) -> None:
    """The target's chain head: its last copied entry."""
    last = await dst.fetchone("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    if last is not None:
        await dst.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE chain = ?", (last[0], last[1], CHAIN))


# -- the command's work ----------------------------------------------------------------


def _check_ends(source: StoreUrl, target: StoreUrl) -> None:
    if source.kind == "sqlite":
        if not source.path.is_file():
            raise UsageError(f"source {source}: no such SQLite file / 源库不存在")
        if target.kind == "sqlite" and source.path.resolve() == target.path.resolve():
            raise UsageError("--from and --to are the same store / 源库与目标库相同")
    elif source.target == target.target:
        raise UsageError("--from and --to are the same store / 源库与目标库相同")


async def copy_store(
    source_url: str,
    target_url: str,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    confirm: Callable[[int], bool] | None = None,
    by: str = "system",
) -> CopyResult:
    """Copy every table of the store at ``source_url`` into ``target_url`` (migrated first), then verify.

    ``confirm(rows)`` is asked when the target already holds rows (a copy to
    resume, or another store); returning ``False`` cancels before anything
    is written. Raises ``UsageError``/``StoreError``/``ConfigError`` for
    stores that cannot be copied; a copy that does not verify is returned
    with ``problems``.
    """
    if batch < 1:
        raise UsageError("--batch must be at least 1")
    source, target = parse_store_url(source_url), parse_store_url(target_url)
    _check_ends(source, target)
    if target.kind == "sqlite" and not target.path.parent.is_dir():
        raise UsageError(f"target {target}: no such directory {target.path.parent} / 目标目录不存在")
    async with connect(source, migrate=False, cache_mb=512) as src:
        have = await _source_migrations(src, source)
        async with connect(target, migrate=False, cache_mb=512) as dst:
            if source.kind == target.kind == "postgresql" and await _same_postgres(src, dst):
                raise UsageError("--from and --to are the same store / 源库与目标库相同")
            await _migrate_target(dst, target, have)
            result = await _copy(src, dst, batch, progress, confirm)
            if result.ok:
                rows = {t.name: t.source for t in result.tables}
                after = {"from": source.display, "rows": sum(rows.values()), "tables": rows}
                await append_audit(dst, actor=by, action="store.copy", subject="store", after=after)
            return result


async def _source_migrations(src: Database, source: StoreUrl) -> list[str]:
    """The source's migrations, which must be exactly this evalbox's."""
    if not await src.has_table("schema_migrations"):
        raise UsageError(f"source {source.display}: not an evalbox store (no schema_migrations) / 不是evalbox数据库")
    known = sorted(name for name, _ in MIGRATIONS)
    have = await src.migrations()
    unknown = sorted(set(have) - set(known))
    if unknown:
        raise UsageError(
            f"source {source.display} has migrations this evalbox does not know ({', '.join(unknown)}): "
            "upgrade evalbox first / 源库版本较新"
        )
    missing = sorted(set(known) - set(have))
    if missing:
        raise UsageError(
            f"source {source.display} lacks migrations {', '.join(missing)}: start this version's collector on it "
            "once (it migrates the store), then copy / 源库需先升级"
        )
    return have


async def _migrate_target(dst: Database, target: StoreUrl, have: list[str]) -> None:
    """Bring the target to this evalbox's schema; it must then list the source's migrations."""
    ahead = sorted(set(await dst.migrations()) - {name for name, _ in MIGRATIONS})
    if ahead:
        raise UsageError(
            f"target {target.display} has migrations this evalbox does not know ({', '.join(ahead)}): "
            "upgrade evalbox first / 目标库版本较新"
        )
    await dst.migrate()
    if await dst.migrations() != have:
        raise UsageError(f"target {target.display}: its schema_migrations differ from the source's / 数据库结构不一致")


async def _copy(
    src: Database, dst: Database, batch: int, progress: Progress | None, confirm: Callable[[int], bool] | None
) -> CopyResult:
    results = [TableResult(t.name, source=await _count(src, t.name)) for t in (*TABLES, ROLLUPS)]
    already = 0
    for t in (*TABLES, ROLLUPS):
        already += await _count(dst, t.name)
    if already and confirm is not None and not confirm(already):
        raise UsageError("copy cancelled; no rows copied / 已取消")

    copier = _Copier(src, dst, batch, progress)
    try:
        for t, r in zip(TABLES, results, strict=False):
            await copier.table(t, r)
        await copier.rollups(results[-1])
        await copier.reset_identities()
        await _set_audit_head(dst)
    except StoreError as exc:
        raise StoreError(
            f"{exc} — the batches copied so far are kept: run the same command again to resume / 重新运行即可续传"
        ) from None
    problems = await verify(src, dst, results)
    return CopyResult(tables=results, problems=problems)
