"""Figures of `crl report` and `crl plot`: learning curves per cell, and the final metric against one field.

Drawn on matplotlib's Agg canvas without pyplot, so no display and no global figure state are involved. Layout
rules shared by every figure here: the grid is sized to the panels, legends sit below the panels (never over
data, tick labels or axis labels), titles are wrapped to their panel's width, metrics that cannot be negative
start their y axis at 0, and lines that lie on top of each other stay visible (see `line_style`).
"""
from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from crl.report import Cell, mean_curve, metric_label, sort_key

PANEL_INCHES = (5.5, 3.8)  # one subplot
MAX_COLUMNS = 3
DPI = 100  # figures are committed to docs/: keep the PNGs small
BAND_ALPHA = 0.2  # shading of the ± s.e. band
CAPSIZE = 3
COLORMAP, COLORMAP_TOP = "viridis", 0.85  # curves coloured by x in order; the top of viridis is too pale to read
LOG2_FIELDS = ("depth", "width")  # fields drawn on a log2 axis when every value is a power of two
MAX_TICKS = 12  # label every x value up to this many
# Lines drawn on top of each other (all-zero success curves, say) must all stay visible: each later line is
# thinner and dashed differently, so the one below shows through its gaps, and its open marker is smaller and
# of another shape, so the markers of coinciding points nest instead of covering each other.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
DASHES = ("-", "--", "-.", ":")
LINE_WIDTH, LINE_WIDTH_STEP, MIN_LINE_WIDTH = 3.0, 0.5, 1.2
MARKER_SIZE, MARKER_SIZE_STEP, MIN_MARKER_SIZE = 11.0, 2.0, 4.0
MARKER_EDGE_WIDTH = 1.5
LINE_ALPHA = 0.85
BASELINE_STYLE = dict(linestyle=":", linewidth=1.5)  # the random policy's value: dotted, in its line's colour
# the depth plot's legend entry for its random-policy lines: (one line of cells, several lines)
DEPTH_BASELINE_LABELS = ("random policy (dotted)", "random policy (dotted, in each line's colour)")
BASELINE_HIDDEN_LABEL = "_random policy"  # matplotlib leaves labels starting with "_" out of legends
# Metrics that cannot be negative, by the last part of their name (eval/random_X counts as eval/X) or a prefix:
# their y axis starts at 0. Losses, entropies and logits can be negative and are not here.
NON_NEGATIVE_NAMES = ("episode_success", "episode_success_any", "episode_success_easy", "avg_episode_length",
                      "episode_length", "episode_dist", "time_at_goal", "alpha", "categorical_accuracy", "sps")
NON_NEGATIVE_PREFIXES = ("time/",)  # durations in seconds
RANDOM_PREFIX = "random_"
EMPTY_RANGE_TOP = 1.0  # y axis top for a non-negative metric whose data are all 0
TITLE_CHARS_PER_INCH = 11  # characters of a title (fontsize "medium", long field=value names) per inch
AXIS_LABEL_INCHES = 1.0  # of a panel's width, what the y label and tick labels take: the title spans the rest
LEGEND_CHARS_PER_INCH = 14  # characters of a legend entry (fontsize "small") that fit in one inch of figure
LEGEND_MARKER_CHARS = 6  # room a legend entry's line sample and padding take, in characters
LEGEND_ROW_INCHES = 0.3  # height added to the figure per row of legend entries below the panels
LEGEND_FRAME_ROWS = 1  # ... and for the legend's frame and padding, in rows
TITLE_ROW_INCHES = 0.25  # height added to the figure per line of a wrapped figure title
LEGEND_FONTSIZE = "small"
GRID_ALPHA = 0.3


# --- layout ---------------------------------------------------------------------------------------------------

def grid_shape(panels: int) -> tuple[int, int]:
    """(rows, columns) with no empty row and at most one short row: 4 panels on 2x2, 5 on 2x3, 7 on 3x3."""
    rows = math.ceil(panels / MAX_COLUMNS)
    return rows, math.ceil(panels / rows)


def panel_figure(panels: int) -> tuple[Figure, list[Axes]]:
    """A figure with one subplot per panel, on the smallest balanced grid, laid out by constrained layout."""
    rows, columns = grid_shape(panels)
    fig = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, columns, squeeze=False).ravel())
    for ax in axes[panels:]:
        ax.remove()
    return fig, axes[:panels]


def wrap(text: str, inches: float, chars_per_inch: float = TITLE_CHARS_PER_INCH) -> str:
    """text broken into lines that fit `inches` of width (on spaces and after hyphens)."""
    return textwrap.fill(text, width=max(1, int(inches * chars_per_inch)))


def panel_title(ax: Axes, text: str) -> None:
    """A subplot title wrapped to the subplot's width, so neighbouring titles never run into each other."""
    ax.set_title(wrap(text, PANEL_INCHES[0] - AXIS_LABEL_INCHES), fontsize="medium")


