"""Settings of the web page, alerts, case deadlines and misuse detection (``[web]`` in ``evalbox.toml``).

What counts and how it is judged — satisfied and bad levels, target,
floor, time zone — is the rating policy's (``collector.report.Policy``),
never a web setting. Values are checked where they are built (``ConfigError``
names the key).

>>> WebSettings(return_visit_working_days=2, webhook_urls=("http://alerts.local/hook",))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from collector.errors import ConfigError


@dataclass(frozen=True)
class DetectionRules:
    """Thresholds of the self-rating and misuse rules (see docs/web.md)."""

    burst_presses: int = 4  # this many presses on one box ...
    burst_window_s: int = 60  # ... within this many seconds is a burst
    gated: bool = True  # boxes ask for an invite before a rating (else the no_invite rule is off)
    unsolicited_per_day: int = 3  # an officer's presses with no invite in a day before they are flagged
    instant_after_invite_ms: int = 800  # a citizen cannot read the prompt and press faster than this
    regular_run: int = 6  # this many presses in a row ...
    regular_tolerance: float = 0.05  # ... each one mean-gap after the last, give or take this share ...
    regular_slack_max_s: int = 10  # ... and at most this many seconds
    regular_max_gap_s: int = 600  # (gaps longer than this are not a routine)
    share_min_presses: int = 20  # an officer's unsolicited share is judged on at least this many presses
    share_factor: float = 3.0  # flagged when above factor × the unit's share ...
    share_margin: float = 0.20  # ... and at least this much above it
    opening_hours: tuple[tuple[int, int], ...] = ()  # local (start_min, end_min) ranges; () = trust the box's flag
    working_weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4, 5, 6})  # days the windows open (Mon = 0)


@dataclass(frozen=True)
class WebSettings:
    """Everything the web package reads from ``[web]``."""

    # sessions and login
    session_idle_s: int = 30 * 60
    session_max_s: int = 12 * 3600
    secure_cookies: bool = False  # True behind HTTPS
    login_max_failures: int = 5
    login_lockout_s: int = 15 * 60
    # API tokens (evalbox token add): requests per token per minute, over the limit 429 + Retry-After
    token_rate_per_min: int = 120
    # bad-review follow-up (working days are Mon–Fri unless holidays say otherwise)
    return_visit_working_days: int = 1
    rectification_working_days: int = 15
    holidays: frozenset[str] = frozenset()  # 'YYYY-MM-DD' days that are not working days
    extra_working_days: frozenset[str] = frozenset()  # weekend days that are (调休)
    # alerts
    bad_alert_max_age_s: int = 2 * 86400  # older bad ratings (a backlog, a first start) open cases but alert nobody
    floor_min_rated: int = 5  # below-floor alert only once this many ratings are in
    offline_after_s: int = 15 * 60
    outbox_alert_depth: int = 50
    webhook_urls: tuple[str, ...] = ()
    webhook_timeout_s: float = 5.0
    mqtt_host: str | None = None
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    retry_first_s: float = 2.0
    retry_max_s: float = 300.0
    # background scanning
    scan_interval_s: float = 5.0  # cases, alerts, deliveries
    detect_interval_s: float = 60.0  # misuse detection (reads more rows)
    detection: DetectionRules = field(default_factory=DetectionRules)

    def __post_init__(self) -> None:
        for name in (
            "return_visit_working_days",
            "rectification_working_days",
            "session_idle_s",
            "session_max_s",
            "token_rate_per_min",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        for url in self.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"webhook_urls: {url!r} is not an http(s) URL")

    def replace(self, **changes: object) -> WebSettings:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
