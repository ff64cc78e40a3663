"""The fleet simulator's traffic model: reproducible, inside opening hours, and its truth adds up."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest

from collector.sim.traffic import Behaviour, Expect, Step, Traffic, citizen_delay, demo_bureau, plan, serve, truth
from collector.timeplace import month_of, zone

TZ = "Asia/Shanghai"


def test_a_seed_reproduces_the_plan_and_another_seed_changes_it() -> None:
    bureau = demo_bureau(6, seed=3, serial_every=3)
    a = plan(bureau, "2026-10", Traffic(), seed=3, tz=TZ, days=5)
    b = plan(bureau, "2026-10", Traffic(), seed=3, tz=TZ, days=5)
    c = plan(bureau, "2026-10", Traffic(), seed=4, tz=TZ, days=5)
    assert a == b
    assert a != c
    assert [w.transport for w in bureau.windows].count("serial") == 2
    assert len({o.name for o in bureau.officers}) == len(bureau.officers) == 12


def test_steps_fall_on_working_days_inside_opening_hours_in_order() -> None:
    bureau = demo_bureau(4, seed=1)
    steps = plan(bureau, "2026-10", Traffic(arrivals_per_hour=4), seed=1, tz=TZ)
    for device_steps in steps.values():
        times = [s.at_ms for s in device_steps]
        assert times == sorted(times)
        for s in device_steps:
            local = dt.datetime.fromtimestamp(s.at_ms / 1000, zone(TZ))
            assert month_of(s.at_ms, TZ) == "2026-10"
            assert local.weekday() < 5, local  # 1 Oct 2026 is a Thursday; weekends stay closed
            assert dt.time(8, 55) <= local.time() <= dt.time(17, 1), local


def test_every_invite_is_rated_or_expires_and_shift_officers_are_stamped() -> None:
    bureau = demo_bureau(2, seed=5)
    for window in bureau.windows:
        steps = plan(bureau, "2026-11", Traffic(), seed=5, tz=TZ, days=10)[window.device_id]
        on_duty = None
        for i, s in enumerate(steps):
            if s.op == "signin":
                on_duty = s.arg
            elif s.op == "signout":
                on_duty = None
            else:
                assert s.expect[0].officer == on_duty and on_duty in window.shifts
            if s.op == "invite":
                nxt = [t for t in steps[i + 1 :] if t.op != "press" or t.expect[0].kind != "unsolicited"][0]
                assert nxt.op in ("press", "expire")


def test_truth_counts_per_officer_and_month() -> None:
    oct31 = int(dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=zone(TZ)).timestamp() * 1000)
    done = [
        (oct31, Expect("rated", "A", 1, 2)),
        (oct31 + 1000, Expect("rated", "A", 2, 2)),  # 00:00:00 on 1 November
        (oct31, Expect("rated", "A", 5, 5)),
        (oct31, Expect("invite", "A")),
        (oct31, Expect("unrated", "A")),
        (oct31, Expect("misuse", "A", 1, 2)),
        (oct31, Expect("unsolicited", "A", 1, 2)),
        (oct31, Expect("signin", "A")),
    ]
    t = truth(done, TZ)
    octo, nov = t["2026-10"]["A"], t["2026-11"]["A"]
    assert (octo.rated, octo.satisfied, octo.invites, octo.unrated, octo.misuse, octo.unsolicited) == (2, 1, 1, 1, 1, 1)
    assert (nov.rated, nov.satisfied) == (1, 0)


def delays_by_officer(steps: list[Step]) -> dict[str, tuple[int, int, list[int], int]]:
    """Officer → (invites, unrated, invite→rating delays, satisfied ratings) of one window's steps."""
    out: dict[str, tuple[int, int, list[int], int]] = {}
    invite_at = 0
    for s in steps:
        e = s.expect[0]
        if e.officer is None or e.kind not in ("invite", "unrated", "rated"):
            continue
        invites, unrated, delays, satisfied = out.get(e.officer, (0, 0, [], 0))
        if e.kind == "invite":
            invites, invite_at = invites + 1, s.at_ms
        elif e.kind == "unrated":
            unrated += 1
        else:
            delays.append(s.at_ms - invite_at)
            satisfied += e.level == 1
        out[e.officer] = (invites, unrated, delays, satisfied)
    return out


