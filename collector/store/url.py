"""Store URLs: ``sqlite:///path`` (or a bare path) and ``postgresql://…``.

>>> parse_store_url("sqlite:///data/evalbox.db")
StoreUrl(kind='sqlite', target='data/evalbox.db')
>>> parse_store_url("evalbox.db")
StoreUrl(kind='sqlite', target='evalbox.db')
>>> parse_store_url("postgresql://evalbox@db.example/evalbox").kind
'postgresql'
"""

from __future__ import annotations

import dataclasses
import pathlib

from collector.errors import ConfigError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclasses.dataclass(frozen=True)
class StoreUrl:
    """Which store and where: ``kind`` is ``'sqlite'`` (``target`` a path) or ``'postgresql'`` (a DSN)."""

    kind: str
    target: str

    @property
    def path(self) -> pathlib.Path:
        """The SQLite file (only for ``kind == 'sqlite'``)."""
        return pathlib.Path(self.target)

    def __str__(self) -> str:
        return self.target if self.kind == "postgresql" else f"sqlite:///{self.target}"

    @property
    def display(self) -> str:
        """The URL as messages show it: a PostgreSQL password replaced by ``***``."""
        return redact(str(self))


def redact(dsn: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return dsn
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def parse_store_url(text: str, *, base: pathlib.Path | None = None) -> StoreUrl:
    """A store URL or bare path; relative SQLite paths are taken from ``base`` when given."""
    if not isinstance(text, str) or not text:
        raise ConfigError("store url: expected 'sqlite:///PATH', 'postgresql://…' or a file path")
    if text.startswith(POSTGRES_SCHEMES):
        return StoreUrl("postgresql", text)
    if text.startswith("sqlite:///"):
        path = text[len("sqlite:///") :]
    elif text.startswith("sqlite:"):
        path = text[len("sqlite:") :]
    elif "://" in text:
        raise ConfigError(f"store url {text!r}: unknown scheme; use sqlite:///PATH or postgresql://…")
    else:
        path = text
    if base is not None and not pathlib.Path(path).is_absolute():
        path = str(base / path)
    return StoreUrl("sqlite", path)
