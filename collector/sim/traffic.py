"""The fleet simulator's traffic model: what happens at each window, and the truth it implies.

A month of service at a window is planned ahead as a list of ``Step``s on the
virtual clock (opening hours, shifts with sign-in/out, citizens arriving,
the officer's 请评价 invite, the citizen's rating with the officer's
satisfaction probability, a few citizens who walk away unrated, a few
unsolicited presses and repeat presses). Each step says what the box should
record (``expect``); the driver checks the box agrees as it goes, and the
``Truth`` sums the expectations per officer the way the monthly report does.

Everything is drawn from one ``random.Random(seed)``: a seed reproduces a plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

from collector.timeplace import month_of, parse_month, zone


@dataclasses.dataclass(frozen=True)
class Officer:
    id: str
    name: str
    unit_id: str
    window_id: str
    p_satisfied: float  # chance a rating is satisfied (a top level)


@dataclasses.dataclass(frozen=True)
class Window:
    id: str
    unit_id: str
    name: str
    device_id: str
    scale: int
    transport: str  # mqtt | serial
    shifts: tuple[str, str]  # officer ids: morning, afternoon


@dataclasses.dataclass(frozen=True)
class Unit:
    id: str
    name: str


@dataclasses.dataclass(frozen=True)
class Bureau:
    units: tuple[Unit, ...]
    windows: tuple[Window, ...]
    officers: tuple[Officer, ...]

    def officer(self, officer_id: str) -> Officer:
        return next(o for o in self.officers if o.id == officer_id)


@dataclasses.dataclass(frozen=True)
class Expect:
    """What one step must store: the rollup ``kind`` and its coordinates."""

    kind: str  # rated | unsolicited | misuse | invite | unrated | signin | signout
    officer: str | None
    level: int | None = None
    scale: int | None = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One action on a box at virtual time ``at_ms``.

    ``op`` is a control-channel command (``signin``, ``signout``, ``invite``,
    ``press``) or ``expire`` (let the open invite run out: the box records
    ``unrated``). ``expect`` lists the events it makes.
    """

    at_ms: int
    op: str
    arg: str | None
    expect: tuple[Expect, ...]


@dataclasses.dataclass(frozen=True)
class Traffic:
    """The knobs of the traffic model (defaults: a quiet county counter, compressed)."""

    arrivals_per_hour: float = 2.0
    opening: tuple[int, int] = (9 * 60, 17 * 60)  # local minutes
    lunch: tuple[int, int] = (12 * 60, 13 * 60)  # shift change at lunch
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    p_rate: float = 0.93  # an invited citizen rates
    p_repeat: float = 0.02  # a rated citizen presses again (recorded as misuse)
    unsolicited_per_day: float = 0.3  # presses with no invite (a passer-by, or a self-rating)


SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建红文辉林"
UNIT_NAMES = (
    "城关派出所",
    "东城派出所",
    "出入境管理大队",
    "车管所",
    "西城派出所",
    "南湖派出所",
    "北岗派出所",
    "开发区派出所",
)
WINDOW_KINDS = ("户籍窗口", "出入境窗口", "交管窗口", "治安窗口")


def demo_bureau(boxes: int, seed: int, *, serial_every: int = 0, five_level_every: int = 5) -> Bureau:
    """A fictional bureau: ``boxes`` windows over a few units, two officers per window (morning, afternoon).

    Every ``serial_every``-th box (0: none) talks serial; every ``five_level_every``-th box has a
    five-level keypad. Most officers are rated well; a few are not, so every band shows.
    """
    rnd = random.Random(seed)
    n_units = max(1, min(len(UNIT_NAMES), (boxes + 3) // 4))
    units = tuple(Unit(f"U{i + 1}", UNIT_NAMES[i]) for i in range(n_units))
    windows: list[Window] = []
    officers: list[Officer] = []
    names: set[str] = set()
    for w in range(boxes):
        unit = units[w % n_units]
        wid = f"W{w + 1:03d}"
        shift = []
        for _ in range(2):
            while True:
                name = rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2))))
                if name not in names:
                    names.add(name)
                    break
            oid = f"J{10001 + len(officers)}"
            p = rnd.choice((1.0, 1.0, 0.995, 0.99, 0.98, 0.97, 0.9, 0.8))
            officers.append(Officer(oid, name, unit.id, wid, p))
            shift.append(oid)
        transport = "serial" if serial_every and (w + 1) % serial_every == 0 else "mqtt"
        scale = 5 if five_level_every and (w + 1) % five_level_every == 0 else 2
        kind = WINDOW_KINDS[w % len(WINDOW_KINDS)]
        windows.append(
            Window(wid, unit.id, f"{kind}{w + 1}号", f"BOX-{w + 1:03d}", scale, transport, (shift[0], shift[1]))
        )
    return Bureau(units, tuple(windows), tuple(officers))


def _local_ms(day: dt.date, minute: float, tz: str) -> int:
    t = dt.datetime(day.year, day.month, day.day, tzinfo=zone(tz)) + dt.timedelta(minutes=minute)
    return int(t.timestamp() * 1000)