def test_the_plain_bureau_keeps_its_quiet_counter() -> None:
    bureau = demo_bureau(4, seed=2)
    assert all(o.behaviour == Behaviour() for o in bureau.officers)
    for steps in plan(bureau, "2026-10", Traffic(), seed=2, tz=TZ, days=10).values():
        for _, (_, _, delays, _) in delays_by_officer(steps).items():
            assert delays and set(delays) == {4_000}  # every citizen rates 4 s after the invite, as before


def test_behaviours_honest_windows_differ_and_fillers_fill_in_walk_aways() -> None:
    bureau = demo_bureau(20, seed=4, units=5, behaviours=True)
    by_unit: dict[str, list[Behaviour]] = {}
    for o in bureau.officers:
        by_unit.setdefault(o.unit_id, []).append(o.behaviour)
        assert 0.10 <= (o.behaviour.walk_away or 0) <= 0.35 and o.behaviour.speed is not None
    assert [b.fill for b in by_unit["U1"]] == [0.0] * 8  # the first unit: everyone honest
    for n, unit in enumerate(("U2", "U3", "U4", "U5"), start=1):
        assert sorted(b.fill for b in by_unit[unit]) == sorted([0.5, 0.25 if n % 2 else 1.0] + [0.0] * 6)
    assert len({round(b.walk_away or 0, 3) for b in by_unit["U1"]}) == 8  # busy windows differ

    officers = {o.id: o for o in bureau.officers}
    seen = {}
    for steps in plan(bureau, "2026-10", Traffic(), seed=4, tz=TZ).values():
        seen |= delays_by_officer(steps)
    for oid, (invites, unrated, delays, satisfied) in seen.items():
        how = officers[oid].behaviour
        assert invites >= 50
        walked = how.walk_away or 0
        if how.fill == 1.0:  # every walk-away pressed 满意 by the officer, at their own delay
            assert unrated == 0
            near = [d for d in delays if abs(d - how.fill_delay_s * 1000) <= 4 * how.fill_jitter_s * 1000]
            assert len(near) >= 0.6 * walked * invites
        elif how.fill == 0.0:  # an honest window: unrated about its walk-away rate (binomial, 4 sigma)
            assert abs(unrated / invites - walked) <= 4 * (walked * (1 - walked) / invites) ** 0.5
        else:
            assert unrated / invites < walked
        assert satisfied <= len(delays)

    # filling in from a later month: honest before it
    late = Behaviour(walk_away=0.3, speed=0.8, spread=0.6, fill=1.0, fill_from="2026-11")
    assert late.filling("2026-10") == 0.0 and late.filling("2026-11") == 1.0
    rnd = random.Random(1)
    october = [serve(rnd, late, 0.9, 0.93, late.filling("2026-10")) for _ in range(2000)]
    november = [serve(rnd, late, 0.9, 0.93, late.filling("2026-11")) for _ in range(2000)]
    assert 0.25 < sum(s.delay_ms is None for s in october) / 2000 < 0.35
    assert not [s for s in november if s.delay_ms is None]
    filled = [s for s in november if s.filled]
    assert filled and all(s.satisfied for s in filled)
    # citizens' own delays are spread (never piled at a bound), the officer's bunched
    citizens = sorted(s.delay_ms for s in november if not s.filled and s.delay_ms is not None)
    assert citizens[0] >= 800 and citizens[-1] <= 25_000
    assert max(Counter(citizens).values()) <= 5  # no pile-up at a bound
    assert max(s.delay_ms for s in filled if s.delay_ms) - min(s.delay_ms for s in filled if s.delay_ms) < 4_000


def test_citizens_delays_in_other_shapes_keep_their_median() -> None:
    rnd = random.Random(3)
    for shape in ("lognormal", "gamma", "mixture"):
        delays = sorted(citizen_delay(rnd, 3000, 0.45, shape) for _ in range(4000))
        assert 2700 < delays[2000] < 3300, shape  # about the median asked for
        assert delays[200] < 2000 and delays[3800] > 5000, shape  # and spread out like citizens
    with pytest.raises(ValueError, match="delay shape 'uniform': one of lognormal, gamma, mixture"):
        citizen_delay(rnd, 3000, 0.45, "uniform")
    # a bureau of other shapes draws them per window; the default bureau stays lognormal throughout
    mixed = demo_bureau(20, seed=4, units=5, behaviours=True, shapes=("gamma", "mixture"))
    assert {o.behaviour.shape for o in mixed.officers} == {"gamma", "mixture"}
    assert {o.behaviour.shape for o in demo_bureau(20, seed=4, units=5, behaviours=True).officers} == {"lognormal"}
