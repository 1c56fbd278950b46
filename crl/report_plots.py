"""Figures of `crl report`: learning curves per cell, and the final metric against one field (the depth plot).

Drawn on matplotlib's Agg canvas without pyplot, so no display and no global figure state are involved.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from crl.report import Cell, sort_key, mean_curve

PANEL_INCHES = (5.5, 3.8)  # one subplot
MAX_COLUMNS = 3
DPI = 120
BAND_ALPHA = 0.2  # shading of the ± s.e. band
CAPSIZE = 3
COLORMAP, COLORMAP_TOP = "viridis", 0.85  # curves coloured by x in order; the top of viridis is too pale to read
LOG2_FIELDS = ("depth", "width")  # fields drawn on a log2 axis when every value is a power of two
MAX_TICKS = 12  # label every x value up to this many


def panel_figure(panels: int) -> tuple[Figure, list]:
    columns = min(MAX_COLUMNS, panels)
    rows = math.ceil(panels / columns)
    fig = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, columns, squeeze=False).ravel())
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


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


def curves(cells: list[Cell], x: str | None, others: list[str], metric_label: str) -> Figure:
    """Metric against env steps: one line per cell (mean over seeds, ± s.e. band), one subplot per group."""
    group_fields, tied = split_fields(cells, x, others)
    grouped = _grouped(cells, group_fields)
    xs = _x_values(cells, x)
    colors = colormaps[COLORMAP](np.linspace(0, COLORMAP_TOP, len(xs)))
    fig, axes = panel_figure(len(grouped))
    for ax, (group, members) in zip(axes, grouped):
        for c in members:
            steps, mean, sem = mean_curve(c.curves)
            name = _label({f: c.values[f] for f in [x, *tied] if f}) or "all runs"
            color = colors[xs.index(c.values[x] if x else None)]
            ax.plot(steps, mean, color=color, label=f"{name} (n={c.n})")
            ax.fill_between(steps, mean - sem, mean + sem, color=color, alpha=BAND_ALPHA, linewidth=0)
        ax.set_title(_label(group) or "learning curves", fontsize="medium")
        ax.set_xlabel("env steps")
        ax.set_ylabel(metric_label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("mean over seeds ± s.e.", fontsize="small")
    return fig


def _log2_axis(x: str, xs: list) -> bool:
    return (any(word in x for word in LOG2_FIELDS)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v & (v - 1) == 0 for v in xs))


def final_vs_x(cells: list[Cell], x: str | None, others: list[str], metric_label: str, last: int) -> Figure:
    """Each cell's final value (mean ± s.e. over seeds) against x: one line per group of the other fields,
    with the random policy's value as a dashed line of the same colour where it was logged."""
    group_fields, tied = split_fields(cells, x, others)
    xs = _x_values(cells, x)
    numeric = x is not None and all(sort_key(v)[0] == 0 for v in xs)
    position = (lambda v: v) if numeric else xs.index
    fig, (ax,) = panel_figure(1)
    for group, members in _grouped(cells, group_fields):
        points = [position(c.values[x] if x else None) for c in members]
        errors = [0.0 if math.isnan(c.sem) else c.sem for c in members]
        bars = ax.errorbar(points, [c.mean for c in members], yerr=errors, marker="o", capsize=CAPSIZE,
                           linestyle="-" if numeric else "none",  # categories have no order to join
                           label=_label(group) or "mean ± s.e. over seeds")
        randoms = [c.random for c in members if c.randoms]
        if randoms:
            ax.axhline(float(np.mean(randoms)), color=bars.lines[0].get_color(), linestyle="--", linewidth=1,
                       label=f"random policy ({_label(group)})" if group else "random policy")
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
    ax.set_ylabel(metric_label)
    ax.set_title(f"final value: mean of the last {last} evaluations; mean ± s.e. over seeds", fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
