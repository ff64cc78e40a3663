"""Officer-month statistics: who fills in the ratings citizens walked away from.

The self-rating that happens in halls is one press per invite at citizen-like
timing: the officer presses 请评价 and, when the citizen walks away without
rating, presses 满意 a few seconds later. Single presses look honest; the
month gives it away. For every officer with at least ``min_invites`` invites
in the month, against a baseline of the other officers of the unit (or of the
bureau when the unit has fewer than ``min_officers`` tested officers):

- ``no_rating_low``      the no-rating rate (unrated invites ÷ invites) far below
                         the baseline's: a beta-binomial left tail, the baseline's
                         spread between officers fitted robustly (median, MAD; at
                         least the bureau's), because walk-away rates differ between windows.
- ``no_rating_drop``     the no-rating rate far below the officer's own over the previous
                         ``HISTORY_MONTHS`` months (recorded flagged months not explained
                         left out): a window's walk-away rate is steady, so a sudden drop
                         is someone rating for the citizens (beta-binomial left tail from
                         the history, its weight capped).
- ``delay_band``         the share of ratings in one narrow invite→press delay band far
                         above the other officers' shares there, the band placed among
                         their delays for their speed and spread: a beta-binomial right
                         tail, Bonferroni over the bands looked at; this month alone, or
                         with the previous ``HISTORY_MONTHS`` months when this month shows
                         the same band (a habit from the first month has no clean history
                         to drop from, but recurs).
- ``satisfied_response`` a response rate at or above the baseline median together with
                         far fewer unsatisfied ratings than the baseline's
                         (beta-binomial left tail).
- ``combined``           the no-rating and delay-band evidence together (Fisher's method):
                         each may be short of a flag alone, and is read here without its
                         own rule's margin (a real but small drop or bunching still counts).

Each rule's p-values are corrected with Benjamini–Hochberg across the
officer-months tested; a flag needs its q-value at or under
``false_discovery_pct`` and the rule's margin. An officer under ``min_invites``
is "not enough data", never flagged. Flags never change a rate; they are shown
with their numbers in words (zh and en).

``check_month`` is pure (officer-months in, checks out); ``month_checks`` reads
one month (and the previous months' counts and delays) from the store (SQLite
or PostgreSQL) through ``Database``;
``record_month`` records its flags and ``review_month`` a supervisor's review.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from collector.errors import UsageError
from collector.report.flag_rules import OfficerFlagRules
from collector.report.policy import Policy
from collector.store import Database
from collector.store.audit import REVIEW_FIELDS, append_audit, month_seal, sha256_text
from collector.timeplace import parse_month

RULES = ("no_rating_low", "no_rating_drop", "delay_band", "satisfied_response", "combined")


@dataclasses.dataclass(frozen=True)
class OfficerMonth:
    """One officer's month as the checks see it."""

    officer_id: str
    unit_id: str
    invites: int
    unrated: int
    rated: int  # ratings counted under the policy
    satisfied: int
    delays_ms: tuple[int, ...] = ()  # invite→press delay of each rating that answered an invite


@dataclasses.dataclass
class OfficerCheck:
    """The outcome for one officer-month: ``status`` is ``tested`` or ``not_enough_data``."""

    officer_id: str
    unit_id: str
    status: str
    invites: int
    flags: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    p: dict[str, float] = dataclasses.field(default_factory=dict)
    note: dict[str, str] | None = None  # "not enough data", in words
    review: dict[str, Any] | None = None  # a supervisor's review of the month's flags

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "invites": self.invites, "flags": self.flags}
        if self.note:
            out |= self.note
        if self.review:
            out["review"] = self.review
        return out


# -- distributions (by hand with lgamma: no scipy in the collector) -------------------------


def _logsumexp(xs: Sequence[float]) -> float:
    top = max(xs)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(x - top) for x in xs))


def _lchoose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def betabinom_cdf(k: int, n: int, a: float, b: float) -> float:
    """P(X ≤ k) for X ~ BetaBinomial(n, a, b)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    base = _lbeta(a, b)
    terms = [_lchoose(n, x) + _lbeta(x + a, n - x + b) - base for x in range(0, k + 1)]
    return min(1.0, math.exp(_logsumexp(terms)))


def betabinom_sf(k: int, n: int, a: float, b: float) -> float:
    """P(X ≥ k) for X ~ BetaBinomial(n, a, b)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    base = _lbeta(a, b)
    terms = [_lchoose(n, x) + _lbeta(x + a, n - x + b) - base for x in range(k, n + 1)]
    return min(1.0, math.exp(_logsumexp(terms)))


def fisher(ps: Sequence[float]) -> float:
    """Fisher's combined p-value of independent p-values (chi-square with 2·len(ps) degrees of freedom)."""
    x = -sum(math.log(max(p, 1e-300)) for p in ps)  # half the chi-square statistic
    return min(1.0, math.exp(-x) * sum(x**i / math.factorial(i) for i in range(len(ps))))


