"""Self-rating detection on simulated traffic: flagged share of honest vs self-rating presses.

Honest windows: one citizen at a time (service ≥ 90 s plus an exponential wait),
the officer presses 请评价 and the citizen rates 0.8–25 s later (the simulator's
citizens, ``collector.sim.traffic.serve``, median 3.5 s); a few citizens
press before the invite or walk away unrated. Self-rating: an officer pressing
their own box in five ways — bursts, presses with no invite spread over a day,
invite-and-press in one move, a regular routine, and presses after hours.

    python bench/detection.py [--seed N] [--honest N] [--cheats N] [--fdr PCT]

Officer-months (the self-rating that really happens), drawn from the
simulator's behaviours (``demo_bureau(behaviours=True)``, ``plan``): thirteen
units of ten officers over six months; honest officers differ in their
citizens' walk-away rate (10–35%), pace (0.8–2.5 × the traffic's arrivals)
and speed (rating delays with medians 2.4–4 s) and in their satisfied share
(88–98%); the first unit is all honest; in every other unit one officer fills
in 50% of walk-aways and another 25% (odd units) or 100% (even units),
pressing 满意 at a personal delay of 4–9 s. Twice: the fillers starting in
month 2, 3 or 4 (after a clean history of their own), and from month 1 (no
clean history). Checked with ``check_month`` as the store feeds it: the
officers' own previous three months left unflagged for the no-rating history,
and their previous three months' delays for the delay band.

Three settings, each over three seeds: the one the checks were developed on
(``dev_``: citizens' delay sigma 0.45, the filler's habit ± 0.35 s), the
first held-out one, since looked at and tuned on, so now a validation setting
(``validation_``: other seeds, sigma 0.35–0.6, habit ± 0.3–0.6 s), and a final
held-out setting nobody tuned on (no prefix: the headline figures; other
seeds, citizens' delays drawn gamma or as a mixture of quick and slow citizens
instead of lognormal, habits wandering by ± 0.25–0.75 s). The policy's
defaults (``false_discovery_pct`` 12.5, ``delay_margin_pct`` 3, the combined
evidence reading hints short of their own rule's margin) were chosen on the
first two; the final one was measured once, with the checks frozen.

What is reachable at all: ``bench/detection_oracle.py`` scores the same
officer-months with the true likelihood ratio of "fills 50%" against "honest"
under the simulator's model; at a 2% false-flag share it flags 1.0 of them
knowing each window's parameters, and 0.94–0.99 from one month knowing only
the model (1.0 with a clean history), so 0.9 is within reach of a check that
assumes the citizens' delays are lognormal, as the simulator draws them. The
checks here assume only smooth delays compared with the other officers'.

Prints each scenario's flagged share; the last line is one JSON object: the
press rules' ``self_rating_flagged_share`` and ``honest_flagged_share``
(targets ≥ 0.95, ≤ 0.01) and, on the final held-out setting,
``fill_in_officer_recall`` (50% fill, both starts; ≥ 0.9),
``fill_in_officer_recall_25``, ``fill_in_officer_recall_100``,
``fill_in_officer_recall_from_start``, ``fill_in_officer_recall_after_history``,
``honest_officer_false_flag_share`` (≤ 0.02) and ``officer_months``; the same
with a ``validation_`` prefix for the first held-out setting and a ``dev_``
prefix for the setting developed on.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import pathlib
import random
import sys
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

# The checkout first: this script's folder holds bench/firmware.py, which would shadow the firmware package.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from collector.report.flag_rules import OfficerFlagRules  # noqa: E402
from collector.report.officer_stats import OfficerMonth, check_month  # noqa: E402
from collector.sim.traffic import Behaviour, Step, Traffic, demo_bureau, plan, serve  # noqa: E402
from collector.web.detection import Press, find_flags, share_flags  # noqa: E402
from collector.web.settings import DetectionRules  # noqa: E402
from protocol.messages import FLAG_OUTSIDE_HOURS, FLAG_UNSOLICITED  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
SCENARIOS = ("burst", "no_invite_spread", "invite_and_press", "regular_routine", "after_hours")


class Box:
    """One officer's box: numbers presses, remembers who pressed (honest or which scenario)."""

    def __init__(self, officer: str, unit: str) -> None:
        self.officer, self.unit, self.seq = officer, unit, 0
        self.presses: list[Press] = []
        self.truth: dict[tuple[str, int, int], str] = {}

    def press(self, at_ms: int, *, invite_ms: int | None, flags: int = 0, who: str = "honest") -> None:
        self.seq += 1
        if invite_ms is None:
            flags |= FLAG_UNSOLICITED
        p = Press(f"box-{self.officer}", 1, self.seq, self.officer, self.unit, at_ms, flags, invite_ms)
        self.presses.append(p)
        self.truth[p.key] = who


