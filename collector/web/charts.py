"""Inline SVG charts and the heat-map colours (no scripts, no external services)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from markupsafe import Markup, escape

from collector.report import Line, Policy, pct_text


def _axis_floor(floor: Fraction) -> int:
    """Where the y axis starts: 80% unless the policy's floor is lower (then 10 points below it)."""
    return 80 if floor >= 85 else max(0, int(floor) // 10 * 10 - 10)


def trend_svg(points: Sequence[tuple[str, Line | None]], policy: Policy, width: int = 640, height: int = 200) -> Markup:
    """The monthly rates with the policy's floor and target drawn; months without ratings are gaps.

    A point's title is the report's rate (two decimals, cut) and its count; its class the report's band.
    """
    left, right, top, bottom = 44, 12, 12, 28
    w, h = width - left - right, height - top - bottom
    lo = _axis_floor(policy.floor)
    step = 5 if 100 - lo <= 25 else 10 if 100 - lo <= 50 else 20
    n = max(len(points), 1)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def y(pct: float) -> float:
        return top + h * (100 - max(lo, pct)) / (100 - lo)

    parts = [
        f'<svg class="trend" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for pct in range(lo, 101, step):
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(pct):.1f}" y2="{y(pct):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y(pct) + 4:.1f}" class="axis" text-anchor="end">{pct}%</text>'
        )
    for name, value in (("floor", policy.floor), ("target", policy.target)):
        text = f"{float(value):g}"
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(float(value)):.1f}" y2="{y(float(value)):.1f}" '
            f'class="{name}" data-pct="{text}"><title>{name} {text}%</title></line>'
        )
    path: list[str] = []
    for i, (month, line) in enumerate(points):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" class="axis" text-anchor="middle">{month[2:]}</text>')
        if line is None or line.rate is None:
            path.append("")
            continue
        rate = float(line.rate * 100)
        path.append(f"{x(i):.1f},{y(rate):.1f}")
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(rate):.1f}" r="4" class="pt {line.band}" data-month="{month}">'
            f"<title>{escape(month)}: {pct_text(line.rate)}% ({line.satisfied}/{line.rated})</title></circle>"
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


def heat_colour(rated: int, bad: int, peak: int) -> str:
    """Background of one heat-map cell: blue by volume, red when it holds bad ratings."""
    if rated == 0:
        return "#f4f6f8"
    strength = 0.15 + 0.85 * rated / max(peak, 1)
    if bad:
        return f"rgba(200, 40, 40, {min(1.0, 0.35 + 0.65 * bad / rated):.2f})"
    return f"rgba(30, 90, 170, {strength:.2f})"
