"""Charts drawn on the server as inline SVG: no script, nothing to load, readable in print.

Colours come from presentation attributes and CSS classes (the pages' Content-Security-Policy
allows no inline styles). Every chart has a title and a description for screen readers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

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


def forecast_chart(
    title: str,
    purchases: list[tuple[date, int]],
    today: date,
    median_on: date | None,
    band: tuple[date, date] | None,
    prompt_on: date | None,
    awaiting_answer: bool = False,
) -> Markup:
    """A plan's purchases (bars, height = units) on a time line, with the predicted run-out
    (median line), its 80 % band (shaded) and the next prompt date (``prompt_on``; None when
    there is none, or while a prompt is out and ``awaiting_answer``)."""
    width, height, left, right, top, bottom = 760, 200, 34, 12, 50, 26
    marks = [d for d, _ in purchases] + [today]
    marks += [d for d in (median_on, prompt_on) if d is not None] + (list(band) if band else [])
    start = min(marks) - timedelta(days=7)
    end = max(marks) + timedelta(days=7)
    span = max((end - start).days, 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([1, *(q for _, q in purchases)])

    def x(day: date) -> float:
        return left + plot_w * (day - start).days / span

    ident = _id(title)
    described = _describe_plan(purchases, median_on, band, prompt_on, awaiting_answer)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(described)}</desc>',
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
        'stroke="#888"/>',
    ]
    if band:
        parts.append(
            f'<rect x="{x(band[0]):.1f}" y="{top}" width="{max(x(band[1]) - x(band[0]), 1):.1f}" '
            f'height="{plot_h}" fill="#d0792b" fill-opacity="0.18"><title>80 % interval: '
            f"{band[0]:%d %b} – {band[1]:%d %b %Y}</title></rect>"
        )
    for day, quantity in purchases:
        h = plot_h * quantity / peak
        parts.append(
            f'<rect x="{x(day) - 2:.1f}" y="{top + plot_h - h:.1f}" width="4" height="{h:.1f}" '
            f'fill="#3b6ea8"><title>{day:%d %b %Y}: {quantity} bought</title></rect>'
        )
    lines: list[tuple[date | None, str, str, str]] = [
        (today, "#555", "today", "2 3"),
        (median_on, "#d0792b", "run-out (median)", "6 3"),
        (prompt_on, "#3c8d5a", "next prompt", ""),
    ]
    for row, (when, colour, label, dash) in enumerate(lines):
        if when is None:
            continue
        day = when
        label_y = 14 + 13 * row  # one row each, so labels of close dates do not overlap
        near_end = x(day) > width - 160  # labels there read leftwards, inside the chart
        parts.append(
            f'<line x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{label_y + 2}" y2="{top + plot_h}" '
            f'stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
            f'<text x="{x(day) + (-3 if near_end else 3):.1f}" y="{label_y}" font-size="11" '
            f'fill="#222" text-anchor="{"end" if near_end else "start"}">'
            f"{label} {day:%d %b}</text>"
        )
    for day, anchor in ((start, "start"), (end, "end")):
        parts.append(f'<text x="{x(day):.1f}" y="{height - 8}" font-size="11" fill="#333" '
                     f'text-anchor="{anchor}">{day:%d %b %Y}</text>')  # fmt: skip
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers, dates and escaped text


def _describe_plan(
    purchases: list[tuple[date, int]],
    median_on: date | None,
    band: tuple[date, date] | None,
    prompt_on: date | None,
    awaiting_answer: bool,
) -> str:
    text = _count(len(purchases), "purchase")
    if purchases:
        last_on, units = purchases[-1]
        text += f", the last on {last_on:%d %b %Y} ({_count(units, 'unit')})"
    if median_on:
        text += f"; predicted run-out {median_on:%d %b %Y}"
    if band:
        text += f" (80 % between {band[0]:%d %b} and {band[1]:%d %b})"
    if prompt_on:
        text += f"; next prompt {prompt_on:%d %b %Y}."
    elif awaiting_answer:
        text += "; a prompt is awaiting an answer."
    else:
        text += "; no prompt planned."
    return text


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is 1 (the admin pages are English)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