def _ms(day: dt.date, minute: float) -> int:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=TZ)
    return int(start.timestamp() * 1000 + minute * 60_000)


COUNTER = Behaviour(walk_away=0.076, speed=1.17)  # a busy county counter's citizens (collector.sim.traffic)


def honest_day(box: Box, day: dt.date, rng: random.Random) -> None:
    t = 8 * 60 + 30 + rng.uniform(0, 10)  # minutes since midnight
    while True:
        t += 1.5 + rng.expovariate(1 / 6.0)  # service ≥ 90 s, then the next citizen
        if t > 17 * 60 + 25:
            return
        invite = _ms(day, t)
        r = rng.random()
        if r < 0.004:  # pressed before the officer invited
            box.press(invite - int(rng.uniform(2000, 20000)), invite_ms=None)
        else:  # the simulator's citizen: rates 0.8–25 s after the invite (median 3.5 s) or walks away
            served = serve(rng, COUNTER, 1.0, 1.0, 0.0)
            if served.delay_ms is not None:
                box.press(invite + served.delay_ms, invite_ms=invite)


def cheat(box: Box, day: dt.date, scenario: str, rng: random.Random) -> None:
    if scenario == "burst":
        t = _ms(day, rng.uniform(9 * 60, 17 * 60))
        for _ in range(rng.randint(5, 12)):
            t += int(rng.uniform(2000, 10000))
            box.press(t, invite_ms=None, who=scenario)
    elif scenario == "no_invite_spread":
        minutes = sorted(rng.uniform(9 * 60, 17 * 60) for _ in range(rng.randint(4, 10)))
        for m in minutes:
            box.press(_ms(day, m), invite_ms=None, who=scenario)
    elif scenario == "invite_and_press":
        t = rng.uniform(9 * 60, 15 * 60)
        for _ in range(rng.randint(6, 12)):
            t += rng.uniform(3, 15)
            invite = _ms(day, t)
            box.press(invite + int(rng.uniform(250, 700)), invite_ms=invite, who=scenario)
    elif scenario == "regular_routine":
        period = rng.uniform(120, 300) * 1000
        t = _ms(day, rng.uniform(9 * 60, 15 * 60))
        for _ in range(rng.randint(8, 12)):
            t += int(period * rng.uniform(0.97, 1.03))
            box.press(t + int(rng.uniform(1200, 1800)), invite_ms=t, who=scenario)
    elif scenario == "after_hours":
        t = rng.uniform(18 * 60 + 30, 21 * 60)
        for _ in range(rng.randint(4, 10)):
            t += rng.uniform(1, 8)
            box.press(_ms(day, t), invite_ms=_ms(day, t) - 2500, flags=FLAG_OUTSIDE_HOURS, who=scenario)


def simulate(seed: int, honest: int, cheats: int) -> tuple[list[Press], dict[tuple[str, int, int], str]]:
    rng = random.Random(seed)
    days = [dt.date(2026, 10, d) for d in range(1, 32) if dt.date(2026, 10, d).weekday() < 5]
    boxes = [Box(f"H{i:03d}", f"U{i % 8}") for i in range(honest)]
    boxes += [Box(f"C{i:03d}", f"U{i % 8}") for i in range(cheats)]
    for i, box in enumerate(boxes):
        for day in days:
            honest_day(box, day, rng)
            if i >= honest and rng.random() < 0.3:
                cheat(box, day, SCENARIOS[rng.randrange(len(SCENARIOS))], rng)
    presses = [p for b in boxes for p in b.presses]
    truth = {k: v for b in boxes for k, v in b.truth.items()}
    return presses, truth


