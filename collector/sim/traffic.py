"""The fleet simulator's traffic model: what happens at each window, and the truth it implies.

A month of service at a window is planned ahead as a list of ``Step``s on the
virtual clock (opening hours, shifts with sign-in/out, citizens arriving,
the officer's 请评价 invite, the citizen's rating with the officer's
satisfaction probability, a few citizens who walk away unrated, a few
unsolicited presses and repeat presses). Each step says what the box should
record (``expect``); the driver checks the box agrees as it goes, and the
``Truth`` sums the expectations per officer the way the monthly report does.

Each officer has a ``Behaviour``: by default the quiet counter of the traffic
model (everyone rates 4 s after the invite, the traffic's walk-away rate).
``demo_bureau(..., behaviours=True)`` gives every officer a window of their
own kind (``honest_behaviour``: a real walk-away rate of 10–35%, their own
pace and their citizens' own speed) and, in every unit but the first (where
everyone is honest), one officer who fills in half the walk-aways and one who
fills in a quarter or all of them: pressing 满意 on the box a citizen-like few
seconds after the invite, one press per invite (``serve``). The detection
bench (``bench/detection.py``) draws its officer-months from these same
behaviours.

Everything is drawn from one ``random.Random(seed)``: a seed reproduces a plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

from collector.timeplace import month_of, parse_month, zone


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """What happens at an officer's window besides the satisfaction: the citizens and the officer's own hand.

    The defaults are the traffic model's quiet counter: the traffic's walk-away rate, every citizen
    rating 4 s after the invite, nobody filling in.
    """

    walk_away: float | None = None  # share of invited citizens who walk away unrated; None: 1 - Traffic.p_rate
    pace: float = 1.0  # citizens arrive this many times as often as the traffic's arrivals_per_hour
    speed: float | None = None  # citizens rate after a lognormal delay of median 3 s × speed; None: all at 4 s
    spread: float = 0.45  # the lognormal's sigma: how much the citizens differ in speed
    shape: str = "lognormal"  # the citizens' delay distribution: one of DELAY_SHAPES (median 3 s × speed)
    fill: float = 0.0  # share of walk-aways the officer rates 满意 themself (a few seconds after the invite)
    fill_delay_s: float = 6.0  # the officer's habitual delay after the invite when filling in
    fill_jitter_s: float = 0.35  # how much that delay varies (normal sigma, seconds)
    fill_from: str = ""  # the first month (YYYY-MM) the officer fills in; '' from the start

    def filling(self, month: str) -> float:
        """The share of walk-aways the officer fills in during ``month``."""
        return self.fill if self.fill and month >= self.fill_from else 0.0


QUIET = Behaviour()


@dataclasses.dataclass(frozen=True)
class Served:
    """One invited citizen: a rating ``delay_ms`` after the invite (``None``: walked away unrated)."""

    delay_ms: int | None
    satisfied: bool = False
    filled: bool = False  # the officer pressed it, not the citizen


def serve(rnd: random.Random, behaviour: Behaviour, p_satisfied: float, p_rate: float, fill: float) -> Served:
    """What happens after one 请评价 invite: the citizen rates, or walks away and the officer (filling in
    ``fill`` of the walk-aways) may press 满意 for them at their own habitual delay."""
    walk = (1 - p_rate) if behaviour.walk_away is None else behaviour.walk_away
    if rnd.random() >= 1 - walk:  # (drawn as the plain traffic model always drew it)
        if fill and rnd.random() < fill:
            delay = rnd.gauss(behaviour.fill_delay_s, behaviour.fill_jitter_s)
            return Served(int(1000 * max(1.0, delay)), True, True)
        return Served(None)
    satisfied = rnd.random() < p_satisfied
    if behaviour.speed is None:
        return Served(4_000, satisfied)
    while True:  # nobody rates within 0.8 s of the invite, and a rating after 25 s is a late one
        delay = citizen_delay(rnd, 3000 * behaviour.speed, behaviour.spread, behaviour.shape)
        if 800 <= delay <= 25_000:
            return Served(int(delay), satisfied)


DELAY_SHAPES = ("lognormal", "gamma", "mixture")


def citizen_delay(rnd: random.Random, median_ms: float, spread: float, shape: str = "lognormal") -> float:
    """One citizen's invite→rating delay, ms, of median about ``median_ms``; ``spread`` is how much citizens
    differ (the lognormal's sigma; the gamma's coefficient of variation). ``mixture``: two kinds of citizen,
    two in three quick (lognormal around 0.8 × the median) and one in three slow (around 1.7 ×), each of
    sigma 0.8 × ``spread``. Other shapes than the lognormal keep checks honest about what they assume."""
    if shape == "lognormal":
        return rnd.lognormvariate(math.log(median_ms), spread)
    if shape == "gamma":
        k = 1 / (spread * spread)  # shape: the coefficient of variation is 1/sqrt(k)
        return median_ms * rnd.gammavariate(k, 1.0) / (k - 1 / 3 + 0.02 / k)  # k - 1/3 + 0.02/k ≈ its median
    if shape == "mixture":
        centre = 0.8 if rnd.random() < 2 / 3 else 1.7
        return rnd.lognormvariate(math.log(median_ms * centre), 0.8 * spread)
    raise ValueError(f"delay shape {shape!r}: one of {', '.join(DELAY_SHAPES)}")


def honest_behaviour(
    rnd: random.Random, *, spread: tuple[float, float] = (0.45, 0.45), shapes: tuple[str, ...] = ("lognormal",)
) -> Behaviour:
    """An honest officer's window: citizens walk away 10–35% of the time (busy windows differ), come 0.8–2.5
    times the traffic's pace and rate with a median delay of 2.4–4 s (``spread``: their lognormal sigma;
    ``shapes``: the delay distributions drawn from, one per window)."""
    behaviour = Behaviour(
        walk_away=rnd.uniform(0.10, 0.35),
        pace=rnd.uniform(0.8, 2.5),
        speed=rnd.uniform(0.8, 1.35),
        spread=rnd.uniform(*spread),
    )
    if shapes != ("lognormal",):  # (the default draws nothing more: plain bureaus stay as they were)
        behaviour = dataclasses.replace(behaviour, shape=rnd.choice(shapes))
    return behaviour


def filling_in(
    honest: Behaviour, fill: float, rnd: random.Random, *, jitter: tuple[float, float] = (0.35, 0.35)
) -> Behaviour:
    """``honest``, but the officer fills in ``fill`` of the walk-aways at a personal delay of 4–9 s."""
    return dataclasses.replace(honest, fill=fill, fill_delay_s=rnd.uniform(4, 9), fill_jitter_s=rnd.uniform(*jitter))


@dataclasses.dataclass(frozen=True)
class Officer:
    id: str
    name: str
    unit_id: str
    window_id: str
    p_satisfied: float  # chance a rating is satisfied (a top level)
    behaviour: Behaviour = QUIET


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


def demo_bureau(
    boxes: int,
    seed: int,
    *,
    serial_every: int = 0,
    five_level_every: int = 5,
    units: int | None = None,
    behaviours: bool = False,
    spread: tuple[float, float] = (0.45, 0.45),
    jitter: tuple[float, float] = (0.35, 0.35),
    shapes: tuple[str, ...] = ("lognormal",),
) -> Bureau:
    """A fictional bureau: ``boxes`` windows over a few units, two officers per window (morning, afternoon).

    Every ``serial_every``-th box (0: none) talks serial; every ``five_level_every``-th box has a
    five-level keypad. Most officers are rated well; a few are not, so every band shows. ``units``:
    how many units (default: one per four boxes, at most eight).

    ``behaviours``: every officer gets an honest window of their own (``honest_behaviour``, citizens'
    delay sigma drawn from ``spread``, their delays' shape from ``shapes``); the first unit stays all honest,
    and in every other unit the first officer fills in half the walk-aways and the second a quarter (odd
    units) or all of them (even units), at a personal delay of 4–9 s (sigma drawn from ``jitter``).
    """
    rnd = random.Random(seed)
    kinds = random.Random(seed * 7_919 + 1)  # the behaviours' own draws: names stay those of the plain bureau
    n_units = units or max(1, min(len(UNIT_NAMES), (boxes + 3) // 4))
    units_ = tuple(
        Unit(
            f"U{i + 1}",
            UNIT_NAMES[i % len(UNIT_NAMES)] + (str(i // len(UNIT_NAMES) + 1) if i >= len(UNIT_NAMES) else ""),
        )
        for i in range(n_units)
    )
    windows: list[Window] = []
    officers: list[Officer] = []
    names: set[str] = set()
    in_unit: Counter[str] = Counter()
    for w in range(boxes):
        unit_no = w % n_units
        unit = units_[unit_no]
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
            behaviour = QUIET
            if behaviours:
                behaviour = honest_behaviour(kinds, spread=spread, shapes=shapes)
                p = kinds.uniform(0.88, 0.98)
                k = in_unit[unit.id]
                if unit_no > 0 and k < 2:
                    behaviour = filling_in(behaviour, (0.5, 0.25 if unit_no % 2 else 1.0)[k], kinds, jitter=jitter)
                in_unit[unit.id] += 1
            officers.append(Officer(oid, name, unit.id, wid, p, behaviour))
            shift.append(oid)
        transport = "serial" if serial_every and (w + 1) % serial_every == 0 else "mqtt"
        scale = 5 if five_level_every and (w + 1) % five_level_every == 0 else 2
        kind = WINDOW_KINDS[w % len(WINDOW_KINDS)]
        windows.append(
            Window(wid, unit.id, f"{kind}{w + 1}号", f"BOX-{w + 1:03d}", scale, transport, (shift[0], shift[1]))
        )
    return Bureau(units_, tuple(windows), tuple(officers))


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
    behaviours: Mapping[str, Behaviour] | None = None,
) -> list[Step]:
    """Every step at one window over ``month`` (the first ``days`` days if given)."""
    steps: list[Step] = []
    morning, afternoon = window.shifts
    open_m, close_m = traffic.opening
    lunch_a, lunch_b = traffic.lunch
    behaviours = behaviours or {}
    for day in _days(month, tz, days):
        if day.weekday() not in traffic.weekdays:
            continue
        for officer, (a, b) in ((morning, (open_m, lunch_a)), (afternoon, (lunch_b, close_m))):
            how = behaviours.get(officer, QUIET)
            fill = how.filling(month)
            per_minute = traffic.arrivals_per_hour * how.pace / 60.0
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
                served = serve(rnd, how, p_satisfied.get(officer, 1.0), traffic.p_rate, fill)
                if served.delay_ms is None:
                    steps.append(Step(at + 1, "expire", None, (Expect("unrated", officer),)))
                    continue
                level = _rating_level(rnd, served.satisfied, window.scale)
                press_at = at + served.delay_ms
                steps.append(Step(press_at, "press", str(level), (Expect("rated", officer, level, window.scale),)))
                if not served.filled and rnd.random() < traffic.p_repeat:
                    again = _rating_level(rnd, True, window.scale)
                    steps.append(Step(press_at + 1_000, "press", str(again),
                                      (Expect("misuse", officer, again, window.scale),)))  # fmt: skip
            steps.append(Step(_local_ms(day, b + 1, tz), "signout", None, (Expect("signout", officer),)))
    return steps


def plan(
    bureau: Bureau, month: str, traffic: Traffic, seed: int, tz: str, days: int | None = None
) -> dict[str, list[Step]]:
    """Steps per device id for the whole bureau; reproducible from ``seed``."""
    p = {o.id: o.p_satisfied for o in bureau.officers}
    how = {o.id: o.behaviour for o in bureau.officers}
    out: dict[str, list[Step]] = {}
    for i, window in enumerate(bureau.windows):
        rnd = random.Random(seed * 1_000_003 + i)
        out[window.device_id] = plan_window(window, p, month, traffic, rnd, tz, days, how)
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
