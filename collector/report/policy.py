"""The rating policy: thresholds, level mapping, sanctions and rankings.

Loaded from a TOML file (``evalbox policy init`` writes a commented example,
``docs/policy.md`` documents every key). Every value is checked here, where
the ``Policy`` is built; a bad file raises ``ConfigError`` naming the key::

    >>> p = Policy()
    >>> p.floor, p.penalty_points, sorted(p.satisfied[5])
    (Fraction(95, 1), 10, [1, 2])
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from collector.errors import ConfigError
from collector.report.flag_rules import OfficerFlagRules, flag_rules_from_dict
from collector.timeplace import DEFAULT_TIMEZONE, zone

SCALES = (2, 3, 4, 5)

DEFAULT_SATISFIED: dict[int, frozenset[int]] = {
    2: frozenset({1}),
    3: frozenset({1, 2}),
    4: frozenset({1, 2}),
    5: frozenset({1, 2}),
}
# 差评 (bad reviews): the bottom two of five levels per GB/T 39734; the bottom
# level of 2- and 3-level boxes; the bottom two of four.
DEFAULT_BAD: dict[int, frozenset[int]] = {
    2: frozenset({2}),
    3: frozenset({3}),
    4: frozenset({3, 4}),
    5: frozenset({4, 5}),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """One policy, every value already checked. Percentages are exact ``Fraction``s."""

    timezone: str = DEFAULT_TIMEZONE
    target: Fraction = Fraction(100)
    floor: Fraction = Fraction(95)
    count_unsolicited: bool = False
    count_misuse: bool = False
    satisfied: dict[int, frozenset[int]] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SATISFIED))
    bad: dict[int, frozenset[int]] = dataclasses.field(default_factory=lambda: dict(DEFAULT_BAD))
    penalty_points: int = 10
    reminders_to_escalate: int = 3
    talks_to_escalate: int = 2
    warnings_to_escalate: int = 1
    complaints_for_talk: int = 1
    complaints_for_warning: int = 2
    min_sample: int = 30
    top_share: Fraction = Fraction(15)
    bottom_share: Fraction = Fraction(5)
    year_candidates: int = 3
    officer_flags: OfficerFlagRules = OfficerFlagRules()  # table [officer_flags], collector/report/flag_rules.py

    @property
    def counted(self) -> frozenset[str]:
        """The rollup kinds whose presses count as ratings under this policy."""
        return _COUNTED[self.count_unsolicited, self.count_misuse]


_COUNTED = {
    (u, m): frozenset({"rated"} | ({"unsolicited"} if u else set()) | ({"misuse"} if m else set()))
    for u in (False, True)
    for m in (False, True)
}

# key -> (kind, lower bound, upper bound) for the scalar keys, by table.
_SCALARS: dict[str, dict[str, tuple[str, int, int]]] = {
    "": {"timezone": ("zone", 0, 0)},
    "rates": {
        "target": ("pct", 0, 100),
        "floor": ("pct", 0, 100),
        "count_unsolicited": ("bool", 0, 0),
        "count_misuse": ("bool", 0, 0),
    },
    "sanctions": {
        "penalty_points": ("int", 0, 1000),
        "reminders_to_escalate": ("int", 1, 100),
        "talks_to_escalate": ("int", 1, 100),
        "warnings_to_escalate": ("int", 1, 100),
        "complaints_for_talk": ("int", 1, 100),
        "complaints_for_warning": ("int", 1, 100),
    },
    "ranking": {
        "min_sample": ("int", 1, 1_000_000),
        "top_share": ("pct", 0, 100),
        "bottom_share": ("pct", 0, 100),
        "year_candidates": ("int", 0, 100),
    },
}
_LEVEL_TABLES = {"satisfied", "bad"}


def _scalar(key: str, value: Any, kind: str, lo: int, hi: int) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind == "zone":
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a time zone name such as 'Asia/Shanghai'")
        try:
            zone(value)
        except ConfigError:
            raise ConfigError(f"{key}: unknown time zone {value!r}") from None
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if kind == "int":
        if not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        number: Fraction = Fraction(value)
    else:
        try:  # through the decimal text so 99.5 means exactly 199/2
            number = Fraction(Decimal(str(value)))
        except (InvalidOperation, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if not lo <= number <= hi:
        raise ConfigError(f"{key}: {value!r} is outside {lo}..{hi}")
    return value if kind == "int" else number


def _levels(key: str, table: Any) -> dict[int, frozenset[int]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: expected a table of scale = [levels]")
    out: dict[int, frozenset[int]] = {}
    for scale_text, levels in table.items():
        if scale_text not in {str(s) for s in SCALES}:
            raise ConfigError(f"{key}.{scale_text}: unknown scale (scales are 2, 3, 4, 5)")
        scale = int(scale_text)
        where = f"{key}.{scale}"
        if not isinstance(levels, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in levels):
            raise ConfigError(f"{where}: expected a list of levels, e.g. [1, 2]")
        if not levels or not all(1 <= x <= scale for x in levels):
            raise ConfigError(f"{where}: levels must be between 1 (best) and {scale} (worst), at least one")
        if len(set(levels)) == scale:
            raise ConfigError(f"{where}: every level listed; at least one level must be left out")
        out[scale] = frozenset(levels)
    return out


def policy_from_dict(data: dict[str, Any]) -> Policy:
    """Build a ``Policy`` from parsed TOML; ``ConfigError`` names the first bad key."""
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name in _SCALARS[""]:
            values[name] = _scalar(name, value, *_SCALARS[""][name])
            continue
        if name == "officer_flags":
            values[name] = flag_rules_from_dict(value)
            continue
        if name not in _SCALARS:
            raise ConfigError(f"{name}: unknown key (known: timezone, rates, sanctions, ranking, officer_flags)")
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table [{name}]")
        for key, item in value.items():
            full = f"{name}.{key}"
            if name == "rates" and key in _LEVEL_TABLES:
                defaults = DEFAULT_SATISFIED if key == "satisfied" else DEFAULT_BAD
                values[key] = {**defaults, **_levels(full, item)}
            elif key in _SCALARS[name]:
                values[key] = _scalar(full, item, *_SCALARS[name][key])
            else:
                raise ConfigError(f"{full}: unknown key")
    policy = Policy(**values)
    if policy.floor > policy.target:
        raise ConfigError(f"rates.floor: {policy.floor} is above rates.target {policy.target}")
    if policy.top_share + policy.bottom_share > 100:
        raise ConfigError("ranking.top_share: top_share + bottom_share exceed 100")
    if policy.complaints_for_warning < policy.complaints_for_talk:
        raise ConfigError("sanctions.complaints_for_warning: must not be below complaints_for_talk")
    return policy


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The policy as the TOML tables it is read from (``policy_from_dict`` gives it back).

    Stored with a month's close (``evalbox month close``): the judgement of a
    closed month stays the one made under the policy in force at closing.
    """
    return {
        "timezone": policy.timezone,
        "rates": {
            "target": _number(policy.target),
            "floor": _number(policy.floor),
            "count_unsolicited": policy.count_unsolicited,
            "count_misuse": policy.count_misuse,
            "satisfied": {str(s): sorted(v) for s, v in sorted(policy.satisfied.items())},
            "bad": {str(s): sorted(v) for s, v in sorted(policy.bad.items())},
        },
        "sanctions": {k: getattr(policy, k) for k in _SCALARS["sanctions"]},
        "ranking": {
            k: _number(getattr(policy, k)) if isinstance(getattr(policy, k), Fraction) else getattr(policy, k)
            for k in _SCALARS["ranking"]
        },
    }


