"""The glossary: one name, in Simplified Chinese and English, for each thing a supervisor reads.

The CLI's table, every export (CSV, JSON labels, XLSX, the printable 月通报)
and the web page take these words from here (``term``), so the same count
or judgement is never called two things. ``VARIANTS`` lists the names that
were used for the same things before and must not come back (a test renders
every format and the web page and looks for them).

Two things that sound alike are different and are named apart:

- **异常按键 / Misuse** — presses the box or the collector's rules flag as
  they arrive: a repeated press, or one closer than the minimum interval
  after the last. A rollup kind; counted as a rating only if the policy's
  ``count_misuse`` says so.
- **可疑评价 / Anomalies** — patterns the detection page points out for a
  supervisor to look into (bursts, a press seconds after every invite, a
  regular routine, presses outside office hours, nobody signed in …). They
  change no figure; a supervisor decides.

Bands: a month's rate reaching the target is **达标 / Met**; below the
target but not the floor **未达标 / Below target**; below the floor
(**底线**, the line under which the sanction applies: one 打招呼 and the
penalty points) **低于底线 / Below floor**. The floor is never called 下限:
that word names the lower end of the confidence interval (**置信下限**).
"""

from __future__ import annotations

TERMS: dict[str, tuple[str, str]] = {
    # counts
    "rated": ("参评数", "Rated"),
    "satisfied": ("满意数", "Satisfied"),
    "unsatisfied": ("不满意数", "Unsatisfied"),
    "bad": ("差评", "Bad reviews"),
    "invites": ("邀评数", "Invites"),
    "unrated": ("未评价", "Unrated"),
    "unsolicited": ("无邀请评价", "Unsolicited"),
    "misuse": ("异常按键", "Misuse"),
    "anomalies": ("可疑评价", "Anomalies"),
    # rates and the judgement
    "rate": ("满意率", "Satisfaction rate"),
    "no_rating_rate": ("未评价率", "No-rating rate"),
    "wilson_low": ("置信下限", "95% CI low"),
    "wilson_high": ("置信上限", "95% CI high"),
    "band": ("档次", "Band"),
    "met": ("达标", "Met"),
    "below_target": ("未达标", "Below target"),
    "below_floor": ("低于底线", "Below floor"),
    "no_ratings": ("无评价", "No ratings"),
    "target": ("目标", "Target"),
    "floor": ("底线", "Floor"),
    "rank": ("排名", "Rank"),
    "standing": ("评定", "Standing"),
    "penalty_points": ("扣分", "Penalty points"),
    # sanctions
    "reminder": ("打招呼", "Reminder (打招呼)"),
    "talk": ("谈话", "Talk (谈话)"),
    "warning": ("告诫", "Warning (告诫)"),
    "complaint": ("有效投诉", "Valid complaint"),
    # closing a month
    "closed": ("已关账", "Closed"),
    "open": ("未关账", "Open"),
    "late_events": ("迟到数据", "Late events"),
    "revision": ("修正(关账后的变化, 未并入)", "Revision (changes since the close, not merged)"),
    "revised_rate": ("修正满意率", "Revised rate"),
    "revised_band": ("修正档次", "Revised band"),
    # the audit trail and retention
    "digest": ("月度摘要", "Month digest"),
    "pruned": ("原始数据已过保存期删除, 按汇总数出表", "Raw events pruned under retention; figures from the rollups"),
    "audit_trail": ("审计日志", "Audit trail"),
}

# Names once used for the same things, never to be shown again (zh and en).
VARIANTS: dict[str, tuple[str, ...]] = {
    "rated": ("评价数",),
    "band": ("结果",),
    "below_floor": ("低于下限",),
    "anomalies": ("异常评价",),
    "invites": ("邀请数",),
    "unsolicited": ("未邀请按键",),
    "wilson_low": ("区间下限",),
    "wilson_high": ("区间上限",),
    "closed": ("月结",),
    "late_events": ("Late arrivals",),
}


def term(key: str, lang: str) -> str:
    """The glossary's word for ``key`` in ``lang`` (``zh`` or ``en``); ``KeyError`` for a word it lacks."""
    zh, en = TERMS[key]
    return en if lang == "en" else zh


# The words on a box's keys, per scale (level 1 is the best, level n the worst): what a press said.
LEVEL_NAMES: dict[int, tuple[tuple[str, str], ...]] = {
    2: (("满意", "Satisfied"), ("不满意", "Unsatisfied")),
    3: (("满意", "Satisfied"), ("基本满意", "Fairly satisfied"), ("不满意", "Unsatisfied")),
    4: (
        ("非常满意", "Very satisfied"),
        ("满意", "Satisfied"),
        ("不满意", "Unsatisfied"),
        ("非常不满意", "Very unsatisfied"),
    ),
    5: (
        ("非常满意", "Very satisfied"),
        ("满意", "Satisfied"),
        ("基本满意", "Fairly satisfied"),
        ("不满意", "Unsatisfied"),
        ("非常不满意", "Very unsatisfied"),
    ),
}


def level_name(level: int, scale: int, lang: str) -> str:
    """The key's word for ``level`` on a ``scale``-level box (``"level/scale"`` for a pair no box has)."""
    names = LEVEL_NAMES.get(scale, ())
    if not 1 <= level <= len(names):
        return f"{level}/{scale}"
    zh, en = names[level - 1]
    return en if lang == "en" else zh