MONTHS = ("2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10")
# Behaviour the checks were developed on, and behaviour held out (other seeds, citizens whose delays
# spread 0.35–0.6 instead of 0.45, fillers whose habit wanders by 0.3–0.6 s instead of 0.35 s).
DEV = {"seeds": (20261122, 1, 2), "spread": (0.45, 0.45), "jitter": (0.35, 0.35)}
HELD_OUT = {"seeds": (7, 8, 9), "spread": (0.35, 0.6), "jitter": (0.3, 0.6)}
# Held out to the end: seeds nobody tuned on, citizens' delays gamma or a two-kinds mixture instead of
# lognormal (collector.sim.traffic.citizen_delay), fillers' habits wandering by 0.25–0.75 s.
FINAL = {"seeds": (41, 42, 43), "spread": (0.35, 0.6), "jitter": (0.25, 0.75), "shapes": ("gamma", "mixture")}


def ratings_of(steps: list[Step]) -> dict[str, list[Any]]:
    """Per officer, from one window's steps: ``[invites, unrated, [(invite→rating delay ms, satisfied), …]]``."""
    out: dict[str, list[Any]] = {}
    invite_at = 0
    for s in steps:
        e = s.expect[0]
        if e.officer is None or e.kind not in ("invite", "unrated", "rated"):
            continue
        o = out.setdefault(e.officer, [0, 0, []])
        if e.kind == "invite":
            o[0] += 1
            invite_at = s.at_ms
        elif e.kind == "unrated":
            o[1] += 1
        else:
            o[2].append((s.at_ms - invite_at, e.level == 1))
    return out


def month_of_steps(steps: list[Step], month: str) -> dict[str, OfficerMonth]:
    """Officer-months as the store gives them from one window's steps: invites, unrated, ratings, delays."""
    return {
        k: OfficerMonth(k, "", inv, un, len(r), sum(sat for _d, sat in r), tuple(d for d, _sat in r))
        for k, (inv, un, r) in ratings_of(steps).items()
    }


def officer_months(seed: int, rules: OfficerFlagRules, *, from_start: bool, setting: dict[str, Any]) -> dict[str, Any]:
    """Flagged shares of officer-months by fill rate (0 = honest) over six months of the simulator's bureau:
    thirteen units of ten officers (``demo_bureau(behaviours=True)``), the fillers starting in month 2–4
    (``from_start``: month 1)."""
    bureau = demo_bureau(
        65,
        seed,
        units=13,
        behaviours=True,
        spread=setting["spread"],
        jitter=setting["jitter"],
        shapes=setting.get("shapes", ("lognormal",)),
    )
    onset = random.Random(seed)
    people = {
        o.id: dataclasses.replace(
            o,
            behaviour=dataclasses.replace(
                o.behaviour, fill_from=MONTHS[0 if from_start else onset.randint(1, 3)] if o.behaviour.fill else ""
            ),
        )
        for o in bureau.officers
    }
    bureau = dataclasses.replace(bureau, officers=tuple(people.values()))
    past: dict[str, list[tuple[int, int]]] = {o: [] for o in people}
    seen: dict[str, list[tuple[int, ...]]] = {o: [] for o in people}
    total: Counter[float] = Counter()
    flagged: Counter[float] = Counter()
    by_rule: Counter[tuple[float, str]] = Counter()
    for n, month in enumerate(MONTHS):
        rows: list[OfficerMonth] = []
        for steps in plan(bureau, month, Traffic(), seed * 100 + n, "Asia/Shanghai").values():
            for oid, m in month_of_steps(steps, month).items():
                rows.append(dataclasses.replace(m, unit_id=people[oid].unit_id))
        history = {o: (sum(u for u, _ in h[-3:]), sum(n for _, n in h[-3:]), len(h[-3:])) for o, h in past.items() if h}
        before = {o: (len(d[-3:]), [x for month_delays in d[-3:] for x in month_delays]) for o, d in seen.items() if d}
        for m, check in zip(rows, check_month(rows, rules, history, before), strict=True):
            seen[m.officer_id].append(m.delays_ms)  # every month's delays, as the store gives them
            if not check.flags:  # a flagged month is no baseline for the next (unless a review explains it)
                past[m.officer_id].append((m.unrated, m.invites))
            if check.status != "tested":
                continue
            fill = people[m.officer_id].behaviour.filling(month)
            total[fill] += 1
            flagged[fill] += bool(check.flags)
            by_rule.update((fill, f["rule"]) for f in check.flags)
    return {"total": total, "flagged": flagged, "by_rule": by_rule}


