"""Humanoid mazes (reference.md section 6, row `humanoid_<maze>`; layouts 6.1).

`humanoid_<layout>` = the goal-conditioned humanoid of `humanoid.py` (GoalHumanoid, reused as-is)
with a maze built as data:
- Model: humanoid.py's model (paper contacts, target body in the paper layout) plus one box geom
  per merged wall rectangle (`MazeLayout.wall_boxes(2.0)`: cell (i, j) centred at (2i, 2j),
  walls 1 m high, as the paper's maze_height 0.5 x cell 2.0). Walls get contype 0, conaffinity
  1 | 2 (walls.py): every geom that touches the floor touches the walls. With the paper's
  contacts (humanoid.py: contype 1 on every body geom, as the paper's humanoid.xml) that is the
  whole body, so limbs and torso cannot enter a wall; the humanoid can still climb or vault
  over the 1 m walls. `contacts='feet'` gives brax's packaged model, where only the feet touch
  floor and walls (then legs, arms and pelvis pass into walls). No extra `body_geoms`.
- Start = the R cell centre exactly (root xy set, no noise); goal = uniform over the G cell
  centres, z = GOAL_Z = 1.25 (the paper's fixed target height).
- Control dt = 0.0015 x 10 = 0.015 s (the paper's humanoid_maze.py on spring).
- Stitching ids `humanoid_<layout>_gen_<cfg>` (stitching.py, reference 6.2).
- Clean state layout (humanoid.py): robot `humanoid_clean`, ids `humanoid_clean_<layout>` and
  `humanoid_clean_<layout>_gen_<cfg>`, from the same factory with state_layout='clean'.
- Everything else as `humanoid`: state 268 (clean 246), goal idx (0, 1, 2), success 0.5 (easy
  2.0), termination when torso z leaves [1.0, 2.0], episode 1000.
"""
from __future__ import annotations

import functools

from .families import maze_task, register_maze_family
from .humanoid import CLEAN_LAYOUT, DEFAULT_CONTACTS, PAPER_LAYOUT, GoalHumanoid, humanoid_xml
from .maze import MazeLayout, get_layout
from .walls import add_maze_walls

CELL_SIZE = 2.0
MAZE_PHYSICS_TIMESTEP = 0.0015
MAZE_N_FRAMES = 10  # control dt = 0.0015 * 10 = 0.015 s
HUMANOID_MAZE_LAYOUTS = ("u_maze", "u_maze_eval", "big_maze", "big_maze_eval", "hardest_maze")
STITCHING_LAYOUTS = ("u_maze",)
WALL_COLLIDING_BODY_GEOMS: tuple[str, ...] = ()  # every floor-touching geom already touches walls
ROBOTS = {PAPER_LAYOUT: "humanoid", CLEAN_LAYOUT: "humanoid_clean"}  # id prefix per state layout


@functools.lru_cache(maxsize=None)
def _maze_xml_by_name(layout_name: str, cell_size: float, state_layout: str, contacts: str) -> str:
    return maze_xml(get_layout(layout_name), cell_size, state_layout, contacts)


def maze_xml(layout: MazeLayout, cell_size: float = CELL_SIZE, state_layout: str = PAPER_LAYOUT,
             contacts: str = DEFAULT_CONTACTS) -> str:
    """humanoid.py's model with the layout's (merged) wall boxes."""
    return add_maze_walls(humanoid_xml(state_layout, contacts), layout, cell_size, WALL_COLLIDING_BODY_GEOMS)


class HumanoidMaze(GoalHumanoid):
    """GoalHumanoid in a maze layout: the model and the (start, goal) sampler come from the layout.

    stitching=cfg (e.g. '1f2f3f') draws (start, goal) pairs of stitching.py instead of R -> G.
    """

    def __init__(self, layout: str | MazeLayout = "u_maze", *, name: str | None = None,
                 cell_size: float = CELL_SIZE, stitching: str | None = None,
                 state_layout: str = PAPER_LAYOUT, contacts: str = DEFAULT_CONTACTS,
                 timestep: float = MAZE_PHYSICS_TIMESTEP, n_frames: int = MAZE_N_FRAMES, **kwargs):
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.cell_size = float(cell_size)
        task = maze_task(self.layout, self.cell_size, stitching)
        if isinstance(layout, str):
            xml = _maze_xml_by_name(layout, self.cell_size, state_layout, contacts)
        else:
            xml = maze_xml(self.layout, self.cell_size, state_layout, contacts)
        super().__init__(
            name=name or f"{ROBOTS.get(state_layout, 'humanoid')}_{self.layout.name}",
            xml=xml,
            state_layout=state_layout,
            task_sampler=task,
            timestep=timestep,
            n_frames=n_frames,
            **kwargs,
        )


def register_all(register) -> None:
    del register  # the maze families register through registry directly
    # clean first: its id pattern `humanoid_clean_<layout>_gen_<cfg>` must be tried before the
    # paper one (`humanoid_<layout>_gen_<cfg>` would read the layout as 'clean_<layout>')
    register_maze_family(ROBOTS[CLEAN_LAYOUT], functools.partial(HumanoidMaze, state_layout=CLEAN_LAYOUT),
                         HUMANOID_MAZE_LAYOUTS, stitching_layouts=STITCHING_LAYOUTS)
    register_maze_family(ROBOTS[PAPER_LAYOUT], HumanoidMaze, HUMANOID_MAZE_LAYOUTS, stitching_layouts=STITCHING_LAYOUTS)