def figure_title(fig: Figure, text: str) -> None:
    """A suptitle wrapped to the figure's width; the figure grows by the extra lines."""
    wrapped = wrap(text, fig.get_figwidth())
    fig.suptitle(wrapped, fontsize="medium")
    _grow(fig, TITLE_ROW_INCHES * wrapped.count("\n"))


def _grow(fig: Figure, inches: float) -> None:
    fig.set_size_inches(fig.get_figwidth(), fig.get_figheight() + inches)


def legend_below(fig: Figure, axes: list[Axes]) -> None:
    """One legend for all panels, below them: entries of every panel, each label once, in as many columns
    as fit the figure's width; the figure grows by the legend's rows so the panels keep their size."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if not handles:
        return
    width_chars = int(fig.get_figwidth() * LEGEND_CHARS_PER_INCH)
    labels = [textwrap.fill(label, width_chars - LEGEND_MARKER_CHARS) for label in handles]
    longest = max(len(line) for label in labels for line in label.splitlines()) + LEGEND_MARKER_CHARS
    columns = max(1, min(len(labels), width_chars // longest))
    rows = sum(max(label.count("\n") + 1 for label in labels[i:i + columns]) for i in range(0, len(labels), columns))
    fig.legend(list(handles.values()), labels, loc="outside lower center", ncols=columns, fontsize=LEGEND_FONTSIZE)
    _grow(fig, LEGEND_ROW_INCHES * (rows + LEGEND_FRAME_ROWS))


# --- y ranges and line styles -----------------------------------------------------------------------------------

def non_negative(metric: str) -> bool:
    """Whether a metric cannot be negative (time at goal, success rates, episode lengths, ...), by its name."""
    name = metric.rsplit("/", 1)[-1].removeprefix(RANDOM_PREFIX)
    return name in NON_NEGATIVE_NAMES or metric.startswith(NON_NEGATIVE_PREFIXES)


def respect_range(ax: Axes, metric: str) -> None:
    """Start the y axis of a non-negative metric at 0, give all-zero data a visible range above it, and let
    the markers of points at 0 show whole rather than cut in half by the axis."""
    if not non_negative(metric):
        return
    top = ax.get_ylim()[1] if _highest_point(ax) > 0 else EMPTY_RANGE_TOP
    ax.set_ylim(0, top)
    for line in ax.get_lines():
        line.set_clip_on(False)


def baseline(ax: Axes, value: float, color) -> None:
    """A random policy's value as a dotted line in its curve's colour, left out of the legend: baseline_entry
    gives all of them one entry instead of one per line."""
    ax.axhline(value, color=color, label=BASELINE_HIDDEN_LABEL, **BASELINE_STYLE)


def baseline_entry(ax: Axes, entry: str) -> None:
    """The one legend entry that stands for every baseline line of the panel, if it has any."""
    if any(line.get_label() == BASELINE_HIDDEN_LABEL for line in ax.get_lines()):
        ax.add_line(Line2D([], [], color="black", label=entry, **BASELINE_STYLE))


def _highest_point(ax: Axes) -> float:
    """The largest y of the lines drawn (not ax.dataLim, which horizontal lines at 0 leave at a rounding error)."""
    tops = [np.nanmax(y) for y in (np.asarray(line.get_ydata(), float) for line in ax.get_lines())
            if y.size and np.isfinite(y).any()]
    return max(tops, default=0.0)


def line_style(index: int) -> dict[str, Any]:
    """Plot keywords of the index-th line of a panel: later lines thinner, dashed differently, with smaller open
    markers of another shape, so lines that coincide stay distinguishable."""
    return dict(linestyle=DASHES[index % len(DASHES)],
                linewidth=max(MIN_LINE_WIDTH, LINE_WIDTH - LINE_WIDTH_STEP * index),
                marker=MARKERS[index % len(MARKERS)],
                markersize=max(MIN_MARKER_SIZE, MARKER_SIZE - MARKER_SIZE_STEP * index),
                markerfacecolor="none", markeredgewidth=MARKER_EDGE_WIDTH, alpha=LINE_ALPHA)


# --- crl report's figures ---------------------------------------------------------------------------------------

def _label(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def split_fields(cells: list[Cell], x: str | None, others: list[str]) -> tuple[list[str], list[str]]:
    """(group fields, tied fields): fields besides x that split lines, and those that only follow x
    (e.g. actor_depth swept together with critic_depth), which would otherwise leave one point per line."""
    if x is None:
        return others, []
    groups, tied = [], []
    for field in others:
        per_x: dict[Any, set] = {}
        for c in cells:
            per_x.setdefault(c.values[x], set()).add(c.values[field])
        (groups if any(len(v) > 1 for v in per_x.values()) else tied).append(field)
    return groups, tied


def _grouped(cells: list[Cell], fields: list[str]) -> list[tuple[dict, list[Cell]]]:
    groups: dict[tuple, list[Cell]] = {}
    for c in cells:
        groups.setdefault(tuple(c.values[f] for f in fields), []).append(c)
    ordered = sorted(groups, key=lambda key: tuple(sort_key(v) for v in key))
    return [(dict(zip(fields, key)), groups[key]) for key in ordered]


def _x_values(cells: list[Cell], x: str | None) -> list:
    return sorted({c.values[x] for c in cells}, key=sort_key) if x else [None]


def _seed_counts(cells: list[Cell]) -> str:
    low, high = min(c.n for c in cells), max(c.n for c in cells)
    return f"n={low}" if low == high else f"n={low}-{high}"


X_LABELS = {"env_steps": "env steps", "grad_steps": "SGD steps"}


def curves_x_label(cells: list[Cell]) -> str:
    """'env steps', 'SGD steps' (offline runs), or both when a report mixes them."""
    keys = sorted({key for cell in cells for key in cell.curve_keys}) or ["env_steps"]
    return " / ".join(X_LABELS.get(key, key) for key in keys)


def curves(cells: list[Cell], x: str | None, others: list[str], metric: str) -> Figure:
    """Metric against env steps: one line per cell (mean over seeds, ± s.e. band), one subplot per group,
    one colour and marker per value of x in every subplot, and one legend below them all."""
    group_fields, tied = split_fields(cells, x, others)
    grouped = _grouped(cells, group_fields)
    xs = _x_values(cells, x)
    colors = colormaps[COLORMAP](np.linspace(0, COLORMAP_TOP, len(xs)))
    fig, axes = panel_figure(len(grouped))
    for ax, (group, members) in zip(axes, grouped):
        for c in members:
            steps, mean, sem = mean_curve(c.curves)
            index = xs.index(c.values[x] if x else None)
            same_x = [m for m in cells if not x or m.values[x] == c.values[x]]
            name = _label({f: c.values[f] for f in [x, *tied] if f}) or "all runs"
            ax.plot(steps, mean, color=colors[index], label=f"{name} ({_seed_counts(same_x)})", **line_style(index))
            ax.fill_between(steps, mean - sem, mean + sem, color=colors[index], alpha=BAND_ALPHA, linewidth=0)
        panel_title(ax, _label(group) or "learning curves")
        ax.set_xlabel(curves_x_label(cells))
        ax.set_ylabel(metric_label(metric))
        ax.grid(alpha=GRID_ALPHA)
        respect_range(ax, metric)
    figure_title(fig, "learning curves: mean over seeds ± s.e.")
    legend_below(fig, axes)
    return fig


def _log2_axis(x: str, xs: list) -> bool:
    return (any(word in x for word in LOG2_FIELDS)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v & (v - 1) == 0 for v in xs))


def final_vs_x(cells: list[Cell], x: str | None, others: list[str], metric: str, evaluations: str) -> Figure:
    """Each cell's final value (mean ± s.e. over seeds) against x: one line per group of the other fields,
    with the random policy's value as a dashed line of the same colour where it was logged. `evaluations`
    is how many evaluations the final values average (e.g. "5", or "3-5" when some runs had fewer)."""
    group_fields, tied = split_fields(cells, x, others)
    xs = _x_values(cells, x)
    numeric = x is not None and all(sort_key(v)[0] == 0 for v in xs)
    position = (lambda v: v) if numeric else xs.index
    fig, (ax,) = panel_figure(1)
    for index, (group, members) in enumerate(_grouped(cells, group_fields)):
        points = [position(c.values[x] if x else None) for c in members]
        errors = [0.0 if math.isnan(c.sem) else c.sem for c in members]
        style = line_style(index) | ({} if numeric else {"linestyle": "none"})  # categories have no order to join
        bars = ax.errorbar(points, [c.mean for c in members], yerr=errors, capsize=CAPSIZE,
                           label=_label(group) or "mean ± s.e. over seeds", **style)
        randoms = [c.random for c in members if c.randoms]
        if randoms:
            baseline(ax, float(np.mean(randoms)), bars.lines[0].get_color())
    baseline_entry(ax, DEPTH_BASELINE_LABELS[bool(group_fields)])
    log2 = numeric and _log2_axis(x, xs)
    if log2:
        ax.set_xscale("log", base=2)
    if not numeric or len(xs) <= MAX_TICKS:
        ax.set_xticks([position(v) for v in xs], labels=[str(v) if x else "all runs" for v in xs])
        ax.xaxis.set_minor_locator(NullLocator())
    if not numeric:
        ax.set_xlim(-0.5, len(xs) - 0.5)
    tied_note = f" (with {', '.join(tied)})" if tied else ""
    ax.set_xlabel(f"{x}{tied_note}{', log2 scale' if log2 else ''}" if x else "")
    ax.set_ylabel(metric_label(metric))
    evaluation_word = "evaluation" if evaluations == "1" else "evaluations"
    panel_title(ax, f"final value: mean of the last {evaluations} {evaluation_word}; mean ± s.e. over seeds")
    ax.grid(alpha=GRID_ALPHA)
    respect_range(ax, metric)
    legend_below(fig, [ax])
    return fig
