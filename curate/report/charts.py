"""Inline SVG charts: crisp at any zoom, a few kilobytes, no image library and no script.

Text in a chart comes from the data (split and class names), so it is escaped like any HTML.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

import pandas as pd

INK, MUTED, GRID = "#1d2330", "#5d6675", "#e3e6eb"
LIGHT_FILLS = {"#F0E442", "#E69F00", "#56B4E9", "#999999"}  # segments that need dark numbers


def _open(width: float, height: float) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'font-family="system-ui, sans-serif">')


def text(x, y, content, *, anchor="start", size=12, weight="normal", fill=INK) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}">{escape(str(content))}</text>')


def stacked_bars(counts: pd.DataFrame, colours: dict[str, str], scale_max: int) -> str:
    """One horizontal bar per row of counts (index: what the row is called), one segment per
    column in colours' order, the row's total at the end. scale_max sets the shared x scale."""
    left, width, bar, gap = 90, 360, 24, 12
    parts = [_open(left + width + 70, len(counts) * (bar + gap) + 10)]
    for i, (name, row) in enumerate(counts.iterrows()):
        y = 6 + i * (bar + gap)
        mid = y + bar / 2 + 4
        parts.append(text(left - 8, mid, name, anchor="end", size=13, weight="600"))
        x = float(left)
        for label, colour in colours.items():
            n = int(row.get(label, 0))
            if not n:
                continue
            w = width * n / max(scale_max, 1)
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}">'
                         f'<title>{escape(str(name))} · {escape(str(label))}: {n:,}</title></rect>')
            if w > 8 * len(f"{n:,}") + 6:  # the number only where it fits
                ink = "#000" if colour in LIGHT_FILLS else "#fff"
                parts.append(text(x + w / 2, mid, f"{n:,}", anchor="middle", size=11, fill=ink))
            x += w
        parts.append(text(x + 6, mid, f"{int(row.sum()):,}", weight="600"))
    parts.append("</svg>")
    return "".join(parts)


def forest(rows: list[tuple[str, str, dict | None]], metrics: list[tuple[str, str]],
           describe: Callable[[dict, str], str]) -> str:
    """A point and its 95% interval for each (row, metric): rows are (name, colour, METRICS).
    Metrics missing from a row (null: one class only) say so instead of a dot. '' if no data."""
    values = []
    for key, _ in metrics:
        for _, _, m in rows:
            if m and m.get(key) is not None:
                values += [m[key]] + [c for c in (m.get(f"{key}_ci") or []) if c is not None]
    if not values:
        return ""
    lo, hi = max(0.0, math.floor(min(values) * 10) / 10), min(1.0, math.ceil(max(values) * 10) / 10)
    if hi - lo < 0.2:
        lo = max(0.0, hi - 0.2)
    left, width, rowh, top = 250, 420, 20, 26
    height = top + len(metrics) * (len(rows) + 1) * rowh + 12

    def xs(v: float) -> float:
        return left + width * (min(max(v, lo), hi) - lo) / (hi - lo)

    parts = [_open(left + width + 30, height)]
    for k in range(round((hi - lo) * 10) + 1):
        tick = lo + k / 10
        parts.append(f'<line x1="{xs(tick):.1f}" y1="{top - 6}" x2="{xs(tick):.1f}" y2="{height - 8}" '
                     f'stroke="{GRID}"/>')
        parts.append(text(xs(tick), top - 10, f"{tick:.1f}", anchor="middle", size=11, fill=MUTED))
    y = top
    for key, title in metrics:
        parts.append(text(8, y + 13, title, weight="700"))
        y += rowh
        for name, colour, m in rows:
            parts.append(text(20, y + 13, name))
            if m and m.get(key) is not None:
                ci = m.get(f"{key}_ci") or [None, None]
                if ci[0] is not None and ci[1] is not None:
                    parts.append(f'<line x1="{xs(ci[0]):.1f}" y1="{y + 9}" x2="{xs(ci[1]):.1f}" y2="{y + 9}" '
                                 f'stroke="{colour}" stroke-width="2.5"/>')
                parts.append(f'<circle cx="{xs(m[key]):.1f}" cy="{y + 9}" r="5" fill="{colour}">'
                             f'<title>{escape(name)}: {escape(describe(m, key))}</title></circle>')
            else:
                parts.append(text(left, y + 13, "cannot be computed (one class only)", size=11, fill=MUTED))
            y += rowh
    parts.append("</svg>")
    return "".join(parts)
