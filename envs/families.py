"""Registering a robot's maze family: `<robot>_<layout>` for every layout plus stitching ids.

One function for every robot with mazes (point mass, ant, humanoid), so each family offers the
same ids: `<robot>_<layout>` (incl. `_eval` and single-goal eval layouts) and
`<robot>_<layout>_gen_<cfg>` (reference.md 6.2; canonical ones listed, any other resolved by
pattern). `make_maze(layout, *, name, stitching)` builds one env.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

from . import registry, stitching, tasks
from .maze import MazeLayout, get_layout

MazeFactory = Callable[..., Any]  # (layout, *, name=..., stitching=cfg | None, **kwargs) -> env


def maze_task(layout: MazeLayout, cell_size: float, stitching_cfg: str | None = None) -> tasks.TaskSampler:
    """R cell -> uniform G cell centres, or the stitching pairs of `stitching_cfg` (stitching.py)."""
    if stitching_cfg:
        return stitching.stitching_sampler(layout, stitching_cfg, cell_size)
    return tasks.independent(tasks.choice(layout.start_centers(cell_size)), tasks.choice(layout.goal_centers(cell_size)))


def register_maze_family(
    robot: str,
    make_maze: MazeFactory,
    layouts: Iterable[str],
    stitching_layouts: Iterable[str] = stitching.CANONICAL_LAYOUTS,
) -> None:
    """Register `<robot>_<layout>` for `layouts` and the `<robot>_<layout>_gen_<cfg>` family.

    Canonical stitching ids are listed for `stitching_layouts`; any other corridor layout and
    config resolves by pattern.
    """
    for layout in layouts:
        registry.register(f"{robot}_{layout}", functools.partial(make_maze, layout, name=f"{robot}_{layout}"))
    for layout in stitching_layouts:
        for cfg in stitching.CANONICAL_CONFIGS:
            name = f"{robot}_{layout}_gen_{cfg}"
            registry.register(name, functools.partial(make_maze, layout, name=name, stitching=cfg))

    def resolve(match) -> Callable[..., Any]:
        layout, cfg = match["layout"], match["cfg"]
        try:
            stitching.stitching_pairs(get_layout(layout), cfg)  # fail here, naming the problem
        except (KeyError, ValueError) as err:
            raise ValueError(f"environment {match.group(0)!r}: {err.args[0]}") from None
        return functools.partial(make_maze, layout, name=match.group(0), stitching=cfg)

    registry.register_pattern(f"{robot}_<layout>_gen_<cfg>", stitching.id_pattern(robot), resolve)
