"""What any officer-month check could reach on the simulator's officer-months: the likelihood-ratio bound.

The simulator's generative model (``collector.sim.traffic``): an honest officer's citizens walk away with
probability w ~ U(0.10, 0.35) and otherwise rate after a lognormal delay (median 3 s × speed, speed ~
U(0.8, 1.35), sigma from the setting's ``spread``, kept to 0.8–25 s), satisfied with probability
p ~ U(0.88, 0.98); an officer filling in a share f of the walk-aways presses 满意 after N(d, j) seconds,
d ~ U(4, 9), j from the setting's ``jitter``. For every officer-month the bench draws (same bureau, seeds and
months as ``bench/detection.py``) this scores the likelihood ratio "fills 50%" against "honest", with
the per-rating delays and satisfaction (more than the checks get: they see the satisfied count, not which
rating it was), and flags the top of the honest officer-months at a 2% false-flag share:

- ``genie``: the ratio knowing the officer's own w, speed, sigma and p (the filler's habit d, j averaged over
  its prior). No check can do better: an upper bound, with or without history.
- ``model``: the ratio knowing only the model and its parameter ranges (w, speed, sigma, p, d, j averaged over
  their priors on grids), from this month alone (``from_start``) or with the officer's clean previous months
  (up to three) narrowing w, speed, sigma and p (``after_history``): the best a check knowing the simulator
  could do.

    python bench/detection_oracle.py [--setting dev|held_out|both] [--seeds N] [--fpr 0.02]

The last line is one JSON object: ``{setting}_{genie|model}_{from_start|after_history}_recall_{25,50}`` and
the matching ``..._false_flag_share``. Pure Python (no numpy): a few minutes per setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import random
import sys
from collections import defaultdict
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from detection import DEV, HELD_OUT, MONTHS, ratings_of  # noqa: E402

from collector.sim.traffic import Traffic, demo_bureau, plan  # noqa: E402

LOW_MS, HIGH_MS = 800.0, 25_000.0
SQ2 = math.sqrt(2.0)


@dataclasses.dataclass
class Month:
    officer: str
    fill: float
    invites: int
    unrated: int
    ratings: list[tuple[int, bool]]  # (delay ms, satisfied)


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / SQ2))


def log_g(x: float, speed: float, sigma: float) -> float:
    """Log density (per ms) of a citizen's delay: lognormal median 3000·speed ms, kept to 0.8–25 s."""
    mu = math.log(3000 * speed)
    z = (math.log(x) - mu) / sigma
    norm = _phi((math.log(HIGH_MS) - mu) / sigma) - _phi((math.log(LOW_MS) - mu) / sigma)
    return -0.5 * z * z - math.log(x * sigma * math.sqrt(2 * math.pi) * norm)


def grid(lo: float, hi: float, n: int) -> list[float]:
    return [lo] if n == 1 or lo == hi else [lo + (hi - lo) * (i + 0.5) / n for i in range(n)]


def _lse(xs: list[float]) -> float:
    top = max(xs)
    return top if top == -math.inf else top + math.log(sum(math.exp(x - top) for x in xs))


class Scorer:
    """Log likelihood ratios of "fills ``f`` of walk-aways" against "honest" for one setting's priors."""

    def __init__(self, setting: dict[str, Any], f: float) -> None:
        self.f = f
        self.ws = grid(0.10, 0.35, 13)
        self.ps = grid(0.88, 0.98, 5)
        self.speeds = grid(0.8, 1.35, 10)
        s_lo, s_hi = setting["spread"]
        j_lo, j_hi = setting["jitter"]
        self.sigmas = grid(s_lo, s_hi, 1 if s_lo == s_hi else 4)
        self.phis = [(4.0 + 0.1 * i, j) for i in range(51) for j in grid(j_lo, j_hi, 1 if j_lo == j_hi else 3)]

    def _ratios(self, sat_ms: list[int], speed: float, sigma: float) -> list[list[float]]:
        """For each habit (d, j): N(x; d, j) / g(x) of the satisfied ratings x within 6 j of d."""
        lg = [math.exp(log_g(x, speed, sigma)) for x in sat_ms]
        out = []
        for d, j in self.phis:
            dm, jm = d * 1000, j * 1000
            row = []
            for x, g in zip(sat_ms, lg, strict=True):
                z = (x - dm) / jm
                if z * z <= 36:
                    row.append(math.exp(-0.5 * z * z) / (jm * math.sqrt(2 * math.pi)) / g)
            out.append(row)
        return out

    def _mix(self, ratios: list[list[float]], c: float) -> float:
        """log of the habit-averaged Π (1 + c · N/g): the filled ratings' share of the evidence."""
        return _lse([sum(math.log1p(c * r) for r in row) for row in ratios]) - math.log(len(ratios))

    def genie(self, m: Month, w: float, speed: float, sigma: float, p: float) -> float:
        """log LR knowing the window (w, speed, sigma, p); the habit (d, j) averaged over its prior."""
        sat = [x for x, s in m.ratings if s]
        c = w * self.f / ((1 - w) * p)
        return m.unrated * math.log(1 - self.f) + self._mix(self._ratios(sat, speed, sigma), c)

    def model(self, m: Month, history: list[Month]) -> float:
        """log LR knowing the priors only; ``history``: the officer's clean previous months (honest)."""
        months = [m, *history]
        u = sum(x.unrated for x in months)
        r = sum(len(x.ratings) for x in months)
        s = sum(sum(1 for _, ok in x.ratings if ok) for x in months)
        sat_now = [x for x, ok in m.ratings if ok]
        # the honest part, factorised: w | unrated, p | satisfied, (speed, sigma) | delays; this month and history
        lw = {w: u * math.log(w) + r * math.log(1 - w) for w in self.ws}
        lp = {p: s * math.log(p) + (r - s) * math.log(1 - p) for p in self.ps}
        delays = [x for mo in months for x, _ in mo.ratings]
        la = {(sp, sg): sum(log_g(x, sp, sg) for x in delays) for sp in self.speeds for sg in self.sigmas}
        h0 = _lse(list(lw.values())) + _lse(list(lp.values())) + _lse(list(la.values()))
        # filling this month: the unrated term changes by u_now·log(1-f), and satisfied ratings near d
        top_a = max(la.values())
        keep_a = [a for a, v in la.items() if v > top_a - 25]  # the rest weigh under e^-25 (grid-approximate)
        top_p = max(lp.values())
        keep_p = [p for p, v in lp.items() if v == top_p]  # p moves c by a few percent: its likeliest value
        h1_terms = []
        for a in keep_a:
            ratios = self._ratios(sat_now, *a)
            for w, vw in lw.items():
                for p in keep_p:
                    c = w * self.f / ((1 - w) * p)
                    h1_terms.append(vw + lp[p] + la[a] + self._mix(ratios, c))
        return m.unrated * math.log(1 - self.f) + _lse(h1_terms) - h0


