"""Charts drawn on the server as inline SVG: no script, nothing to load, readable in print.

Colours come from presentation attributes and CSS classes (the pages' Content-Security-Policy
allows no inline styles). Every chart has a title and a description for screen readers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

SERIES_COLOURS = ("#3b6ea8", "#d0792b", "#3c8d5a", "#8a4fa0")


@dataclass(frozen=True)
class Series:
    name: str
    values: list[int]


def bar_chart(title: str, days: list[date], series: list[Series], height: int = 220) -> Markup:
    """Bars per day (several series side by side), with a y axis and weekly x labels."""
    width, left, bottom, top = 760, 40, 28, 12
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max([1, *(v for s in series for v in s.values)])
    step = _nice_step(peak)
    y_max = step * -(-peak // step)
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.8 / max(len(series), 1), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{_id(title)}-t {_id(title)}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{_id(title)}-t">{escape(title)}</title>',
        f'<desc id="{_id(title)}-d">{escape(_describe(days, series))}</desc>',
    ]
    for tick in range(0, y_max + 1, step):
        y = top + plot_h - plot_h * tick / y_max
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#ddd" stroke-width="1"/>')  # fmt: skip
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#333">{tick}</text>')  # fmt: skip
    for i, day in enumerate(days):
        x0 = left + i * slot + slot * 0.1
        for k, s in enumerate(series):
            h = plot_h * s.values[i] / y_max
            parts.append(
                f'<rect x="{x0 + k * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{SERIES_COLOURS[k % len(SERIES_COLOURS)]}">'
                f"<title>{escape(s.name)} {day:%d %b}: {s.values[i]}</title></rect>"
            )
        if i % 7 == 0:
            parts.append(f'<text x="{left + i * slot:.1f}" y="{height - 8}" font-size="11" '
                         f'fill="#333">{day:%d %b}</text>')  # fmt: skip
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and escaped text


def legend(series: list[Series]) -> Markup:
    items = "".join(
        f'<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" '
        f'fill="{SERIES_COLOURS[k % len(SERIES_COLOURS)]}"/></svg> {escape(s.name)}</li>'
        for k, s in enumerate(series)
    )
    return Markup(f'<ul class="legend">{items}</ul>')  # noqa: S704 - escaped names


def _nice_step(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if peak / step <= 6:
            return step
    return int(10 ** len(str(peak)))


def _id(title: str) -> str:
    return "chart-" + hashlib.sha1(title.encode()).hexdigest()[:10]  # noqa: S324 - not security


def _describe(days: list[date], series: list[Series]) -> str:
    if not days:
        return "No data."
    totals = ", ".join(f"{s.name}: {sum(s.values)} in total" for s in series)
    return f"{days[0]:%d %b %Y} to {days[-1]:%d %b %Y}. {totals}."
