"""Thresholds of the officer-month checks (policy table ``[officer_flags]``).

Kept apart from ``policy.py`` so the checks' keys are read and refused in one
place; ``policy_from_dict`` hands the table here. A bad value raises
``ConfigError`` naming ``officer_flags.KEY``::

    >>> flag_rules_from_dict({"min_invites": 50}).min_invites
    50
"""

from __future__ import annotations

import dataclasses
from typing import Any

from collector.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class OfficerFlagRules:
    """When an officer-month is tested and when it is flagged (documented in docs/policy.md)."""

    min_invites: int = 100  # invites an officer needs in the month to be tested at all
    min_officers: int = 8  # officers with enough invites a unit needs to be its own baseline (else the bureau)
    false_discovery_pct: float = 12.5  # Benjamini–Hochberg FDR level across the officers compared, percent
    delay_band_s: float = 1.0  # width of the narrow invite→press delay band, seconds
    delay_max_s: float = 30.0  # delays beyond this are not looked at (a late citizen, not a routine)
    delay_margin_pct: float = 3.0  # band share must exceed the expected share by this many points too
    no_rating_margin_pct: float = 5.0  # no-rating rate must be this many points under the baseline median
    satisfied_margin_pct: float = 3.0  # unsatisfied share must be this many points under the baseline's


# key -> (whole number?, lowest, highest, lowest allowed exclusive?)
_KEYS: dict[str, tuple[bool, float, float, bool]] = {
    "min_invites": (True, 10, 1_000_000, False),
    "min_officers": (True, 3, 100_000, False),
    "false_discovery_pct": (False, 0, 50, True),
    "delay_band_s": (False, 0, 60, True),
    "delay_max_s": (False, 0, 3600, True),
    "delay_margin_pct": (False, 0, 100, False),
    "no_rating_margin_pct": (False, 0, 100, False),
    "satisfied_margin_pct": (False, 0, 100, False),
}


def flag_rules_from_dict(table: Any, where: str = "officer_flags") -> OfficerFlagRules:
    """Build the rules from a parsed ``[officer_flags]`` table; ``ConfigError`` names the first bad key."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table [{where}]")
    values: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{where}.{key}"
        if key not in _KEYS:
            raise ConfigError(f"{full}: unknown key (known: {', '.join(_KEYS)})")
        whole, lo, hi, open_lo = _KEYS[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ConfigError(f"{full}: expected a number, got {value!r}")
        if whole and not isinstance(value, int):
            raise ConfigError(f"{full}: expected a whole number, got {value!r}")
        if value < lo or value > hi or (open_lo and value == lo):
            low = f"above {lo:.10g}" if open_lo else f"at least {lo:.10g}"
            raise ConfigError(f"{full}: {value!r} is impossible (must be {low} and at most {hi:.10g})")
        values[key] = value if whole else float(value)
    rules = OfficerFlagRules(**values)
    if rules.delay_band_s >= rules.delay_max_s:
        raise ConfigError(f"{where}.delay_band_s: {rules.delay_band_s:g} s is not below delay_max_s")
    return rules