def load_policy(path: str | pathlib.Path) -> Policy:
    """Read and check a policy file; ``ConfigError`` names the file and the bad key."""
    p = pathlib.Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the policy file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    try:
        return policy_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


EXAMPLE_POLICY = """\
# evalbox rating policy (评价政策). Every key is optional; the values shown
# are the defaults. Reference: docs/policy.md.

# Months are calendar months of the press time in this zone.
timezone = "Asia/Shanghai"

[rates]
target = 100                # percent: 达标, band `met`
floor = 95                  # percent: below it the sanction applies (band `below_floor`)
count_unsolicited = false   # presses with no open invite (无邀请评价) count as ratings?
count_misuse = false        # repeat / too-fast presses count as ratings?

# Which levels count as satisfied (满意), per scale; 1 is the best level.
[rates.satisfied]
2 = [1]                     # 满意 | 不满意
3 = [1, 2]                  # 满意 | 基本满意 | 不满意
4 = [1, 2]
5 = [1, 2]                  # 非常满意 | 满意 | 基本满意 | 不满意 | 非常不满意

# Bad reviews (差评) needing a return visit; GB/T 39734: the bottom two of five.
[rates.bad]
2 = [2]
3 = [3]
4 = [3, 4]
5 = [4, 5]

[sanctions]
penalty_points = 10         # year-end points lost per month below the floor (plus one 打招呼)
complaints_for_talk = 1     # valid complaints (有效投诉) in a year giving one 谈话 and no honours
complaints_for_warning = 2  # ... giving one 告诫
reminders_to_escalate = 3   # every 3rd 打招呼 in a year gives a 谈话; 3 escalate to the leaders
talks_to_escalate = 2       # every 2nd 谈话 in a year gives a 告诫; 2 escalate
warnings_to_escalate = 1    # 告诫 in a year that escalate

[ranking]
min_sample = 30             # rated presses needed to be ranked in a month or year
top_share = 15              # percent named "satisfied windows/officers"
bottom_share = 5            # percent named "unsatisfied windows/officers"
year_candidates = 3         # year-end candidates for excellent window officer

# Officer-month checks (民警月度统计核查): who fills in walk-aways. A flag never changes a rate.
[officer_flags]
min_invites = 100           # invites an officer needs in a month to be checked ("not enough data" below)
min_officers = 8            # checked officers a unit needs to be its own baseline (else the whole bureau)
false_discovery_pct = 12.5  # Benjamini-Hochberg false-discovery rate across the officers compared, percent
delay_band_s = 1            # width of the narrow invite->press delay band, seconds
delay_max_s = 30            # delays beyond this are not looked at
delay_margin_pct = 3        # band share must also exceed the expected share by this many points
no_rating_margin_pct = 5    # no-rating rate must also be this many points under the baseline median
satisfied_margin_pct = 3    # unsatisfied share must also be this many points under the baseline median
"""
