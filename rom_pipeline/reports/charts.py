"""Charts of the reports: matplotlib (object API, Agg, no pyplot state), each returned as PNG bytes.

The HTML embeds them as base64 data URIs (:func:`data_uri`), so every report is one
self-contained file. Functions take plain values; they never query a database.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display; must precede any figure (harmless when already Agg)

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

DPI = 100
HIGHLIGHT = "#1f4e9a"      # the unit the report is about
OTHERS = "#8c8c8c"         # its peers
ORGANISATION = "#6b6b6b"
TARGET = "#2b7a3d"
LIMIT_95 = "#7a7a7a"
LIMIT_998 = "#3d3d3d"
YEAR_COLOURS = ["#c9d9ee", "#8fb3dc", "#4f86c6", "#1f4e9a", "#0d2f66"]
PEER_MEAN_COLOUR = "#e0a800"

Z_95 = 1.959964
Z_998 = 3.090232


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # Fixed margins (no tight bbox, no layout engine): each of those draws the figure once more.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def _figure(width: float, height: float, left: float = 0.07, bottom: float = 0.16, top: float = 0.88,
            right: float = 0.98) -> Figure:
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top)
    return fig


def _dutch_number(x: float, decimals: int = 0) -> str:
    return f"{x:,.{decimals}f}"


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)


def spending_chart(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
                   peer_series: tuple[str, Sequence[float | None]] | None = None) -> bytes:
    """Grouped bars: each spending share (% of revenue) per year, and the mean of all concerns.

    ``series``: (year label, one share per category, None when not reported). Grouped, not
    stacked: the gross result can be negative, and a blank cost line must stay visibly blank.
    """
    groups = list(series) + ([peer_series] if peer_series else [])
    n_groups = max(len(groups), 1)
    width = 0.82 / n_groups
    fig = _figure(9.6, 3.6, left=0.07, bottom=0.26, top=0.9)
    ax = fig.add_subplot()
    year_colours = YEAR_COLOURS[-len(series):] if series else []
    for g, (name, values) in enumerate(groups):
        is_peer = peer_series is not None and g == len(groups) - 1
        colour = PEER_MEAN_COLOUR if is_peer else year_colours[g]
        xs = [i + (g - (n_groups - 1) / 2) * width for i in range(len(categories))]
        shown = [(x, float(v)) for x, v in zip(xs, values) if v is not None]
        ax.bar([x for x, _ in shown], [v for _, v in shown], width=width * 0.92, color=colour, label=name,
               edgecolor="#9a7400" if is_peer else "none", linewidth=0.5)
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right", rotation_mode="anchor")
    ax.axhline(0, color="#333333", linewidth=0.8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{_dutch_number(y)}%"))
    ax.set_ylabel("% van de bedrijfsopbrengsten", fontsize=8)
    _style(ax)
    ax.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=min(4, n_groups))
    return _png(fig)


@dataclass(frozen=True)
class Line:
    label: str
    values: Sequence[float | None]
    highlight: bool = False


def trend_chart(periods: Sequence[str], lines: Sequence[Line], *, title: str, percent: bool,
                target: float | None = None, target_label: str | None = None,
                y_range: tuple[float, float] | None = None) -> bytes:
    """An indicator over periods: one line per unit, a gap where a value is missing or suppressed."""
    rotate = len(periods) > 14
    fig = _figure(9.6, 3.0, bottom=0.34 if rotate else 0.27, top=0.9)
    ax = fig.add_subplot()
    xs = list(range(len(periods)))
    for line in lines:
        ys = [math.nan if v is None else float(v) for v in line.values]
        ax.plot(xs, ys, marker="o", markersize=4 if line.highlight else 3,
                linewidth=2.2 if line.highlight else 1.2,
                color=HIGHLIGHT if line.highlight else ORGANISATION,
                linestyle="-" if line.highlight else "--", label=line.label)
    if target is not None:
        ax.axhline(target, color=TARGET, linewidth=1.2, linestyle=(0, (6, 3)),
                   label=target_label or f"target {_dutch_number(target)}")
    ax.set_xticks(xs, periods, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    if y_range:
        ax.set_ylim(*y_range)
    if percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{_dutch_number(y)}%"))
    ax.set_title(title, fontsize=10, loc="left")
    _style(ax)
    _legend_below(ax, -0.42 if rotate else -0.2)
    return _png(fig)


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
                 percent: bool | None = None, y_range: tuple[float, float] | None = None) -> bytes:
    """Funnel plot: each unit's value against its n, with 95% and 99.8% limits around the centre.

    ``proportion``: a percentage (binomial limits clipped to 0..100); ``percent``: label the axis in %
    (also for a mean of percentages); ``y_range``: the range the indicator can take (limits are cut there).
    """
    percent = proportion if percent is None else percent
    if proportion and y_range is None:
        y_range = (0.0, 100.0)
    fig = _figure(9.6, 3.6, bottom=0.25, top=0.9)
    ax = fig.add_subplot()
    top_n = max([p.n for p in points] + [max_n or 0, 10]) * 1.15
    if centre is not None and sd is not None and sd > 0:
        grid = [1 + (top_n - 1) * i / 300 for i in range(301)]
        for z, colour, style, name in ((Z_95, LIMIT_95, "--", "95%-grenzen"),
                                       (Z_998, LIMIT_998, ":", "99.8%-grenzen")):
            limits = [funnel_limits(centre, sd, n, z, proportion) for n in grid]
            if y_range:
                limits = [(max(lo, y_range[0]), min(hi, y_range[1])) for lo, hi in limits]
            ax.plot(grid, [lo for lo, _ in limits], color=colour, linestyle=style, linewidth=1.1, label=name)
            ax.plot(grid, [hi for _, hi in limits], color=colour, linestyle=style, linewidth=1.1)
        ax.axhline(centre, color="#444444", linewidth=1.0,
                   label=f"alle trajecten samen ({_dutch_number(centre, 1)}{'%' if percent else ''})")
    if target is not None:
        ax.axhline(target, color=TARGET, linewidth=1.1, linestyle=(0, (6, 3)),
                   label=target_label or f"target {_dutch_number(target)}")
    for p in sorted(points, key=lambda p: p.highlight):
        ax.scatter([p.n], [p.value], s=70 if p.highlight else 28, zorder=3,
                   color=HIGHLIGHT if p.highlight else OTHERS, edgecolor="white", linewidth=0.8)
        if p.annotate:
            ax.annotate(p.label, (p.n, p.value), xytext=(5, 4), textcoords="offset points",
                        fontsize=7.5, color=HIGHLIGHT if p.highlight else "#555555",
                        fontweight="bold" if p.highlight else "normal")
    ax.set_xlim(0, top_n)
    if y_range:
        pad = (y_range[1] - y_range[0]) * 0.02
        ax.set_ylim(y_range[0] - pad, y_range[1] + pad)
    if percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{_dutch_number(y)}%"))
    ax.set_xlabel(x_label, fontsize=8)
    ax.set_title(title, fontsize=10, loc="left")
    _style(ax)
    _legend_below(ax, -0.22)
    return _png(fig)


def _legend_below(ax, offset: float) -> None:
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, offset),
              ncols=max(1, min(5, len(handles))))
