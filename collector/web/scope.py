"""Who is looking: a signed-in user, or an integration's API token, and the units they may see."""

from __future__ import annotations

from dataclasses import dataclass

from collector.store import Database


@dataclass(frozen=True)
class Viewer:
    """A signed-in user or an API token. ``units`` is None for an admin (every unit); ``roots`` the units given.

    A token's viewer has role ``token``, its name ``token:NAME`` and its one ``scope`` (a user's is None).
    """

    name: str
    role: str
    units: frozenset[str] | None
    roots: tuple[str, ...] = ()
    scope: str | None = None

    def sees_unit(self, unit_id: str | None) -> bool:
        return self.units is None or (unit_id is not None and unit_id in self.units)

    def unit_filter(self, column: str) -> tuple[str, list[str]]:
        """An SQL condition on ``column`` limiting rows to this viewer's units, with its params."""
        if self.units is None:
            return "1=1", []
        if not self.units:
            return "1=0", []
        marks = ",".join("?" * len(self.units))
        return f"{column} IN ({marks})", sorted(self.units)


def _subtree(children: dict[str, list[str]], root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        u = todo.pop()
        if u not in seen:
            seen.add(u)
            todo.extend(children.get(u, []))
    return seen


async def _units_under(db: Database, given: list[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Every unit under the ``given`` ones (themselves included), and the given units not under another given one."""
    children: dict[str, list[str]] = {}
    for unit, parent in await db.fetch("SELECT id, parent_id FROM units"):
        children.setdefault(parent or "", []).append(unit)
    trees = {u: _subtree(children, u) for u in given}
    roots = sorted(u for u in given if not any(u != o and u in trees[o] for o in given))
    return frozenset().union(*trees.values()), tuple(roots)


async def viewer_for(db: Database, name: str) -> Viewer | None:
    """The ``Viewer`` of user ``name``, or None when unknown or disabled.

    A supervisor sees the units given to them and every unit under them; ``roots`` are the given units that
    are not under another given unit, in id order.
    """
    user = await db.fetchone("SELECT name, role FROM users WHERE name = ? AND disabled = 0", (name,))
    if user is None:
        return None
    if user["role"] == "admin":
        return Viewer(name, "admin", None)
    given = [unit for (unit,) in await db.fetch("SELECT unit_id FROM user_units WHERE user_name = ?", (name,))]
    units, roots = await _units_under(db, given)
    return Viewer(name, user["role"], units, roots)


async def viewer_for_token(db: Database, name: str, scope: str, unit_id: str | None) -> Viewer:
    """The ``Viewer`` of API token ``name``: its unit and every unit under it (no unit: every unit)."""
    if unit_id is None:
        return Viewer(f"token:{name}", "token", None, scope=scope)
    units, roots = await _units_under(db, [unit_id])
    return Viewer(f"token:{name}", "token", units, roots, scope=scope)
