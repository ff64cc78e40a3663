"""The fleet simulator's traffic model: reproducible, inside opening hours, and its truth adds up."""

from __future__ import annotations

import datetime as dt

from collector.sim.traffic import Expect, Traffic, demo_bureau, plan, truth
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
