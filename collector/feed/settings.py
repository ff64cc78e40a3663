"""``[feed]`` in ``evalbox.toml``: where the provincial 好差评 feed goes and how it retries."""

from __future__ import annotations

import dataclasses
import datetime as dt

from collector.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class FeedConfig:
    """The feed's endpoint (HTTPS only), its CA and token, and the batch and retry settings."""

    url: str
    ca_file: str | None = None  # PEM file of the CA that signed the endpoint's certificate (default: system CAs)
    token: str | None = None  # sent as ``Authorization: Bearer …``
    batch_size: int = 100  # ratings per POST
    timeout_s: float = 10.0  # per POST
    interval_s: float = 5.0  # `evalbox serve`: how often new ratings are queued and due ones pushed
    retry_first_s: float = 2.0  # backoff after a failed POST: doubling from this ...
    retry_max_s: float = 300.0  # ... up to this
    since: str | None = None  # YYYY-MM-DD: only ratings from this local day on (default: all)

    def __post_init__(self) -> None:
        if not self.url.startswith("https://") or len(self.url) <= len("https://"):
            raise ConfigError(f"url: {self.url!r}: the feed goes to an https:// endpoint only")
        if not 1 <= self.batch_size <= 10_000:
            raise ConfigError(f"batch_size: {self.batch_size}: expected 1..10000")
        for name in ("timeout_s", "interval_s", "retry_first_s", "retry_max_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be positive")
        if self.retry_max_s < self.retry_first_s:
            raise ConfigError("retry_max_s: must be at least retry_first_s")
        if self.since is not None:
            try:
                dt.date.fromisoformat(self.since)
            except ValueError:
                raise ConfigError(f"since: {self.since!r}: expected YYYY-MM-DD") from None
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise ConfigError("token: must be non-empty without spaces")