def simulate(bureau: Any, seed: int, onset: dict[str, int]) -> list[dict[str, Month]]:
    people = {
        o.id: dataclasses.replace(
            o, behaviour=dataclasses.replace(o.behaviour, fill_from=MONTHS[onset[o.id]] if o.behaviour.fill else "")
        )
        for o in bureau.officers
    }
    bureau = dataclasses.replace(bureau, officers=tuple(people.values()))
    by_month: list[dict[str, Month]] = []
    for n, month in enumerate(MONTHS):
        got: dict[str, Month] = {}
        for steps in plan(bureau, month, Traffic(), seed * 100 + n, "Asia/Shanghai").values():
            for oid, (inv, un, ratings) in ratings_of(steps).items():
                got[oid] = Month(oid, people[oid].behaviour.filling(month), inv, un, ratings)
        by_month.append(got)
    return by_month


def run(name: str, setting: dict[str, Any], seeds: int, fpr: float) -> dict[str, float]:
    scorer = Scorer(setting, 0.5)
    scores: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for seed in setting["seeds"][:seeds]:
        bureau = demo_bureau(65, seed, units=13, behaviours=True, spread=setting["spread"], jitter=setting["jitter"])
        draw = random.Random(seed)  # the bench's onsets: one draw per filler, in officer order
        later = {o.id: (draw.randint(1, 3) if o.behaviour.fill else 0) for o in bureau.officers}
        for case, onset in (("from_start", {o: 0 for o in later}), ("after_history", later)):
            by_month = simulate(bureau, seed, onset)
            for o in bureau.officers:
                b = o.behaviour
                for n in range(len(MONTHS)):
                    m = by_month[n].get(o.id)
                    if m is None or m.invites < 100 or m.fill not in (0.0, 0.25, 0.5):
                        continue
                    if case == "after_history" and n == 0:
                        continue  # no history yet
                    g = scorer.genie(m, b.walk_away or 0.0, b.speed or 1.0, b.spread, o.p_satisfied)
                    scores[f"genie_{case}"][m.fill].append(g)
                    clean = [k for k in range(n) if by_month[k].get(o.id) and by_month[k][o.id].fill == 0]
                    hist = [] if case == "from_start" else [by_month[k][o.id] for k in clean[-3:]]
                    scores[f"model_{case}"][m.fill].append(scorer.model(m, hist))
            print(f"{name}: seed {seed} {case} scored", flush=True)
    out: dict[str, float] = {}
    for key, by_fill in sorted(scores.items()):
        honest = sorted(by_fill[0.0], reverse=True)
        cut = honest[int(fpr * len(honest))]  # flag strictly above: at most fpr of honest months
        out[f"{name}_{key}_false_flag_share"] = round(sum(x > cut for x in honest) / len(honest), 4)
        for f, label in ((0.5, "50"), (0.25, "25")):
            xs = by_fill[f]
            if xs:
                out[f"{name}_{key}_recall_{label}"] = round(sum(x > cut for x in xs) / len(xs), 4)
                out[f"{name}_{key}_n_{label}"] = len(xs)
        out[f"{name}_{key}_n_honest"] = len(honest)
        print(f"  {key}: " + ", ".join(f"{k.split(key + '_')[1]}={v}" for k, v in out.items() if key in k))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", choices=("dev", "held_out", "both"), default="both")
    ap.add_argument("--seeds", type=int, default=3, help="how many of the setting's seeds")
    ap.add_argument("--fpr", type=float, default=0.02, help="false-flag share of honest officer-months allowed")
    args = ap.parse_args(argv)
    result: dict[str, float] = {}
    if args.setting in ("dev", "both"):
        result |= run("dev", DEV, args.seeds, args.fpr)
    if args.setting in ("held_out", "both"):
        result |= run("held_out", HELD_OUT, args.seeds, args.fpr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