def _days(month: str, tz: str, days: int | None) -> Iterator[dt.date]:
    year, mon = parse_month(month)
    d = dt.date(year, mon, 1)
    n = 0
    while d.month == mon and (days is None or n < days):
        yield d
        d += dt.timedelta(days=1)
        n += 1


def _rating_level(rnd: random.Random, satisfied: bool, scale: int) -> int:
    """A level on a ``scale``-level keypad (1 = best); satisfied ones are the top level(s) the policy counts."""
    if scale == 2:
        return 1 if satisfied else 2
    # Policy default: levels 1..(scale-1)//2 … see docs/policy.md; the simulator only uses
    # the unambiguous ends so the truth does not depend on the policy's middle levels.
    return 1 if satisfied else scale


def plan_window(
    window: Window,
    p_satisfied: Mapping[str, float],
    month: str,
    traffic: Traffic,
    rnd: random.Random,
    tz: str,
    days: int | None,
) -> list[Step]:
    """Every step at one window over ``month`` (the first ``days`` days if given)."""
    steps: list[Step] = []
    morning, afternoon = window.shifts
    open_m, close_m = traffic.opening
    lunch_a, lunch_b = traffic.lunch
    per_minute = traffic.arrivals_per_hour / 60.0
    for day in _days(month, tz, days):
        if day.weekday() not in traffic.weekdays:
            continue
        for officer, (a, b) in ((morning, (open_m, lunch_a)), (afternoon, (lunch_b, close_m))):
            steps.append(Step(_local_ms(day, a - 5, tz), "signin", officer, (Expect("signin", officer),)))
            t = float(a)
            while True:
                # Serving a citizen takes at least a minute: the next one comes after the last is done.
                t += max(1.0, rnd.expovariate(per_minute)) if per_minute > 0 else b
                if t >= b - 2:
                    break
                at = _local_ms(day, t, tz)
                if rnd.random() < traffic.unsolicited_per_day / max(1.0, traffic.arrivals_per_hour * 8):
                    level = _rating_level(rnd, rnd.random() < 0.9, window.scale)
                    steps.append(Step(at - 30_000, "press", str(level),
                                      (Expect("unsolicited", officer, level, window.scale),)))  # fmt: skip
                ticket = f"T{day.day:02d}{int(t):04d}"
                steps.append(Step(at, "invite", ticket, (Expect("invite", officer),)))
                if rnd.random() >= traffic.p_rate:
                    steps.append(Step(at + 1, "expire", None, (Expect("unrated", officer),)))
                    continue
                satisfied = rnd.random() < p_satisfied.get(officer, 1.0)
                level = _rating_level(rnd, satisfied, window.scale)
                steps.append(Step(at + 4_000, "press", str(level), (Expect("rated", officer, level, window.scale),)))
                if rnd.random() < traffic.p_repeat:
                    again = _rating_level(rnd, True, window.scale)
                    steps.append(Step(at + 5_000, "press", str(again),
                                      (Expect("misuse", officer, again, window.scale),)))  # fmt: skip
            steps.append(Step(_local_ms(day, b + 1, tz), "signout", None, (Expect("signout", officer),)))
    return steps


def plan(
    bureau: Bureau, month: str, traffic: Traffic, seed: int, tz: str, days: int | None = None
) -> dict[str, list[Step]]:
    """Steps per device id for the whole bureau; reproducible from ``seed``."""
    p = {o.id: o.p_satisfied for o in bureau.officers}
    out: dict[str, list[Step]] = {}
    for i, window in enumerate(bureau.windows):
        out[window.device_id] = plan_window(window, p, month, traffic, random.Random(seed * 1_000_003 + i), tz, days)
    return out


@dataclasses.dataclass
class OfficerTruth:
    """What the report must say for one officer in one month."""

    levels: Counter[tuple[int, int]] = dataclasses.field(default_factory=Counter)  # (scale, level) → rated count
    invites: int = 0
    unrated: int = 0
    unsolicited: int = 0
    misuse: int = 0

    @property
    def rated(self) -> int:
        return sum(self.levels.values())

    @property
    def satisfied(self) -> int:
        """Ratings at the top level (the simulator only presses the two ends of a keypad)."""
        return sum(n for (_, level), n in self.levels.items() if level == 1)


def truth(done: Iterable[tuple[int, Expect]], tz: str) -> dict[str, dict[str, OfficerTruth]]:
    """``{month: {officer: OfficerTruth}}`` from the ``(press time, expect)`` pairs a run completed."""
    out: dict[str, dict[str, OfficerTruth]] = {}
    for at_ms, e in done:
        if e.officer is None or e.kind in ("signin", "signout"):
            continue
        t = out.setdefault(month_of(at_ms, tz), {}).setdefault(e.officer, OfficerTruth())
        if e.kind == "rated":
            assert e.scale is not None and e.level is not None
            t.levels[(e.scale, e.level)] += 1
        elif e.kind == "invite":
            t.invites += 1
        elif e.kind == "unrated":
            t.unrated += 1
        elif e.kind == "unsolicited":
            t.unsolicited += 1
        elif e.kind == "misuse":
            t.misuse += 1
    return out
