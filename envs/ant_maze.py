"""Ant mazes on brax's spring backend (reference.md section 6, row `ant_<maze>`; layouts 6.1).

`ant_<layout>` = the goal-conditioned ant of `ant.py` (GoalAnt, reused as-is) with a maze built
as data:
- Model: brax's packaged ant.xml plus one box geom per *merged* wall rectangle
  (`MazeLayout.wall_boxes(cell_size, merge=True)`: identical collisions, fewer boxes; spring/MJX
  collision has no broadphase, so every box costs every step). Cell (i, j) is centred at world
  (x = i * s, y = j * s); walls are centred at height 0.25 s with half height 0.25 s
  (s = CELL_SIZE = 4.0: walls 2 m high).
- Contacts (walls.py; MuJoCo filtering: geoms a, b collide iff contype_a & conaffinity_b or
  contype_b & conaffinity_a; parent/child and world/world pairs are excluded). The packaged
  ant lets only the feet (contype 1) touch the floor (conaffinity 1). Here the walls get
  contype 0, conaffinity 1 | 2, and the torso sphere plus the four hip capsules get
  contype 2, conaffinity 0 (channel 2). So feet, torso and hips collide with every
  wall (the torso cannot enter a wall even when the ant topples), while the body geoms still do
  not touch the floor or each other (unchanged ant dynamics away from walls), and walls do not
  touch the floor. Sphere-box and capsule-box contacts are handled by MJX's collision driver,
  which brax spring calls (brax.contact.get -> mjx.collision). Unlike the paper's model, the
  feet do not collide with the torso, hips or each other (the paper sets conaffinity 1 on the
  feet too, which adds those self-contacts); the ant away from walls is exactly `ant`.
- Start = an R cell centre (uniform over R cells) + the ant's U(-0.1, 0.1) reset noise on the
  root xy (GoalAnt adds it to every qpos entry), so the torso starts at the R cell.
  Goal = uniform over the G cell centres, exact.
- Stitching ids `ant_<layout>_gen_<cfg>` (stitching.py, reference 6.2): the same model with
  (start, goal) pairs a given number of cells apart along the corridor.
- Everything else as `ant`: state 29, goal idx (0, 1), success 0.5 (easy 2.0), termination
  when torso z leaves [0.2, 1.0], control dt 0.005 x 10 = 0.05 s, episode 1000.
"""
from __future__ import annotations

import functools

from .ant import GoalAnt, ant_xml
from .families import maze_task, register_maze_family
from .maze import LAYOUTS, MazeLayout, get_layout
from .walls import add_maze_walls

CELL_SIZE = 4.0
ANT_MAZE_LAYOUTS = tuple(LAYOUTS)  # every layout of reference 6.1 (maze.py); hardest_maze is its own eval layout
# Body geoms of brax's ant.xml that collide with walls (besides the feet, which already do):
# the torso sphere and the four hip capsules (aux_k_geom), as the paper's ant_maze.xml
# (conaffinity 1 on exactly these). Adding the four upper-leg capsules too was measured 1.4x
# slower (ant_u_maze, 256 envs, CPU: 3.3K -> 2.3K env steps/s) for no effect on the torso.
WALL_COLLIDING_BODY_GEOMS = ("torso_geom", "aux_1_geom", "aux_2_geom", "aux_3_geom", "aux_4_geom")


def maze_xml(layout: MazeLayout, cell_size: float = CELL_SIZE, merge: bool = True) -> str:
    """brax's ant.xml with the layout's wall boxes and torso/hip wall contacts (walls.py)."""
    return add_maze_walls(ant_xml(), layout, cell_size, WALL_COLLIDING_BODY_GEOMS, merge)


class AntMaze(GoalAnt):
    """GoalAnt in a maze layout: the model and the (start, goal) sampler come from the layout.

    stitching=cfg (e.g. '1f2f3f') draws (start, goal) pairs of stitching.py instead of R -> G.
    """

    def __init__(self, layout: str | MazeLayout = "u_maze", *, name: str | None = None,
                 cell_size: float = CELL_SIZE, merge_walls: bool = True, stitching: str | None = None, **kwargs):
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.cell_size = float(cell_size)
        task = maze_task(self.layout, self.cell_size, stitching)
        # GoalAnt adds its U(-0.1, 0.1) reset noise to every qpos entry, the root xy included
        super().__init__(
            name=name or f"ant_{self.layout.name}",
            xml=_cached_maze_xml(self.layout, self.cell_size, merge_walls),
            task_sampler=task,
            **kwargs,
        )


@functools.lru_cache(maxsize=None)
def _cached_maze_xml_by_name(name: str, cell_size: float, merge: bool) -> str:
    return maze_xml(get_layout(name), cell_size, merge)


def _cached_maze_xml(layout: MazeLayout, cell_size: float, merge: bool) -> str:
    try:
        if get_layout(layout.name) is layout:
            return _cached_maze_xml_by_name(layout.name, cell_size, merge)
    except KeyError:
        pass
    return maze_xml(layout, cell_size, merge)


def register_all(register) -> None:
    del register  # the maze family registers through registry directly
    register_maze_family("ant", AntMaze, ANT_MAZE_LAYOUTS)
