"""Inline SVG charts and the heat-map colours (no scripts, no external services)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from collector.web.data import OfficerMonth


def trend_svg(points: Sequence[OfficerMonth], floor: int, width: int = 640, height: int = 200) -> Markup:
    """A line of monthly rates (0–100%, y from 80%) with the floor drawn; months without ratings are gaps."""
    left, right, top, bottom = 44, 12, 12, 28
    w, h = width - left - right, height - top - bottom
    lo = 80.0
    n = max(len(points), 1)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def y(pct: float) -> float:
        return top + h * (100 - max(lo, pct)) / (100 - lo)

    parts = [
        f'<svg class="trend" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for pct in (80, 85, 90, 95, 100):
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(pct):.1f}" y2="{y(pct):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y(pct) + 4:.1f}" class="axis" text-anchor="end">{pct}%</text>'
        )
    parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(floor):.1f}" y2="{y(floor):.1f}" class="floor"/>')
    path: list[str] = []
    for i, m in enumerate(points):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" class="axis" text-anchor="middle">{m.month[2:]}</text>')
        if m.rated == 0:
            path.append("")
            continue
        rate = 100 * m.satisfied / m.rated
        path.append(f"{x(i):.1f},{y(rate):.1f}")
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(rate):.1f}" r="4" class="pt {m.band}">'
            f"<title>{escape(m.month)}: {escape(m.rate_percent)} ({m.satisfied}/{m.rated})</title></circle>"
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