def run_set(name: str, setting: dict[str, Any], rules: OfficerFlagRules) -> dict[str, float]:
    """Every seed of ``setting``, fillers from month 1 and from month 2–4: flagged shares, printed."""
    out: dict[str, float] = {}
    for from_start in (False, True):
        total: Counter[float] = Counter()
        flagged: Counter[float] = Counter()
        by_rule: Counter[tuple[float, str]] = Counter()
        for seed in setting["seeds"]:
            om = officer_months(seed, rules, from_start=from_start, setting=setting)
            total += om["total"]
            flagged += om["flagged"]
            by_rule += om["by_rule"]
        case = "from_start" if from_start else "after_history"
        when = "from month 1" if from_start else "from month 2-4"
        rules_seen = dict(sorted(by_rule.items()))
        print(f"{name}, fillers {when}: {sum(total.values())} officer-months; flags by (fill, rule): {rules_seen}")
        for f in (0.0, 0.25, 0.5, 1.0):
            share = flagged[f] / total[f] if total[f] else 0.0
            who = "honest" if f == 0 else f"fills {f:.0%} of walk-aways"
            print(f"  {who:28s} {flagged[f]:4d} / {total[f]:4d} officer-months flagged = {share:.4f}")
            out[f"{case}_{f}"] = share
            out[f"{case}_n_{f}"] = total[f]
            out[f"{case}_hit_{f}"] = flagged[f]
    for f in (0.0, 0.25, 0.5, 1.0):  # both cases together
        hits = out[f"after_history_hit_{f}"] + out[f"from_start_hit_{f}"]
        n = out[f"after_history_n_{f}"] + out[f"from_start_n_{f}"]
        out[f"all_{f}"] = hits / n if n else 0.0
        out[f"all_n_{f}"] = n
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--honest", type=int, default=60, help="honest officers")
    ap.add_argument("--cheats", type=int, default=20, help="officers who also rate themselves")
    ap.add_argument("--fdr", type=float, default=OfficerFlagRules().false_discovery_pct, help="officer checks' FDR, %%")
    args = ap.parse_args(argv)
    rules = DetectionRules()
    presses, truth = simulate(args.seed, args.honest, args.cheats)
    flags = find_flags(presses, rules) + share_flags(presses, rules)
    flagged = {f.key for f in flags}
    by_rule = Counter(f.rule for f in flags)
    total: Counter[str] = Counter(truth.values())
    hit: Counter[str] = Counter(truth[k] for k in flagged)
    print(f"presses: {len(presses)}; flags by rule: {dict(sorted(by_rule.items()))}")
    for who in ("honest", *SCENARIOS):
        if total[who]:
            print(f"  {who:18s} {hit[who]:6d} / {total[who]:6d} flagged = {hit[who] / total[who]:.4f}")
    self_total = sum(total[s] for s in SCENARIOS)
    self_hit = sum(hit[s] for s in SCENARIOS)
    officer_rules = OfficerFlagRules(false_discovery_pct=args.fdr)
    dev = run_set("developed on", DEV, officer_rules)
    held = run_set("validation (the first held-out setting, since tuned on)", HELD_OUT, officer_rules)
    final = run_set("final held out (never tuned on)", FINAL, officer_rules)
    result: dict[str, Any] = {
        "self_rating_flagged_share": round(self_hit / self_total, 4) if self_total else 0.0,
        "honest_flagged_share": round(hit["honest"] / total["honest"], 4) if total["honest"] else 0.0,
    }
    for prefix, figures in (("", final), ("validation_", held), ("dev_", dev)):
        result |= {
            f"{prefix}fill_in_officer_recall": round(figures["all_0.5"], 4),
            f"{prefix}fill_in_officer_recall_25": round(figures["all_0.25"], 4),
            f"{prefix}fill_in_officer_recall_100": round(figures["all_1.0"], 4),
            f"{prefix}fill_in_officer_recall_from_start": round(figures["from_start_0.5"], 4),
            f"{prefix}fill_in_officer_recall_after_history": round(figures["after_history_0.5"], 4),
            f"{prefix}honest_officer_false_flag_share": round(figures["all_0.0"], 4),
            f"{prefix}officer_months": int(sum(figures[f"all_n_{f}"] for f in (0.0, 0.25, 0.5, 1.0))),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
