"""Top-down maze drawing shared by every viz figure.

The picture follows the layout strings of `crl.envs.maze`: row i (world x) runs down the page and
column j (world y) across it, so a figure looks like the layout it was drawn from.
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

WALL_COLOUR = "0.25"
START_STYLE = dict(marker="o", s=90, facecolors="none", edgecolors="white", linewidths=2, zorder=5)
GOAL_STYLE = dict(marker="*", s=320, c="gold", edgecolors="black", linewidths=1, zorder=6)
DPI = 120


def figure(panels: int, inches: tuple[float, float], projection: str | None = None) -> tuple[Figure, list]:
    """A Figure on the Agg canvas (no display, no pyplot state) with `panels` axes in one row."""
    fig = Figure(figsize=(inches[0] * panels, inches[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, panels, k + 1, projection=projection) for k in range(panels)]
    return fig, axes


def extent(maze) -> tuple[float, float, float, float]:
    """imshow extent (left, right, bottom, top) in world units: y across, x down."""
    low, high = maze.layout.world_bounds(maze.cell_size)
    return float(low[1]), float(high[1]), float(high[0]), float(low[0])


def draw_walls(ax, maze) -> None:
    s = maze.cell_size
    for i, j in zip(*np.nonzero(maze.layout.walls)):
        ax.add_patch(Rectangle(((j - 0.5) * s, (i - 0.5) * s), s, s, color=WALL_COLOUR, zorder=3))
    left, right, bottom, top = extent(maze)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal")


def draw_starts(ax, maze, label: str = "start") -> None:
    starts = maze.layout.start_centers(maze.cell_size)
    ax.scatter(starts[:, 1], starts[:, 0], label=label, **START_STYLE)


def draw_goal(ax, goal_xy, label: str = "goal") -> None:
    ax.scatter([goal_xy[1]], [goal_xy[0]], label=label, **GOAL_STYLE)


def label_axes(ax, unit: str) -> None:
    ax.set_xlabel(f"world y [{unit}]")
    ax.set_ylabel(f"world x [{unit}]")
