"""The viz figures: Q maps (one or several runs on one colour scale), rollouts and representation PCA.

Each function takes computed data and returns a matplotlib Figure; nothing here runs a network.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from crl.viz import maze_draw
from crl.viz.qmap import QMap, energy_label
from crl.viz.representations import Projection
from crl.viz.run_view import RunView

MAZE_PANEL_INCHES = (5.2, 4.8)
PCA_PANEL_INCHES = (5.5, 5.0)
Q_COLORMAP = "viridis"
SUCCESS_COLOUR, FAILURE_COLOUR = "tab:green", "tab:red"
PATH_WIDTH, PATH_ALPHA = 1.4, 0.8
TIME_COLORMAP, DISTANCE_COLORMAP = "plasma", "viridis_r"
POINT_SIZE = 6


def q_maps(views: list[RunView], maps: list[QMap], shared_scale: bool = True):
    """One panel per run; with shared_scale every panel uses the same colour range (the comparison the paper draws)."""
    fig, axes = maze_draw.figure(len(maps), MAZE_PANEL_INCHES)
    ranges = [(np.nanmin(m.q), np.nanmax(m.q)) for m in maps]
    shared = Normalize(min(r[0] for r in ranges), max(r[1] for r in ranges))
    action = "pi(s, g) = tanh(mu)" if maps[0].best_of == 0 else f"best of {maps[0].best_of} sampled actions"
    for ax, view, qm, (low, high) in zip(axes, views, maps, ranges):
        maze = view.maze("crl viz q")
        norm = shared if shared_scale else Normalize(low, high)
        image = ax.imshow(qm.q, extent=maze_draw.extent(maze), cmap=Q_COLORMAP, norm=norm, interpolation="nearest",
                          zorder=1)
        maze_draw.draw_walls(ax, maze)
        maze_draw.draw_starts(ax, maze)
        maze_draw.draw_goal(ax, qm.goal)
        maze_draw.label_axes(ax, view.length_unit)
        ax.set_title(view.title(f"Q map, goal at ({qm.goal[0]:g}, {qm.goal[1]:g}), a = {action}\n"
                                f"rank correlation with -path distance {qm.path_correlation:.2f}"), fontsize=9)
        if not shared_scale or ax is axes[-1]:
            fig.colorbar(image, ax=axes if shared_scale else ax, label=energy_label(view.cfg.energy, view.cfg.algorithm), shrink=0.85)
    axes[0].legend(loc="lower left", fontsize=8, framealpha=0.8)
    return fig


def rollouts(view: RunView, paths: list[np.ndarray], goals: np.ndarray, reached: np.ndarray, time_at_goal: np.ndarray):
    """Top-down paths of the eval episodes, green when the episode reached the goal, red otherwise."""
    maze = view.maze("crl viz rollouts")
    fig, (ax,) = maze_draw.figure(1, MAZE_PANEL_INCHES)
    maze_draw.draw_walls(ax, maze)
    for path, goal, ok in zip(paths, goals, reached):
        colour = SUCCESS_COLOUR if ok else FAILURE_COLOUR
        ax.plot(path[:, 1], path[:, 0], color=colour, lw=PATH_WIDTH, alpha=PATH_ALPHA, zorder=4)
        ax.scatter([path[0, 1]], [path[0, 0]], color=colour, s=14, zorder=5)
        ax.scatter([goal[1]], [goal[0]], marker="*", s=160, color=colour, edgecolors="black", linewidths=0.6, zorder=6)
    maze_draw.label_axes(ax, view.length_unit)
    n, k = len(paths), int(np.sum(reached))
    ax.set_title(view.title(f"{n} eval episodes: {k} reached the goal, mean time at goal "
                            f"{float(np.mean(time_at_goal)):.1f} steps"), fontsize=9)
    ax.legend(handles=[Line2D([], [], color=SUCCESS_COLOUR, label="reached the goal"),
                       Line2D([], [], color=FAILURE_COLOUR, label="never at the goal"),
                       Line2D([], [], ls="", marker="o", color="0.4", label="start"),
                       Line2D([], [], ls="", marker="*", color="0.4", markersize=11, label="goal")],
              loc="lower left", fontsize=8, framealpha=0.8)
    return fig


def representation(view: RunView, proj: Projection):
    """3-D PCA of phi(s, a) along trajectories, coloured by time step and by distance to the goal (Fig. 10)."""
    fig, axes = maze_draw.figure(2, PCA_PANEL_INCHES, projection="3d")
    colourings = ((proj.time, TIME_COLORMAP, "time step t"),
                  (proj.distance, DISTANCE_COLORMAP, f"distance to goal [{view.length_unit}]"))
    explained = ", ".join(f"{100 * v:.0f}%" for v in proj.explained_variance_ratio)
    for ax, (values, cmap, label) in zip(axes, colourings):
        points = ax.scatter(*proj.phi.T, c=values, cmap=cmap, s=POINT_SIZE, depthshade=False)
        ax.scatter(*proj.psi.T, marker="*", s=220, c="gold", edgecolors="black", label="psi(goal)")
        for k in range(3):
            getattr(ax, f"set_{'xyz'[k]}label")(f"PC {k + 1}")
        fig.colorbar(points, ax=ax, label=label, shrink=0.6, pad=0.1)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(view.title(f"PCA of phi(s, a) along {proj.episodes} eval episodes (variance explained {explained})"),
                 fontsize=9)
    return fig