def benjamini_hochberg(ps: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg q-values (step-up, monotone), in the order given."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, ps[i] * m / rank)
        q[i] = running
    return q


@dataclasses.dataclass(frozen=True)
class Baseline:
    """Other officers' shares: a robust centre and the beta spread between officers."""

    median: float
    a: float
    b: float


def fit_baseline(shares: Sequence[tuple[int, int]]) -> Baseline | None:
    """``(count, total)`` pairs of the other officers → their median share and a beta for the spread.

    The spread between officers is the robust one (1.4826 × MAD) less the binomial noise of a
    typical officer, so a few cheating officers neither move the centre nor hide in a wide spread.
    """
    rates = [c / n for c, n in shares if n > 0]
    if len(rates) < 2:
        return None
    m = statistics.median(rates)
    m = min(max(m, 0.5 / max(n for _, n in shares)), 1 - 1e-6)
    mad = statistics.median(abs(r - m) for r in rates) * 1.4826
    noise = statistics.median(m * (1 - m) / n for _, n in shares if n > 0)
    var_between = max(mad * mad - noise, (0.05 * m) ** 2)
    rho = min(var_between / (m * (1 - m)), 0.5)
    total = 1 / rho - 1
    return Baseline(m, m * total, (1 - m) * total)


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


EXPLAIN: dict[str, tuple[str, str]] = {
    "no_rating_low": (
        "本月 {invites} 次邀请仅 {unrated} 次未评价（{rate}），{group_zh}民警中位数 {median}（{p}）；"
        "群众走开不评价在每个窗口都会发生，未评价这么少像是有人替群众评价",
        "{invites} invites this month and only {unrated} unrated ({rate}); the median of {group_en} officers is "
        "{median} ({p}); citizens walk away at every window, so this few unrated invites looks like someone rating "
        "for them",
    ),
    "no_rating_drop": (
        "本月 {invites} 次邀请 {unrated} 次未评价（{rate}），此前 {history_months} 个月为 {history_rate}"
        "（{history_invites} 次邀请）（{p}）；同一窗口群众走开的比例通常稳定，骤降像是有人替群众评价",
        "{unrated} of {invites} invites unrated this month ({rate}) against {history_rate} over the previous "
        "{history_months} months ({history_invites} invites) ({p}); a window's walk-away rate is steady, so a sudden "
        "drop looks like someone rating for the citizens",
    ),
    "delay_band": (
        "{span_zh}{rated} 次评价中 {in_band} 次（{share}）在邀请后 {lo}–{hi} 秒按下，{group_zh}民警（按各自快慢换算）"
        "在该区间中位数 {base}（{p}）；群众按键快慢不一，集中在同一秒数像同一人的习惯动作",
        "{in_band} of {rated} ratings ({share}) came {lo}–{hi} s after the invite{span_en}; {group_en} officers, "
        "matched for speed, have a median of {base} there ({p}); citizens differ in speed, so ratings bunched at "
        "one delay look like one person's routine",
    ),
    "satisfied_response": (
        "回复率 {response}（{group_zh}中位数 {base_response}）而 {rated} 次评价中不满意仅 {unsatisfied} 次"
        "（{unsatisfied_share}），{group_zh}中位数 {base_unsatisfied}（{p}）；回复率高时不满意通常不会更少",
        "response rate {response} (median of {group_en} officers {base_response}) yet only {unsatisfied} of {rated} "
        "ratings unsatisfied ({unsatisfied_share}) against a median of {base_unsatisfied} ({p}); more replies "
        "do not usually mean fewer unsatisfied ones",
    ),
    "combined": (
        "{no_rating_zh}，且{span_zh} {share} 的评价在邀请后 {lo}–{hi} 秒按下（{group_zh}民警中位数 {base}），"
        "两项合计 {p}",
        "{no_rating_en}, and {share} of ratings came {lo}–{hi} s after the invite{span_en} ({group_en} officers' "
        "median {base}); together {p}",
    ),
    "not_enough_data": (
        "本月 {invites} 次邀请，不足 {min_invites} 次，数据不足，不作判断",
        "{invites} invites this month, fewer than {min_invites}: not enough data, no judgement",
    ),
}


def explain_with(texts: dict[str, tuple[str, str]], rule: str, detail: dict[str, Any], lang: str = "zh") -> str:
    """``rule``'s sentence from ``texts`` (zh, en templates) in ``lang``, filled with ``detail``; the bare
    template when ``detail`` does not fit it."""
    zh, en = texts.get(rule, (rule, rule))
    try:
        return (en if lang == "en" else zh).format(**detail)
    except (KeyError, IndexError, ValueError):
        return en if lang == "en" else zh


def explain(rule: str, detail: dict[str, Any], lang: str = "zh") -> str:
    return explain_with(EXPLAIN, rule, detail, lang)


GROUP_WORDS = {"unit": ("同单位", "the same unit's"), "bureau": ("全局", "the bureau's")}


@dataclasses.dataclass(frozen=True)
class Delays:
    """One officer's rating delays up to ``delay_max_s``, sorted, and their median (the officer's speed)."""

    sorted_ms: list[int]
    median_ms: float

    @classmethod
    def of(cls, delays_ms: Iterable[int], rules: OfficerFlagRules) -> Delays:
        top = rules.delay_max_s * 1000
        kept = sorted(d for d in delays_ms if 0 <= d < top)
        return cls(kept, statistics.median(kept) if kept else 0.0)

    def count(self, lo_ms: float, hi_ms: float) -> int:
        return bisect.bisect_left(self.sorted_ms, hi_ms) - bisect.bisect_left(self.sorted_ms, lo_ms)

    def quantile(self, q: float) -> float:
        return float(self.sorted_ms[min(len(self.sorted_ms) - 1, int(q * len(self.sorted_ms)))])

    def expected_in(self, other: Delays, lo_ms: float, hi_ms: float) -> int:
        """How many of ``other``'s ratings fall in this officer's band ``[lo_ms, hi_ms)`` placed among theirs:
        the larger count of two placements, by the medians alone and by the medians and spreads (a placement
        that stretches into the tail of a window with a sharp edge to its delays must not make the band
        look emptier than it is)."""
        r = other.median_ms / self.median_ms
        return max(
            other.count(lo_ms * r, hi_ms * r), other.count(self.place_in(other, lo_ms), self.place_in(other, hi_ms))
        )

    def place_in(self, other: Delays, d_ms: float) -> float:
        """``d_ms`` of this officer's delays placed among ``other``'s: the same median and the same spread of
        the quicker half (15th percentile to median) on a log scale.

        Windows differ in how quick their citizens are and in how much their citizens differ; the quicker half
        is what ratings filled in a few seconds after the invite (usually slower than most citizens) move least.
        """
        if d_ms <= 0 or self.median_ms <= 0 or other.median_ms <= 0:
            return 0.0
        mine = math.log(self.median_ms / max(1.0, self.quantile(0.15))) or 1.0
        theirs = math.log(other.median_ms / max(1.0, other.quantile(0.15))) or 1.0
        return other.median_ms * math.exp(math.log(d_ms / self.median_ms) / mine * theirs)


def _comparable(mine: Delays, others: Sequence[Delays]) -> list[Delays]:
    """The other officers whose delays a band of ``mine`` can be placed among (10 ratings or more), or none
    when ``mine`` has fewer than 10 or fewer than two others qualify."""
    usable = [o for o in others if len(o.sorted_ms) >= 10 and o.median_ms > 0]
    if len(mine.sorted_ms) < 10 or len(usable) < 2 or mine.median_ms <= 0:
        return []
    return usable


def _delay_test(
    mine: Delays,
    others: Sequence[Delays],
    rules: OfficerFlagRules,
    margin: float | None = None,
    memo: dict[tuple[int, int, int], list[Any]] | None = None,
) -> tuple[float, dict[str, Any]] | None:
    """The officer's densest narrow band against the other officers' shares in the same band, matched.

    Each other officer's band is the officer's placed among their delays (``Delays.place_in``: their
    citizens may simply be quicker or slower, or differ more among themselves); their shares in it give a
    beta baseline (median, robust spread between officers), and the officer's count a beta-binomial right
    tail, times the number of bands looked at up to the officer's 99th percentile delay (Bonferroni). The
    share must also exceed the baseline median by ``margin`` (default ``delay_margin_pct``, as a share).
    ``memo`` keeps each band's baseline and tail for another call on the same delays (another margin).
    """
    margin = rules.delay_margin_pct / 100 if margin is None else margin
    n = len(mine.sorted_ms)
    memo = {} if memo is None else memo
    key = (id(mine), id(others))
    others = _comparable(mine, others)
    if not others:
        return None
    width = rules.delay_band_s * 1000
    step = width / 2
    # the bands starting up to the officer's 99th percentile delay (beyond it no band holds a share worth a look)
    bands = max(1, min(int(2 * rules.delay_max_s / rules.delay_band_s) - 1, int(mine.quantile(0.99) / step) + 1))
    starts = sorted({int(d // step) + k for d in mine.sorted_ms for k in (-1, 0) if 0 <= int(d // step) + k < bands})
    best: tuple[float, dict[str, Any]] | None = None
    for start in starts:
        lo, hi = start * step, start * step + width
        k = mine.count(lo, hi)
        share = k / n
        if share < margin or (not margin and not k):
            continue
        seen = memo.setdefault((*key, start), [])
        if not seen:
            seen.append(fit_baseline([(mine.expected_in(o, lo, hi), len(o.sorted_ms)) for o in others]))
        base = seen[0]
        if base is None or share - base.median < margin or share <= base.median:
            continue
        if len(seen) == 1:
            seen.append(min(1.0, betabinom_sf(k, n, base.a, base.b) * bands))
        p = seen[1]
        if best is None or p < best[0]:
            best = (
                p,
                {
                    "rated": n,
                    "in_band": k,
                    "share": pct(share),
                    "base": pct(base.median),
                    "base_share": base.median,
                    "lo": f"{lo / 1000:g}",
                    "hi": f"{hi / 1000:g}",
                    "lo_ms": lo,
                    "hi_ms": hi,
                    "span_zh": "",
                    "span_en": "",
                },
            )
    return best


def _band_now(
    now: Delays, others_now: Sequence[Delays], lo: float, hi: float, margin: float
) -> tuple[float, int, int, float] | None:
    """This month's count in one given band ``[lo, hi)`` against the other officers' this month (placed
    among their delays as in ``_delay_test``): the beta-binomial right tail, no scan, so no Bonferroni;
    ``(p, in band, rated, baseline share)``, or None when the share is not above the baseline by ``margin``."""
    n = len(now.sorted_ms)
    others = _comparable(now, others_now)
    if not others:
        return None
    k = now.count(lo, hi)
    base = fit_baseline([(now.expected_in(o, lo, hi), len(o.sorted_ms)) for o in others])
    if base is None or k / n - base.median < margin or k / n <= base.median:
        return None
    return betabinom_sf(k, n, base.a, base.b), k, n, base.median


def _recurring(
    now: Delays,
    past: Delays,
    others_now: Sequence[Delays],
    others_past: Sequence[Delays],
    past_months: int,
    rules: OfficerFlagRules,
    margin: float,
    memo: dict[tuple[int, int, int], list[Any]] | None = None,
) -> tuple[float, dict[str, Any]] | None:
    """The band the previous months alone point at, and this month tested in that very band.

    The band must be a peak of the officer's own delays (this month and the previous ones together hold more
    in it than in either band beside it).

    The band is found over the previous months (a scan, Bonferroni); this month's count in it is then one
    test (its data played no part in choosing the band); Fisher's method joins the two. A habit keeps its
    delay month after month, while an honest window's citizens do not crowd the same narrow band again.
    """
    before = _delay_test(past, others_past, rules, 0.0, memo)
    if before is None:
        return None
    d = before[1]
    lo, hi = d["lo_ms"], d["hi_ms"]
    width = hi - lo
    # a habit is a narrow peak of the officer's own delays, over the months together: more in the band than in
    # either band beside it (a window whose citizens are simply slower, or whose delays end at a sharp edge,
    # differs from the others month after month too, but has no peak of its own there)
    inside = past.count(lo, hi) + now.count(lo, hi)
    beside = max(
        past.count(lo - width, lo) + now.count(lo - width, lo), past.count(hi, hi + width) + now.count(hi, hi + width)
    )
    if inside <= beside:
        return None
    found = _band_now(now, others_now, lo, hi, margin)
    if found is None:
        return None
    p_now, k, n, base = found
    return fisher([before[0], p_now]), {
        **d,
        "rated": n,
        "in_band": k,
        "share": pct(k / n),
        "base": pct(base),
        "base_share": base,
        "span_zh": f"此前 {past_months} 个月同一区间已有 {d['share']}，本月 ",
        "span_en": f" this month, the band where {d['share']} of ratings came over the previous {past_months} months",
    }


def _delay_habit(
    now: Delays,
    pooled: Delays,
    others_now: Sequence[Delays],
    others_pooled: Sequence[Delays],
    past_months: int,
    rules: OfficerFlagRules,
    margin: float | None = None,
    past: Delays | None = None,
    others_past: Sequence[Delays] = (),
    memo: dict[tuple[int, int, int], list[Any]] | None = None,
) -> tuple[float, dict[str, Any]] | None:
    """The delay band of this month alone, of this month with the previous ones (a routine recurs month
    after month; an officer filling in from the first month has no clean history of their own, but the
    habit shows sooner over more months), or of the previous months' band recurring this month
    (``_recurring``), whichever is strongest, times the number of readings (Bonferroni).

    The months together count only when this month's own share in their band is also above the baseline's
    by ``delay_margin_pct``: a past habit does not flag a month without it.
    """
    margin = rules.delay_margin_pct / 100 if margin is None else margin
    alone = _delay_test(now, others_now, rules, margin, memo)
    if not past_months or len(pooled.sorted_ms) == len(now.sorted_ms):
        return alone
    recur = None if past is None else _recurring(now, past, others_now, others_past, past_months, rules, margin, memo)
    together = _delay_test(pooled, others_pooled, rules, margin, memo)
    if together is not None:
        d = together[1]
        k, n = now.count(d["lo_ms"], d["hi_ms"]), len(now.sorted_ms)
        if not n or k / n - d["base_share"] < margin or k / n <= d["base_share"]:
            together = None
        else:
            together = (
                together[0],
                {
                    **d,
                    "span_zh": f"本月及此前 {past_months} 个月内（本月 {n} 次中 {k} 次）",
                    "span_en": f" over this month and the previous {past_months} (this month {k} of {n})",
                },
            )
    readings = (alone, together) if past is None else (alone, together, recur)
    found = [x for x in readings if x is not None]
    if not found:
        return None
    p, detail = min(found, key=lambda x: x[0])
    return min(1.0, len(readings) * p), detail


def _combined(
    p_low: float | None,
    low_detail: dict[str, Any],
    drop: tuple[float, dict[str, Any]] | None,
    p_delay: float,
    delay_detail: dict[str, Any],
) -> tuple[float, dict[str, Any]] | None:
    """Fisher's method over the no-rating evidence and the delay band, each maybe short of a flag alone.

    The two no-rating tests read the same count, so only the smaller counts, doubled (Bonferroni);
    the delay band reads the ratings' timing, independent of how many were rated.
    """
    options = []
    if p_low is not None:
        options.append(
            (
                p_low,
                "未评价率 {rate}（{group_zh}民警中位数 {median}）偏低".format(**low_detail),
                "no-rating rate {rate} (median of {group_en} officers {median}) is low".format(**low_detail),
            )
        )
    if drop is not None:
        d = drop[1]
        options.append(
            (
                drop[0],
                "未评价率 {rate}，此前 {history_months} 个月为 {history_rate}".format(**d),
                "no-rating rate {rate} against {history_rate} over the previous {history_months} months".format(**d),
            )
        )
    if not options:
        return None
    p_rate, zh, en = min(options)
    return fisher([min(1.0, p_rate * len(options)), p_delay]), {**delay_detail, "no_rating_zh": zh, "no_rating_en": en}


HISTORY_MONTHS = 3  # months before this one that make an officer's own history
HISTORY_WEIGHT = 600  # at most this many past invites' worth of certainty: windows drift a little between months


def _drop_test(
    m: OfficerMonth, past: tuple[int, int, int], rules: OfficerFlagRules, margin: float | None = None
) -> tuple[float, dict[str, Any]] | None:
    """This month's no-rating rate against the officer's own previous months ``(unrated, invites, months)``."""
    unrated, invites, n_months = past
    if invites < rules.min_invites:
        return None
    rate, before = m.unrated / m.invites, unrated / invites
    margin = rules.no_rating_margin_pct / 100 if margin is None else margin
    if before - rate < margin or before <= rate:
        return None
    weight = min(invites, HISTORY_WEIGHT) / invites
    p = betabinom_cdf(m.unrated, m.invites, unrated * weight + 1, (invites - unrated) * weight + 1)
    detail = {
        "invites": m.invites,
        "unrated": m.unrated,
        "rate": pct(rate),
        "history_rate": pct(before),
        "history_invites": invites,
        "history_months": n_months,
    }
    return p, detail


def check_month(
    months: Sequence[OfficerMonth],
    rules: OfficerFlagRules,
    history: Mapping[str, tuple[int, int, int]] | None = None,
    past_delays: Mapping[str, tuple[int, Sequence[int]]] | None = None,
) -> list[OfficerCheck]:
    """Every officer-month's check, flags explained; order of ``months`` kept.

    ``history``: officer → (unrated, invites, months) over the previous months, for ``no_rating_drop``.
    ``past_delays``: officer → (months, delays) over the previous months, for ``delay_band``.
    """
    checks = [
        OfficerCheck(
            m.officer_id, m.unit_id, "tested" if m.invites >= rules.min_invites else "not_enough_data", m.invites
        )
        for m in months
    ]
    tested = [i for i, c in enumerate(checks) if c.status == "tested"]
    for c in checks:
        if c.status == "not_enough_data":
            detail = {"invites": c.invites, "min_invites": rules.min_invites}
            c.note = {
                "explain_zh": explain("not_enough_data", detail, "zh"),
                "explain_en": explain("not_enough_data", detail, "en"),
            }
    by_unit: dict[str, list[int]] = defaultdict(list)
    for i in tested:
        by_unit[months[i].unit_id].append(i)
    delays = {i: Delays.of(months[i].delays_ms, rules) for i in tested}
    past_delays = past_delays or {}
    pooled = {
        i: Delays.of([*months[i].delays_ms, *past_delays[months[i].officer_id][1]], rules)
        if months[i].officer_id in past_delays
        else delays[i]
        for i in tested
    }
    past_only = {
        i: Delays.of(past_delays[months[i].officer_id][1], rules) for i in tested if months[i].officer_id in past_delays
    }
    candidates: dict[str, list[tuple[int, float, dict[str, Any]]]] = {r: [] for r in RULES}
    bureau = fit_baseline([(months[j].unrated, months[j].invites) for j in tested])
    bureau_spread = None if bureau is None else bureau.a + bureau.b  # beta concentration: smaller = wider
    bureau_sat = fit_baseline([(months[j].rated - months[j].satisfied, months[j].rated) for j in tested])
    for i in tested:
        m = months[i]
        own_unit = by_unit[m.unit_id]
        if len(own_unit) >= rules.min_officers:
            members, group = own_unit, "unit"
        else:
            members, group = tested, "bureau"
        others = [j for j in members if j != i]
        gz, ge = GROUP_WORDS[group]
        words = {"group_zh": gz, "group_en": ge, "group": group}
        p_no_rating: float | None = None
        no_rating_detail: dict[str, Any] = {}
        low_side = False
        base = fit_baseline([(months[j].unrated, months[j].invites) for j in others])
        if base is not None and bureau_spread is not None and group == "unit":
            # a unit's few officers give its centre; its spread is at least the bureau's
            total = min(base.a + base.b, bureau_spread)
            base = Baseline(base.median, base.median * total, (1 - base.median) * total)
        if base is not None:
            rate = m.unrated / m.invites
            p_no_rating = betabinom_cdf(m.unrated, m.invites, base.a, base.b)
            no_rating_detail = {
                **words,
                "invites": m.invites,
                "unrated": m.unrated,
                "rate": pct(rate),
                "median": pct(base.median),
            }
            checks[i].p["no_rating_low"] = p_no_rating
            low_side = rate < base.median
            if base.median - rate >= rules.no_rating_margin_pct / 100:
                candidates["no_rating_low"].append((i, p_no_rating, no_rating_detail))
        drop = _drop_test(m, history[m.officer_id], rules) if history and m.officer_id in history else None
        if drop is not None:
            checks[i].p["no_rating_drop"] = drop[0]
            candidates["no_rating_drop"].append((i, drop[0], drop[1]))
        habit = functools.partial(
            _delay_habit,
            delays[i],
            pooled[i],
            [delays[j] for j in others],
            [pooled[j] for j in others],
            past_delays.get(m.officer_id, (0, ()))[0],
            rules,
            past=past_only.get(i),
            others_past=[past_only[j] for j in others if j in past_only],
            memo={},  # the two readings below (at the margin and at none) scan the same bands once
        )
        delay = habit()
        if delay is not None:
            checks[i].p["delay_band"] = delay[0]
            candidates["delay_band"].append((i, delay[0], {**words, **delay[1]}))
        # for the combined evidence every hint counts, however short of its own rule's margin
        hint_drop = _drop_test(m, history[m.officer_id], rules, 0.0) if history and m.officer_id in history else None
        hint_delay = habit(0.0)
        sat = fit_baseline([(months[j].rated - months[j].satisfied, months[j].rated) for j in others])
        if sat is not None and bureau_sat is not None and group == "unit":
            total = min(sat.a + sat.b, bureau_sat.a + bureau_sat.b)
            sat = Baseline(sat.median, sat.median * total, (1 - sat.median) * total)
        resp = [1 - months[j].unrated / months[j].invites for j in others]
        if sat is not None and m.rated and resp:
            response = 1 - m.unrated / m.invites
            uns = m.rated - m.satisfied
            p_sat = betabinom_cdf(uns, m.rated, sat.a, sat.b)
            checks[i].p["satisfied_response"] = p_sat
            base_resp = statistics.median(resp)
            if response >= base_resp and sat.median - uns / m.rated >= rules.satisfied_margin_pct / 100:
                candidates["satisfied_response"].append(
                    (
                        i,
                        p_sat,
                        {
                            **words,
                            "response": pct(response),
                            "base_response": pct(base_resp),
                            "rated": m.rated,
                            "unsatisfied": uns,
                            "unsatisfied_share": pct(uns / m.rated),
                            "base_unsatisfied": pct(sat.median),
                        },
                    )
                )
        if hint_delay is not None:
            combined = _combined(
                p_no_rating if low_side else None,
                no_rating_detail,
                hint_drop,
                hint_delay[0],
                {**words, **hint_delay[1]},
            )
            if combined is not None:
                checks[i].p["combined"] = combined[0]
                candidates["combined"].append((i, *combined))
    alpha = rules.false_discovery_pct / 100
    m_tested = len(tested)
    for rule in RULES:
        # BH over every officer-month tested (a missing p-value is a p of 1): the number compared is the bureau's
        found = candidates[rule]
        ps = [p for _, p, _ in found] + [1.0] * (m_tested - len(found))
        qs = benjamini_hochberg(ps)[: len(found)] if ps else []
        for (i, p, detail), q in zip(found, qs, strict=True):
            if q > alpha:
                continue
            if rule == "combined" and any(f["rule"] != "satisfied_response" for f in checks[i].flags):
                continue  # one rule already says it; the combined evidence adds nothing to read
            d = {**detail, "p": p_text(p), "p_value": p, "q_value": q}
            checks[i].flags.append(
                {
                    "rule": rule,
                    "p": p,
                    "q": q,
                    "explain_zh": explain(rule, d, "zh"),
                    "explain_en": explain(rule, d, "en"),
                }
            )
    return checks


# -- from the store -------------------------------------------------------------------------


async def month_officers(db: Database, month: str, policy: Policy) -> list[OfficerMonth]:
    """Each signed-in officer's month: invites and unrated from the rollups, ratings and delays from the events."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for officer, kind, n in await db.fetch(
        "SELECT officer_id, kind, SUM(n) FROM rollups WHERE month = ? AND kind IN ('invite', 'unrated')"
        " AND officer_id <> '' GROUP BY officer_id, kind",
        (month,),
    ):
        counts[officer][0 if kind == "invite" else 1] += int(n)
    units = {r[0]: r[1] for r in await db.fetch("SELECT id, unit_id FROM officers")}
    rated: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    delays: dict[str, list[int]] = defaultdict(list)
    for officer, level, scale, delay, window_unit, _month in await _ratings(db, month, month, policy):
        r = rated[officer]
        r[0] += 1
        if scale in policy.satisfied and level in policy.satisfied[scale]:
            r[1] += 1
        if delay is not None:
            delays[officer].append(int(delay))
        units.setdefault(officer, window_unit)
    out = []
    for officer in sorted(set(counts) | set(rated)):
        invites, unrated = counts.get(officer, [0, 0])
        n_rated, n_sat = rated.get(officer, [0, 0])
        out.append(
            OfficerMonth(
                officer, units.get(officer, ""), invites, unrated, n_rated, n_sat, tuple(delays.get(officer, ()))
            )
        )
    return out


async def _ratings(db: Database, first: str, last: str, policy: Policy) -> Sequence[Sequence[Any]]:
    """Signed-in officers' counted presses of months ``first``..``last``: officer, level, scale,
    invite→press delay (ms, None without its invite), the window's unit, month."""
    kinds = sorted(policy.counted)
    return await db.fetch(
        "SELECT e.officer_id, e.level, e.scale, e.press_ms - i.opened_ms, COALESCE(w.unit_id, ''), e.month"
        " FROM events e"
        " LEFT JOIN invites i ON i.device_id = e.device_id AND i.boot = e.boot AND i.invite_no = e.invite_no"
        " LEFT JOIN windows w ON w.id = e.window_id"
        " WHERE e.type = 'press' AND e.month >= ? AND e.month <= ? AND e.officer_id <> ''"
        f" AND e.kind IN ({','.join('?' * len(kinds))})",
        [first, last, *kinds],
    )


async def officer_past_delays(
    db: Database, month: str, policy: Policy, n: int = HISTORY_MONTHS
) -> dict[str, tuple[int, list[int]]]:
    """Officer → (months, invite→press delays) over the ``n`` months before ``month``, flagged months
    included: for ``delay_band`` a routine that recurs is the point, and this month must show it too."""
    past = previous_months(month, n)
    out: dict[str, tuple[set[str], list[int]]] = defaultdict(lambda: (set(), []))
    for officer, _level, _scale, delay, _unit, mon in await _ratings(db, past[0], past[-1], policy):
        if delay is not None:
            out[officer][0].add(mon)
            out[officer][1].append(int(delay))
    return {o: (len(months), delays) for o, (months, delays) in out.items()}


def previous_months(month: str, n: int) -> list[str]:
    """The ``n`` months before ``month`` (``YYYY-MM``), oldest first."""
    year, mon = parse_month(month)
    out = []
    for _ in range(n):
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
        out.append(f"{year:04d}-{mon:02d}")
    return out[::-1]


async def officer_history(db: Database, month: str, n: int = HISTORY_MONTHS) -> dict[str, tuple[int, int, int]]:
    """Officer → (unrated, invites, months) over the ``n`` months before ``month``, from the rollups.

    A month recorded as flagged (``evalbox flags check``) is left out unless a review explained it: a month
    of filling in is no baseline for the next.
    """
    past = previous_months(month, n)
    flagged = {
        (r[0], r[1])
        for r in await db.fetch(
            "SELECT f.officer_id, f.month FROM officer_flags f LEFT JOIN officer_flag_reviews v"
            " ON v.officer_id = f.officer_id AND v.month = f.month"
            " WHERE f.month >= ? AND f.month <= ? AND (v.decision IS NULL OR v.decision <> 'explained')",
            (past[0], past[-1]),
        )
    }
    out: dict[str, list[Any]] = defaultdict(lambda: [0, 0, set()])
    for officer, mon, kind, total in await db.fetch(
        "SELECT officer_id, month, kind, SUM(n) FROM rollups WHERE month >= ? AND month <= ?"
        " AND kind IN ('invite', 'unrated') AND officer_id <> '' GROUP BY officer_id, month, kind",
        (past[0], past[-1]),
    ):
        if (officer, mon) in flagged:
            continue
        h = out[officer]
        if kind == "invite":
            h[1] += int(total)
            h[2].add(mon)
        else:
            h[0] += int(total)
    return {o: (h[0], h[1], len(h[2])) for o, h in out.items()}


REVIEW_DECISIONS = ("confirmed", "explained")
DECISION_WORDS = {"confirmed": "确认 confirmed", "explained": "已说明 explained"}
# A review's state in words (zh, en), as the notice and the ledger show it.
REVIEW_WORDS = {
    "confirmed": ("复核：确认", "Review: confirmed"),
    "explained": ("复核：已说明", "Review: explained"),
    "unreviewed": ("待复核", "Awaiting review"),
}
RULE_WORDS = {
    "no_rating_low": ("未评价率异常偏低", "No-rating rate far below the unit's"),
    "no_rating_drop": ("未评价率骤降", "No-rating rate dropped"),
    "delay_band": ("评价时间过于集中", "Ratings bunched at one delay"),
    "satisfied_response": ("高回复率下满意异常", "Satisfied share unlikely for the response rate"),
    "combined": ("综合迹象", "Combined evidence"),
}


async def reviews(db: Database, month: str) -> dict[str, dict[str, Any]]:
    """The month's reviews by officer: decision, note, by, at (Unix ms)."""
    return {
        r["officer_id"]: {
            "decision": r["decision"],
            "note": r["note"],
            "by": r["reviewed_by"],
            "at_ms": int(r["reviewed_ms"]),
        }
        for r in (
            await db.fetch(
                "SELECT officer_id, decision, note, reviewed_by, reviewed_ms FROM officer_flag_reviews WHERE month = ?",
                (month,),
            )
        ).dicts()
    }


async def month_checks(db: Database, month: str, policy: Policy) -> dict[str, OfficerCheck]:
    """The month's officer checks from the store (SQLite or PostgreSQL), by officer, with any review."""
    kept = await pruned_checks(db, month)
    if kept is not None:  # the raw events are gone: the checks taken when they were pruned
        found = {o: OfficerCheck(**c) for o, c in kept.items()}
    else:
        months = await month_officers(db, month, policy)
        history = await officer_history(db, month)
        past_delays = await officer_past_delays(db, month, policy)
        found = {c.officer_id: c for c in check_month(months, policy.officer_flags, history, past_delays)}
    for officer, review in (await reviews(db, month)).items():
        if officer in found:
            found[officer].review = review
    return found


async def pruned_checks(db: Database, month: str) -> dict[str, dict[str, Any]] | None:
    """The officer checks kept for a month whose raw events retention pruned (``OfficerCheck`` fields), or None."""
    seal = await month_seal(db, month)
    if seal is None or seal.get("pruned_ms") is None or seal.get("officer_checks") is None:
        return None
    kept: dict[str, dict[str, Any]] = json.loads(seal["officer_checks"])
    return kept


def checks_to_keep(found: dict[str, OfficerCheck]) -> str:
    """The checks as ``pruned_checks`` reads them back (reviews are kept apart and joined on reading)."""
    return json.dumps(
        {o: {**dataclasses.asdict(c), "review": None} for o, c in sorted(found.items())},
        ensure_ascii=False,
        sort_keys=True,
    )


async def record_month(db: Database, month: str, policy: Policy, now_ms: int) -> dict[str, OfficerCheck]:
    """Check ``month`` and record its flags (the month's earlier flags replaced; reviews kept)."""
    found = await month_checks(db, month, policy)
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM officer_flags WHERE month = ?", (month,))
        for c in found.values():
            for f in c.flags:
                await tx.execute(
                    "INSERT INTO officer_flags (officer_id, month, rule, unit_id, detail, detected_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (c.officer_id, month, f["rule"], c.unit_id, json.dumps(f, ensure_ascii=False), now_ms),
                )
    return found


async def review_month(db: Database, officer: str, month: str, decision: str, note: str, by: str, now_ms: int) -> None:
    """A supervisor's review of an officer-month's flags; ``UsageError`` when there is nothing to review."""
    if decision not in REVIEW_DECISIONS:
        raise UsageError(f"--decision {decision!r}: one of {', '.join(REVIEW_DECISIONS)}")
    if not note.strip():
        raise UsageError("--note: say what was found (复核说明)")
    parse_month(month)
    row = await db.fetchone(
        "SELECT COUNT(*) AS n FROM officer_flags WHERE officer_id = ? AND month = ?", (officer, month)
    )
    if not row or not int(row["n"]):
        raise UsageError(
            f"officer {officer!r} has no recorded flags for {month}; run `evalbox flags check --month {month}` first"
        )
    async with db.transaction() as tx:
        old = await tx.fetchone(
            "SELECT decision, reviewed_by, reviewed_ms FROM officer_flag_reviews WHERE officer_id = ? AND month = ?",
            (officer, month),
        )
        await tx.execute("DELETE FROM officer_flag_reviews WHERE officer_id = ? AND month = ?", (officer, month))
        await tx.execute(
            "INSERT INTO officer_flag_reviews (officer_id, month, decision, note, reviewed_by, reviewed_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (officer, month, decision, note.strip(), by, now_ms),
        )
        await append_audit(
            tx,
            actor=by,
            action="flag.review",
            subject=f"flag_review:{officer}/{month}",
            before=None if old is None else dict(zip(REVIEW_FIELDS, old, strict=True)),
            after={
                "decision": decision,
                "reviewed_by": by,
                "reviewed_ms": now_ms,
                "note_sha256": sha256_text(note.strip()),
            },
            at_ms=now_ms,
        )
