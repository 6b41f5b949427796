"""Charts of the reports as SVG text, built here from plain values (no plotting library).

Three kinds, all simple: line charts over periods with a target line, funnel plots (value against
n with control limits), grouped bar charts (spending shares). Each function returns an SVG
document (a string); :func:`data_uri` embeds it in the HTML, so every report stays one
self-contained file, and the PDF (:mod:`rom_pipeline.reports.pdf`) draws the same SVG. Numbers
on axes and in labels go through the reports' one formatter (Dutch: ``29,6%``).

Why not a plotting library: a matplotlib figure cost about 60 ms (most of a night's report time);
these charts are lines, dots and bars, and building their SVG costs well under a millisecond
(docs/reports.md, measured). Functions take plain values; they never query a database.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Sequence
from xml.sax.saxutils import escape, quoteattr

from rom_pipeline.reports.formatting import dutch

HIGHLIGHT = "#1f4e9a"      # the unit the report is about
OTHERS = "#8c8c8c"         # its peers
ORGANISATION = "#6b6b6b"
TARGET = "#2b7a3d"
LIMIT_95 = "#7a7a7a"
LIMIT_998 = "#3d3d3d"
YEAR_COLOURS = ["#c9d9ee", "#8fb3dc", "#4f86c6", "#1f4e9a", "#0d2f66"]
PEER_MEAN_COLOUR = "#e0a800"
INK, MUTED, GRID = "#1f2328", "#555555", "#e5e5e5"
FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif"

Z_95 = 1.959964
Z_998 = 3.090232

WIDTH = 960
CHAR_WIDTH = 0.56  # average glyph width per font-size unit (sans-serif), for laying out legends


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


# --- small SVG builder ------------------------------------------------------------------------------

def _n(x: float) -> str:
    """A coordinate, to a tenth of a pixel."""
    return f"{x:.1f}"


def _dash(dash: str | None) -> str:
    return f' stroke-dasharray="{dash}"' if dash else ""


class _Svg:
    """Plain string building (f-strings; colours and dashes are this module's constants, text is escaped):
    a therapist page draws hundreds of elements per chart, and attribute quoting per element cost more
    than the rest of the page."""

    def __init__(self, width: float, height: float, title: str):
        self.width, self.height = width, height
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
                      f'viewBox="0 0 {_n(width)} {_n(height)}" font-family={quoteattr(FONT)}>',
                      f"<title>{escape(title)}</title>",
                      f'<rect x="0" y="0" width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>']

    def line(self, x1, y1, x2, y2, colour, width=1.0, dash: str | None = None):
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                          f'stroke-width="{width}"{_dash(dash)}/>')

    def polyline(self, points: Sequence[tuple[float, float]], colour, width=1.0, dash: str | None = None):
        if len(points) >= 2:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{width}"'
                              f'{_dash(dash)}/>')

    def circle(self, x, y, r, colour, edge: str | None = "#ffffff"):
        stroke = f' stroke="{edge}" stroke-width="0.8"' if edge else ""
        self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}"{stroke}/>')

    def rect(self, x, y, w, h, colour, edge: str | None = None):
        stroke = f' stroke="{edge}" stroke-width="0.6"' if edge else ""
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
                          f'fill="{colour}"{stroke}/>')

    def polygon(self, points: Sequence[tuple[float, float]], colour, opacity: float = 1.0):
        if len(points) >= 3:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            self.parts.append(f'<polygon points="{pts}" fill="{colour}" fill-opacity="{opacity}" stroke="none"/>')

    def text(self, x, y, text: str, size=11.0, anchor="start", colour=INK, bold=False, rotate: float | None = None):
        extra = (' font-weight="bold"' if bold else "") + \
            (f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else "")
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                          f'fill="{colour}"{extra}>{escape(text)}</text>')

    def done(self) -> str:
        return "".join(self.parts) + "</svg>"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering low..high (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, t = [], first
    while t <= high + step * 1e-6:
        ticks.append(round(t, 10))
        t += step
    if ticks and ticks[-1] < high - step * 1e-6:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _decimals(ticks: Sequence[float]) -> int:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    return 0 if step >= 1 else (1 if step >= 0.1 else 2)


class _Axes:
    """A plot area: data coordinates -> SVG coordinates, y axis with grid lines and labels."""

    def __init__(self, svg: _Svg, left, top, right, bottom, x_range, y_range):
        self.svg, self.left, self.top, self.right, self.bottom = svg, left, top, right, bottom
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / ((self.x1 - self.x0) or 1) * (self.right - self.left)

    def y(self, v: float) -> float:
        return self.bottom - (v - self.y0) / ((self.y1 - self.y0) or 1) * (self.bottom - self.top)

    def y_axis(self, ticks: Sequence[float], percent: bool, label: str | None = None):
        decimals = _decimals(ticks)
        for t in ticks:
            if self.y0 - 1e-9 <= t <= self.y1 + 1e-9:
                y = self.y(t)
                self.svg.line(self.left, y, self.right, y, GRID, 0.6)
                self.svg.text(self.left - 6, y + 3.5, dutch(t, decimals) + ("%" if percent else ""), 10, "end", MUTED)
        self.svg.line(self.left, self.top, self.left, self.bottom, "#888888", 0.8)
        self.svg.line(self.left, self.bottom, self.right, self.bottom, "#888888", 0.8)
        if label:
            self.svg.text(14, (self.top + self.bottom) / 2, label, 10, "middle", MUTED, rotate=-90)

    def clip_y(self, v: float) -> float:
        return min(max(v, self.y0), self.y1)


@dataclass(frozen=True)
class _LegendItem:
    label: str
    colour: str
    kind: str = "line"           # line | dot | box
    dash: str | None = None


def _legend(svg: _Svg, items: Sequence[_LegendItem], y: float, x_start: float = 60, size: float = 10) -> float:
    """Legend items in rows from ``y``, wrapped at the chart's width; returns the y below the last row."""
    x, row_h = x_start, size + 7
    for item in items:
        w = 26 + len(item.label) * size * CHAR_WIDTH + 18
        if x + w > svg.width - 10 and x > x_start:
            x, y = x_start, y + row_h
        if item.kind == "dot":
            svg.circle(x + 9, y - 3.5, 4, item.colour)
        elif item.kind == "box":
            svg.rect(x + 2, y - 9, 16, 10, item.colour)
        else:
            svg.line(x, y - 3.5, x + 20, y - 3.5, item.colour, 1.6, item.dash)
        svg.text(x + 26, y, item.label, size, "start", INK)
        x += w
    return y + row_h


def _legend_height(items: Sequence[_LegendItem], width: float, x_start: float = 60, size: float = 10) -> float:
    rows, x = 1, x_start
    for item in items:
        w = 26 + len(item.label) * size * CHAR_WIDTH + 18
        if x + w > width - 10 and x > x_start:
            rows, x = rows + 1, x_start
        x += w
    return rows * (size + 7)


# --- spending: grouped bars ---------------------------------------------------------------------------

def spending_chart(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
                   peer_series: tuple[str, Sequence[float | None]] | None = None) -> str:
    """Grouped bars: each spending share (% of revenue) per year, and the mean of all concerns.

    ``series``: (year label, one share per category, None when not reported). Grouped, not
    stacked: the gross result can be negative, and a blank cost line must stay visibly blank.
    """
    groups = list(series) + ([peer_series] if peer_series else [])
    year_colours = YEAR_COLOURS[-len(series):] if series else []
    items = [_LegendItem(name, PEER_MEAN_COLOUR if peer_series is not None and g == len(groups) - 1
                         else year_colours[g], "box") for g, (name, _) in enumerate(groups)]
    values = [float(v) for _, vs in groups for v in vs if v is not None]
    low, high = min(values + [0.0]), max(values + [0.0])
    ticks = nice_ticks(low, high)
    legend_h = _legend_height(items, WIDTH)
    label_room = 12 + max((len(c) for c in categories), default=0) * 10 * CHAR_WIDTH * 0.5
    height = 36 + legend_h + 220 + label_room
    svg = _Svg(WIDTH, height, "Verdeling uitgaven")
    _legend(svg, items, 18)
    ax = _Axes(svg, 64, 26 + legend_h, WIDTH - 16, 26 + legend_h + 220, (0, max(len(categories), 1)),
               (ticks[0], ticks[-1]) if ticks else (0, 1))
    ax.y_axis(ticks, True, "% van de bedrijfsopbrengsten")
    n_groups = max(len(groups), 1)
    slot = (ax.right - ax.left) / max(len(categories), 1)
    bar = slot * 0.82 / n_groups
    zero = ax.y(0)
    for g, (name, vals) in enumerate(groups):
        colour = items[g].colour
        is_peer = peer_series is not None and g == len(groups) - 1
        for i, v in enumerate(vals):
            if v is None:
                continue
            x = ax.left + slot * i + slot * 0.09 + bar * g
            top = ax.y(float(v))
            svg.rect(x + bar * 0.04, min(top, zero), bar * 0.92, abs(zero - top), colour,
                     "#9a7400" if is_peer else None)
    svg.line(ax.left, zero, ax.right, zero, "#333333", 0.8)
    for i, c in enumerate(categories):
        x = ax.left + slot * (i + 0.5)
        svg.text(x + 4, ax.bottom + 12, c, 10, "end", INK, rotate=-30)
    return svg.done()


# --- trend: lines over periods --------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    label: str
    values: Sequence[float | None]
    highlight: bool = False


def trend_chart(periods: Sequence[str], lines: Sequence[Line], *, title: str, percent: bool,
                target: float | None = None, target_label: str | None = None,
                y_range: tuple[float, float] | None = None) -> str:
    """An indicator over periods: one line per unit, a gap where a value is missing or suppressed."""
    rotate = len(periods) > 14
    items = [_LegendItem(l.label, HIGHLIGHT if l.highlight else ORGANISATION) for l in lines]
    if target is not None:
        items.append(_LegendItem(target_label or f"target {dutch(target)}", TARGET, "line", "6 3"))
    legend_h = _legend_height(items, WIDTH)
    plot_top, plot_h = 30, 190
    x_room = 48 if rotate else 22
    height = plot_top + plot_h + x_room + legend_h + 8
    values = [float(v) for l in lines for v in l.values if v is not None] + ([target] if target is not None else [])
    if y_range:
        ticks = nice_ticks(*y_range)
    else:
        ticks = nice_ticks(min(values), max(values)) if values else nice_ticks(0, 1)
    svg = _Svg(WIDTH, height, title)
    svg.text(64, 18, title, 12, "start", INK, bold=True)
    ax = _Axes(svg, 64, plot_top, WIDTH - 16, plot_top + plot_h, (-0.5, max(len(periods), 1) - 0.5),
               (ticks[0], ticks[-1]))
    ax.y_axis(ticks, percent)
    for i, p in enumerate(periods):
        x = ax.x(i)
        svg.line(x, ax.bottom, x, ax.bottom + 3, "#888888", 0.8)
        if rotate:
            svg.text(x + 3, ax.bottom + 12, p, 9.5, "end", MUTED, rotate=-45)
        else:
            svg.text(x, ax.bottom + 15, p, 9.5, "middle", MUTED)
    if target is not None:
        svg.line(ax.left, ax.y(ax.clip_y(target)), ax.right, ax.y(ax.clip_y(target)), TARGET, 1.2, "6 3")
    for line in sorted(lines, key=lambda l: l.highlight):
        colour = HIGHLIGHT if line.highlight else ORGANISATION
        run: list[tuple[float, float]] = []
        for i, v in enumerate(list(line.values) + [None]):
            if v is None:
                svg.polyline(run, colour, 2.0 if line.highlight else 1.4)
                run = []
                continue
            run.append((ax.x(i), ax.y(ax.clip_y(float(v)))))
        for i, v in enumerate(line.values):
            if v is not None:
                svg.circle(ax.x(i), ax.y(ax.clip_y(float(v))), 3.2 if line.highlight else 2.5, colour, None)
    _legend(svg, items, ax.bottom + x_room + 12)
    return svg.done()


# --- funnel plot -----------------------------------------------------------------------------------------

def funnel_limits(centre: float, sd: float, n: float, z: float, proportion: bool) -> tuple[float, float]:
    """Spiegelhalter's control limits for a unit of size n: centre +- z * sd / sqrt(n) (0..100 for a %)."""
    half = z * sd / math.sqrt(n)
    low, high = centre - half, centre + half
    if proportion:
        low, high = max(0.0, low), min(100.0, high)
    return low, high


@dataclass(frozen=True)
class FunnelPoint:
    label: str
    n: float
    value: float
    highlight: bool = False
    annotate: bool = True


def funnel_chart(points: Sequence[FunnelPoint], *, centre: float | None, sd: float | None, proportion: bool,
                 title: str, target: float | None = None, target_label: str | None = None,
                 x_label: str = "aantal trajecten waarop het cijfer rust (n)", max_n: float | None = None,
                 percent: bool | None = None, y_range: tuple[float, float] | None = None) -> str:
    """Funnel plot: each unit's value against its n, with 95% and 99.8% limits around the centre.

    ``proportion``: a percentage (binomial limits clipped to 0..100); ``percent``: label the axis in %
    (also for a mean of percentages); ``y_range``: the range the indicator can take (limits are cut there).
    """
    percent = proportion if percent is None else percent
    if proportion and y_range is None:
        y_range = (0.0, 100.0)
    has_limits = centre is not None and sd is not None and sd > 0
    items = [_LegendItem("95%-grenzen", LIMIT_95, "line", "5 3"), _LegendItem("99,8%-grenzen", LIMIT_998, "line", "2 2")] \
        if has_limits else []
    if centre is not None:
        items.append(_LegendItem(f"alle trajecten samen ({dutch(centre, 1)}{'%' if percent else ''})", "#444444"))
    if target is not None:
        items.append(_LegendItem(target_label or f"target {dutch(target)}", TARGET, "line", "6 3"))
    legend_h = _legend_height(items, WIDTH) if items else 0
    plot_top, plot_h = 30, 220
    height = plot_top + plot_h + 40 + legend_h + 8
    top_n = max([p.n for p in points] + [max_n or 0, 10]) * 1.15
    if y_range:
        ticks = nice_ticks(*y_range)
        lo, hi = y_range
    else:
        values = [p.value for p in points] + [v for v in (centre, target) if v is not None]
        ticks = nice_ticks(min(values), max(values)) if values else nice_ticks(0, 1)
        lo, hi = ticks[0], ticks[-1]
    svg = _Svg(WIDTH, height, title)
    svg.text(64, 18, title, 12, "start", INK, bold=True)
    ax = _Axes(svg, 64, plot_top, WIDTH - 16, plot_top + plot_h, (0, top_n), (min(lo, ticks[0]), max(hi, ticks[-1])))
    ax.y_axis(ticks, percent)
    x_ticks = [t for t in nice_ticks(0, top_n, 8) if t <= top_n]
    for t in x_ticks:
        svg.line(ax.x(t), ax.bottom, ax.x(t), ax.bottom + 3, "#888888", 0.8)
        svg.text(ax.x(t), ax.bottom + 14, dutch(t, _decimals(x_ticks)), 9.5, "middle", MUTED)
    svg.text((ax.left + ax.right) / 2, ax.bottom + 30, x_label, 10, "middle", MUTED)
    if has_limits:
        grid = [1 + (top_n - 1) * (i / 60) ** 2 for i in range(61)]  # denser at small n, where the limits bend
        for z, colour, dash in ((Z_95, LIMIT_95, "5 3"), (Z_998, LIMIT_998, "2 2")):
            limits = [funnel_limits(centre, sd, n, z, proportion) for n in grid]
            for side in (0, 1):
                svg.polyline([(ax.x(n), ax.y(ax.clip_y(lim[side]))) for n, lim in zip(grid, limits)], colour, 1.1, dash)
    if centre is not None:
        svg.line(ax.left, ax.y(ax.clip_y(centre)), ax.right, ax.y(ax.clip_y(centre)), "#444444", 1.0)
    if target is not None:
        svg.line(ax.left, ax.y(ax.clip_y(target)), ax.right, ax.y(ax.clip_y(target)), TARGET, 1.1, "6 3")
    for p in sorted(points, key=lambda p: p.highlight):
        x, y = ax.x(p.n), ax.y(ax.clip_y(p.value))
        svg.circle(x, y, 5.5 if p.highlight else 3.6, HIGHLIGHT if p.highlight else OTHERS)
        if p.annotate:
            svg.text(x + 6, y - 5, p.label, 9.5, "start", HIGHLIGHT if p.highlight else MUTED, bold=p.highlight)
    if items:
        _legend(svg, items, ax.bottom + 52)
    return svg.done()


# --- not-on-track feedback: an episode's course against the expected band ---------------------------

BAND_OUTER = "#dbe6f3"     # p10-p90 of the expected course
BAND_INNER = "#b3cbe6"     # p25-p75
FLAGGED = "#b3261e"        # the flagged episode's scores


def trajectory_chart(points: Sequence[tuple[float, float]], band: Sequence[dict], margin: float | None,
                     title: str = "Verloop SCL-90") -> str:
    """An open episode's SCL90 scores by session (``points``: (session, score), intake at 0) against the
    expected course of its intake band (``band``: per session bin ``x`` (its middle session), ``low``,
    ``q1``, ``median``, ``q3``, ``high``; a bin without a course is left out). ``margin``: the
    reliable-change threshold, drawn as a dashed line that far above the median (the flag's line)."""
    width, height = 560.0, 260.0
    items = [_LegendItem("verwacht p10-p90", BAND_OUTER, "box"), _LegendItem("p25-p75", BAND_INNER, "box"),
             _LegendItem("mediaan", HIGHLIGHT), _LegendItem("mediaan + betrouwbare verandering", FLAGGED, dash="4 3"),
             _LegendItem("scores van dit traject", FLAGGED, "dot")]
    legend_h = _legend_height(items, width, 56, 9)
    svg = _Svg(width, height + legend_h, title)
    band = [b for b in band if b.get("median") is not None]
    values = [s for _, s in points] + [b[k] for b in band for k in ("low", "high") if b.get(k) is not None]
    values += [b["median"] + margin for b in band] if margin else []
    ticks = nice_ticks(min(values + [118.0]) - 5, max(values + [118.0]) + 5) if values else [90, 450]
    x_max = max([x for x, _ in points] + [b["x"] for b in band] + [10.0])
    ax = _Axes(svg, 56, 14, width - 14, height - 34, (0, x_max * 1.04), (ticks[0], ticks[-1]))
    ax.y_axis(ticks, False, "SCL-90 totaal")
    for t in nice_ticks(0, x_max, 6):
        if t <= x_max * 1.04:
            svg.text(ax.x(t), ax.bottom + 14, dutch(t, 0), 10, "middle", MUTED)
    svg.text((ax.left + ax.right) / 2, ax.bottom + 28, "zitting", 10, "middle", MUTED)
    if band:
        xs = [ax.x(b["x"]) for b in band]
        for lo, hi, colour in (("low", "high", BAND_OUTER), ("q1", "q3", BAND_INNER)):
            if all(b.get(lo) is not None and b.get(hi) is not None for b in band):
                upper = [(x, ax.y(ax.clip_y(b[hi]))) for x, b in zip(xs, band)]
                lower = [(x, ax.y(ax.clip_y(b[lo]))) for x, b in zip(xs, band)]
                svg.polygon(upper + lower[::-1], colour)
        svg.polyline([(x, ax.y(b["median"])) for x, b in zip(xs, band)], HIGHLIGHT, 1.6)
        if margin:
            svg.polyline([(x, ax.y(ax.clip_y(b["median"] + margin))) for x, b in zip(xs, band)], FLAGGED, 1.2, "4 3")
    ordered = sorted(points)
    svg.polyline([(ax.x(x), ax.y(y)) for x, y in ordered], FLAGGED, 1.4)
    for x, y in ordered:
        svg.circle(ax.x(x), ax.y(y), 3.6, FLAGGED)
    _legend(svg, items, height - 2 + 9, 56, 9)
    return svg.done()


@dataclass(frozen=True)
class DifferencePoint:
    label: str
    difference: float
    low: float
    high: float
    highlight: bool = False


def difference_chart(points: Sequence[DifferencePoint], *, title: str, percent: bool,
                     x_label: str = "geobserveerd − verwacht (95%-interval)") -> str:
    """Case-mix adjusted results: per unit (one row each, in the given order) the difference observed −
    expected as a dot with its 95% interval as a whisker, around a line at 0 (as its case mix predicts)."""
    row_h, top = 22, 30
    label_w = min(300, max([len(p.label) for p in points] + [10]) * 11 * CHAR_WIDTH + 16)
    height = top + row_h * max(len(points), 1) + 44
    span = max([abs(v) for p in points for v in (p.low, p.high, p.difference)] + [1.0])
    ticks = nice_ticks(-span, span, 6)
    svg = _Svg(WIDTH, height, title)
    svg.text(16, 18, title, 12, "start", INK, bold=True)
    left, right = 16 + label_w, WIDTH - 24
    x0, x1 = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (v - x0) / ((x1 - x0) or 1) * (right - left)

    bottom = top + row_h * max(len(points), 1)
    decimals = _decimals(ticks)
    for t in ticks:
        svg.line(x(t), top, x(t), bottom, GRID, 0.6)
        svg.text(x(t), bottom + 14, dutch(t, decimals) + ("%" if percent else ""), 9.5, "middle", MUTED)
    svg.line(x(0), top - 4, x(0), bottom, "#444444", 1.1)
    svg.text((left + right) / 2, bottom + 32, x_label, 10, "middle", MUTED)
    for i, p in enumerate(points):
        y = top + row_h * i + row_h / 2
        colour = HIGHLIGHT if p.highlight else OTHERS
        svg.text(left - 8, y + 4, p.label, 10.5, "end", HIGHLIGHT if p.highlight else INK, bold=p.highlight)
        svg.line(x(p.low), y, x(p.high), y, colour, 2.0)
        for end in (p.low, p.high):
            svg.line(x(end), y - 4, x(end), y + 4, colour, 1.2)
        svg.circle(x(p.difference), y, 5.5 if p.highlight else 4.2, colour)
    return svg.done()
