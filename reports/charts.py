"""The daily cost burn as an inline SVG chart, drawn on the server (no script, no chart library).

Bars: each day's cost (labor + expenses) on the left scale; line: the running total on the
right scale. The SVG has a title and a description for screen readers, and the page puts the
same figures in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 72, 16, 36


def money(amount: Decimal | float) -> str:
    return f"${amount:,.0f}"


def _scale(top: Decimal) -> Decimal:
    """A round number at or above `top` for the axis (1, 2, 2.5 or 5 × a power of ten)."""
    if top <= 0:
        return Decimal(1)
    power = Decimal(10) ** (len(str(int(top))) - 1)
    for step in (1, 2, Decimal("2.5"), 5, 10):
        if top <= power * step:
            return power * step
    return power * 10


def burn_chart(
    days: Sequence[tuple[date, Decimal, Decimal, Decimal, Decimal]], *, ident: str = "burn"
) -> SafeString:
    """`days`: (date, labor, expenses, day total, cumulative) rows, in date order."""
    if not days:
        return SafeString("")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    day_top = _scale(max(row[3] for row in days))
    run_top = _scale(days[-1][4])
    step = plot_w / len(days)
    bar_w = max(1.0, step * 0.7)
    parts = []
    for i, (day, _labor, _spent, total, _running) in enumerate(days):
        h = float(total / day_top) * plot_h
        x = LEFT + i * step + (step - bar_w) / 2
        parts.append(
            format_html(
                '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>',
                f"{x:.1f}",
                f"{TOP + plot_h - h:.1f}",
                f"{bar_w:.1f}",
                f"{h:.1f}",
                day.isoformat(),
                money(total),
            )
        )
    points = " ".join(
        f"{LEFT + i * step + step / 2:.1f},{TOP + plot_h - float(row[4] / run_top) * plot_h:.1f}"
        for i, row in enumerate(days)
    )
    peak = max(days, key=lambda row: row[3])
    first, last = days[0][0], days[-1][0]
    description = (
        f"Daily cost from {first:%b %d, %Y} to {last:%b %d, %Y}: highest {money(peak[3])} on "
        f"{peak[0]:%b %d}; {money(days[-1][4])} in all."
    )
    axis = [
        format_html(
            '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>',
            LEFT,
            TOP + plot_h,
            WIDTH - RIGHT,
            TOP + plot_h,
        ),
        format_html('<text x="{}" y="{}" text-anchor="end">{}</text>', LEFT - 6, TOP + 10, money(day_top)),
        format_html('<text x="{}" y="{}" text-anchor="end">$0</text>', LEFT - 6, TOP + plot_h),
        format_html('<text class="run" x="{}" y="{}">{}</text>', WIDTH - RIGHT + 6, TOP + 10, money(run_top)),
        format_html('<text x="{}" y="{}">{}</text>', LEFT, HEIGHT - 12, f"{first:%b %d}"),
        format_html(
            '<text x="{}" y="{}" text-anchor="end">{}</text>', WIDTH - RIGHT, HEIGHT - 12, f"{last:%b %d}"
        ),
        format_html(
            '<text class="legend" x="{}" y="{}" text-anchor="middle">{}</text>',
            LEFT + plot_w / 2,
            HEIGHT - 12,
            "bars: cost per day · line: running total",
        ),
    ]
    return mark_safe(
        f'<svg class="burn" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" preserveAspectRatio="xMidYMid meet">'
        f'<title id="{ident}-title">Daily cost burn</title>'
        f'<desc id="{ident}-desc">{escape(description)}</desc>'
        + "".join(axis)
        + "".join(parts)
        + f'<polyline class="line" points="{points}"/></svg>'
    )
