"""Stitching tasks (reference.md 6.2, paper Fig. 11): train on short hops, evaluate on long ones.

A corridor layout (every free cell on one path from its single R cell) orders its cells by their
distance along the path. A config string such as `1f2f3f` lists distance classes: `<k>f` is the
pairs (start, goal) with the goal k cells further along the path than the start (away from R),
`<k>b` the same pairs walked backwards. Every class gets the same total probability and is
uniform over its pairs; start and goal are exact cell centres. Ids read
`<robot>_<layout>_gen_<cfg>`, e.g. `ant_u_maze_gen_1f2f3f`; evaluate on `<robot>_<layout>_eval`.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from . import tasks
from .maze import Cell, MazeLayout

CLASS_PATTERN = re.compile(r"(\d+)([fb])")
FORWARD, BACKWARD = "f", "b"
# Registered by default for every robot with mazes; any other cfg is resolved by id pattern.
CANONICAL_CONFIGS = ("1f2f3f",)
CANONICAL_LAYOUTS = ("u_maze", "u4_maze", "u5_maze")


@dataclasses.dataclass(frozen=True)
class DistanceClass:
    cells: int  # k: cells between start and goal along the path
    direction: str  # FORWARD or BACKWARD


def parse_config(cfg: str) -> tuple[DistanceClass, ...]:
    """`1f2f3f` -> classes (1, f), (2, f), (3, f); ValueError naming the problem otherwise."""
    classes = tuple(DistanceClass(int(k), d) for k, d in CLASS_PATTERN.findall(cfg))
    if not cfg or "".join(f"{c.cells}{c.direction}" for c in classes) != cfg:
        raise ValueError(
            f"stitching config {cfg!r} is not a sequence of <cells><f|b> classes, e.g. '1f2f3f' "
            "(goal 1, 2 or 3 cells further along the corridor)"
        )
    if any(c.cells < 1 for c in classes) or len(set(classes)) != len(classes):
        raise ValueError(f"stitching config {cfg!r}: distances must be >= 1 and each class listed once")
    return classes


def corridor_path(layout: MazeLayout) -> tuple[Cell, ...]:
    """The free cells of a corridor layout ordered from its R cell; ValueError if not a corridor."""
    if len(layout.starts) != 1:
        raise ValueError(f"stitching needs a layout with one R cell; {layout.name!r} has {len(layout.starts)}")
    dist = layout.shortest_path_lengths(layout.starts[0])
    free = list(zip(*np.nonzero(layout.free)))
    order = sorted(free, key=lambda c: dist[c])
    steps = [int(dist[c]) for c in order]
    if min(steps) < 0 or steps != list(range(len(order))):
        raise ValueError(
            f"layout {layout.name!r} is not a single corridor (some cells are unreachable or branch); "
            "stitching distances along the path are defined only for corridor layouts such as u_maze, u4_maze, u5_maze"
        )
    return tuple((int(i), int(j)) for i, j in order)


def stitching_pairs(layout: MazeLayout, cfg: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(start cells (n, 2), goal cells (n, 2), signed path offsets (n,), weights (n,)) for `cfg`.

    Offsets are goal index - start index along the path; weights give each class equal mass.
    """
    path = corridor_path(layout)
    n = len(path)
    starts, goals, offsets, weights = [], [], [], []
    classes = parse_config(cfg)
    for c in classes:
        if c.cells >= n:
            raise ValueError(f"stitching class {c.cells}{c.direction} does not fit {layout.name!r}: its path has {n} cells")
        pairs = [(a, a + c.cells) for a in range(n - c.cells)]
        if c.direction == BACKWARD:
            pairs = [(b, a) for a, b in pairs]
        for a, b in pairs:
            starts.append(path[a])
            goals.append(path[b])
            offsets.append(b - a)
            weights.append(1.0 / (len(classes) * len(pairs)))
    return np.asarray(starts), np.asarray(goals), np.asarray(offsets), np.asarray(weights)


def stitching_sampler(layout: MazeLayout, cfg: str, cell_size: float) -> tasks.TaskSampler:
    """TaskSampler drawing (start, goal) cell centres of `cfg` with equal mass per class."""
    starts, goals, _, weights = stitching_pairs(layout, cfg)
    return tasks.weighted_pairs(layout.cell_centers(tuple(map(tuple, starts)), cell_size),
                                layout.cell_centers(tuple(map(tuple, goals)), cell_size), weights)


def id_pattern(robot: str) -> re.Pattern:
    """Regex matching `<robot>_<layout>_gen_<cfg>` with groups layout and cfg."""
    return re.compile(rf"{re.escape(robot)}_(?P<layout>\w+?)_gen_(?P<cfg>[0-9fb]+)")
