"""Charts as inline SVG, drawn on the server: no script, no remote library, readable by screen
readers (each chart has a title and a description, and the page puts its data table beside it).

Colours are presentation attributes, not ``style`` (the page CSP allows no inline style), and
each series also differs by line pattern, so colour is never the only cue.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from markupsafe import Markup, escape

# Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), darkened where
# needed for 3:1 contrast against white.
PALETTE = ("#0b5cad", "#b35900", "#1b7f5b", "#a4286a", "#5a4fcf", "#6b6b00", "#444444", "#b8325a")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 4", "1 2", "10 4", "3 6")
WIDTH = 720


def _number(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def _frame(title: str, description: str, height: int, body: str) -> Markup:
    ident = "chart-" + (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "untitled")  # titles are unique
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" aria-labelledby="{ident}-t {ident}-d" class="chart">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(description)}</desc>'
        f'{body}</svg>'
    )


def _empty(title: str) -> Markup:
    return _frame(title, "No data in this date range.", 60,
                  '<text x="10" y="35">No data in this date range.</text>')


def _ticks(top: float, steps: int = 4) -> list[float]:
    """Round axis values (steps of 1, 2, 2.5 or 5 times a power of ten) from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    magnitude = 10 ** math.floor(math.log10(top / steps))
    step = next(magnitude * factor for factor in (1, 2, 2.5, 5, 10) if magnitude * factor * steps >= top)
    return [step * index for index in range(steps + 1)]


def line_chart(title: str, description: str, labels: Sequence[str], series: Sequence[Series],
               fmt: Callable[[float], str] = _number, top: float | None = None) -> Markup:
    """One line per series over ``labels`` (days or weeks); gaps where a value is None."""
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not values:
        return _empty(title)
    height, left, right, top_pad, bottom = 300, 64, 16, 16, 70
    legend_rows = (len(series) + 2) // 3
    height += legend_rows * 20
    plot_w, plot_h = WIDTH - left - right, 300 - top_pad - bottom
    ticks = _ticks(top if top is not None else max(values))
    y_max = ticks[-1] or 1
    x = (lambda i: left + plot_w / 2) if len(labels) == 1 else (lambda i: left + plot_w * i / (len(labels) - 1))
    y = lambda v: top_pad + plot_h * (1 - v / y_max)  # noqa: E731
    parts = []
    for tick in ticks:
        parts.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#c9d1db" stroke-width="1"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{escape(fmt(tick))}</text>')
    every = max(1, (len(labels) + 9) // 10)
    for index, label in enumerate(labels):
        if index % every == 0 or index == len(labels) - 1:
            parts.append(f'<text x="{x(index):.1f}" y="{top_pad + plot_h + 16}" text-anchor="end" '
                         f'transform="rotate(-35 {x(index):.1f} {top_pad + plot_h + 16})">{escape(label)}</text>')
    for number, item in enumerate(series):
        colour, dash = PALETTE[number % len(PALETTE)], DASHES[number % len(DASHES)]
        segments: list[list[str]] = [[]]
        for index, value in enumerate(item.values):
            if value is None:
                segments.append([])
            else:
                segments[-1].append(f"{x(index):.1f},{y(value):.1f}")
        for points in segments:
            if len(points) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" '
                             f'stroke-dasharray="{dash}" points="{" ".join(points)}"/>')
            for point in points:
                cx, cy = point.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        lx = left + (number % 3) * 220
        ly = 300 + (number // 3) * 20 - 4
        parts.append(f'<line x1="{lx}" x2="{lx + 28}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                     f'stroke-width="3" stroke-dasharray="{dash}"/><text x="{lx + 34}" y="{ly}">{escape(item.name)}</text>')
    return _frame(title, description, height, "".join(parts))


def bar_chart(title: str, description: str, rows: Sequence[tuple[str, float]],
              fmt: Callable[[float], str] = _number, limit: int = 15) -> Markup:
    """Horizontal bars, largest first, value printed at each bar's end."""
    rows = [row for row in rows if row[1] is not None][:limit]
    if not rows:
        return _empty(title)
    label_w, bar_h, gap = 220, 20, 8
    height = len(rows) * (bar_h + gap) + 10
    largest = max(value for _, value in rows) or 1
    span = WIDTH - label_w - 90
    parts = []
    for index, (label, value) in enumerate(rows):
        top = 5 + index * (bar_h + gap)
        width = max(1.0, span * value / largest)
        parts.append(
            f'<text x="{label_w - 8}" y="{top + 15}" text-anchor="end">{escape(_clip(label))}</text>'
            f'<rect x="{label_w}" y="{top}" width="{width:.1f}" height="{bar_h}" fill="{PALETTE[0]}"/>'
            f'<text x="{label_w + width + 6:.1f}" y="{top + 15}">{escape(fmt(value))}</text>'
        )
    return _frame(title, description, height, "".join(parts))


def split_bars(title: str, description: str, rows: Sequence[tuple[str, Sequence[tuple[str, int]]]],
               limit: int = 15) -> Markup:
    """One 100 % bar per row, split into its parts (accepted / overridden / other), with the
    parts' shares written inside when there is room and a legend below."""
    rows = [row for row in rows if sum(n for _, n in row[1]) > 0][:limit]
    if not rows:
        return _empty(title)
    label_w, bar_h, gap = 220, 22, 8
    names = list(dict.fromkeys(name for _, parts in rows for name, n in parts if n > 0))
    height = len(rows) * (bar_h + gap) + 40
    span = WIDTH - label_w - 70
    colours = {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(names)}
    out = []
    for index, (label, parts) in enumerate(rows):
        top = 5 + index * (bar_h + gap)
        whole = sum(n for _, n in parts)
        out.append(f'<text x="{label_w - 8}" y="{top + 16}" text-anchor="end">{escape(_clip(label))}</text>')
        left = float(label_w)
        for name, n in parts:
            width = span * n / whole
            if width <= 0:
                continue
            out.append(f'<rect x="{left:.1f}" y="{top}" width="{width:.1f}" height="{bar_h}" fill="{colours[name]}">'
                       f'<title>{escape(label)}: {escape(name)} {n} ({percent(n / whole)})</title></rect>')
            if width > 44:
                out.append(f'<text x="{left + 4:.1f}" y="{top + 16}" class="on-bar">{percent(n / whole)}</text>')
            left += width
        out.append(f'<text x="{label_w + span + 6}" y="{top + 16}">n={whole:,}</text>')
    legend_y = len(rows) * (bar_h + gap) + 25
    for index, name in enumerate(names):
        lx = label_w + index * 160
        out.append(f'<rect x="{lx}" y="{legend_y - 11}" width="14" height="14" fill="{colours[name]}"/>'
                   f'<text x="{lx + 20}" y="{legend_y}">{escape(name)}</text>')
    return _frame(title, description, height, "".join(out))


def _clip(label: str, size: int = 30) -> str:
    return label if len(label) <= size else label[: size - 1] + "…"
