"""Inline SVG charts and the heat-map colours (no scripts, no external services)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from markupsafe import Markup, escape

from collector.report import Line, Policy, pct_text
from collector.report.glossary import term


def _axis_floor(floor: Fraction, lowest: float | None = None) -> int:
    """Where the y axis starts: 80%, or 10 points below a lower policy floor, or lower still to show every rate.

    A rate is never drawn off its value, nor on the axis itself: 74.5% and 80% put it at 70%, 3% at 0%.
    """
    lo = 80 if floor >= 85 else max(0, int(floor) // 10 * 10 - 10)
    if lowest is not None and lowest < lo + 2:
        lo = max(0, math.floor((lowest - 2) / 10) * 10)  # two points of room under the lowest
    return lo


def trend_svg(
    points: Sequence[tuple[str, Line | None]],
    policy: Policy,
    width: int = 640,
    height: int = 200,
    *,
    lang: str = "zh",
    label_every: int = 1,
    variant: str = "wide",
) -> Markup:
    """The monthly rates with the policy's floor and target drawn; months without ratings are gaps.

    A point's title names the report's rate (two decimals, cut) and its counts; its class is the report's band.
    ``label_every`` months get a label on the x axis (the last always); ``variant`` is a class for the page's CSS.
    """
    left, right, top, bottom = 44, 20, 12, 28
    w, h = width - left - right, height - top - bottom
    rates = [float(ln.rate * 100) for _, ln in points if ln is not None and ln.rate is not None]
    lo = _axis_floor(policy.floor, min(rates, default=None))
    step = 5 if 100 - lo <= 25 else 10 if 100 - lo <= 50 else 20
    n = max(len(points), 1)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def y(pct: float) -> float:
        return top + h * (100 - pct) / (100 - lo)

    parts = [
        f'<svg class="trend {variant}" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for pct in range(lo, 101, step):
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(pct):.1f}" y2="{y(pct):.1f}" class="grid" data-pct="{pct}"/>'
            f'<text x="{left - 6}" y="{y(pct) + 4:.1f}" class="axis" text-anchor="end">{pct}%</text>'
        )
    for name, value in (("floor", policy.floor), ("target", policy.target)):
        text = f"{float(value):g}"
        if float(value) < lo:
            continue
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(float(value)):.1f}" y2="{y(float(value)):.1f}" '
            f'class="{name}" data-pct="{text}"><title>{escape(term(name, lang))} {text}%</title></line>'
        )
    path: list[str] = []
    for i, (month, line) in enumerate(points):
        if (n - 1 - i) % label_every == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" class="axis" text-anchor="middle">{month[2:]}</text>')
        if line is None or line.rate is None:
            path.append("")
            continue
        rate = float(line.rate * 100)
        path.append(f"{x(i):.1f},{y(rate):.1f}")
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(rate):.1f}" r="4" class="pt {line.band}" data-month="{month}" '
            f'data-rate="{rate:g}">'
            f"<title>{escape(month)} · {escape(term('rate', lang))} {pct_text(line.rate)}% · "
            f"{escape(term('satisfied', lang))} {line.satisfied} · {escape(term('rated', lang))} {line.rated} · "
            f"{escape(term(line.band, lang))}</title></circle>"
        )
    segment: list[str] = []
    for p in [*path, ""]:
        if p:
            segment.append(p)
        elif segment:
            parts.insert(-1, f'<polyline points="{" ".join(segment)}" class="line"/>')
            segment = []
    parts.append("</svg>")
    return Markup("".join(parts))


def heat_hours(grid: Sequence[Sequence[tuple[int, int]]], opening: tuple[int, int] = (8, 17)) -> list[int]:
    """The hours a heat map shows: the office day (08–17) widened to every hour that holds a rating.

    Twenty-four empty night columns would only make the map too wide for a phone.
    """
    used = [h for row in grid for h, (rated, _) in enumerate(row) if rated]
    return list(range(min([opening[0], *used]), max([opening[1], *used]) + 1))


def heat_colour(rated: int, bad: int, peak: int) -> str:
    """Background of one heat-map cell: blue, darker for more ratings; red when it holds bad ratings, darker for
    a larger share of bad ones; light grey for none (the caption under the map says so)."""
    if rated == 0:
        return "#f4f6f8"
    strength = 0.15 + 0.85 * rated / max(peak, 1)
    if bad:
        return f"rgba(200, 40, 40, {min(1.0, 0.35 + 0.65 * bad / rated):.2f})"
    return f"rgba(30, 90, 170, {strength:.2f})"
