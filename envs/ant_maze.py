"""Ant mazes on brax's spring backend (reference.md section 6, row `ant_<maze>`; layouts 6.1).

`ant_<layout>` = the goal-conditioned ant of `ant.py` (GoalAnt, reused as-is) with a maze built
as data:
- Model: brax's packaged ant.xml plus one box geom per *merged* wall rectangle
  (`MazeLayout.wall_boxes(cell_size, merge=True)`: identical collisions, fewer boxes; spring/MJX
  collision has no broadphase, so every box costs every step). Cell (i, j) is centred at world
  (x = i * s, y = j * s); walls are centred at height 0.25 s with half height 0.25 s
  (s = CELL_SIZE = 4.0: walls 2 m high).
- Contacts (MuJoCo filtering: geoms a, b collide iff contype_a & conaffinity_b or
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
- Everything else as `ant`: state 29, goal idx (0, 1), success 0.5 (easy 2.0), termination
  when torso z leaves [0.2, 1.0], control dt 0.005 x 10 = 0.05 s, episode 1000.
"""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import numpy as np

from .ant import GoalAnt, Sampler, ant_xml
from .maze import LAYOUTS, MazeLayout, get_layout

CELL_SIZE = 4.0
# Layouts registered as `ant_<layout>` (reference.md 6.1); hardest_maze is its own eval layout.
ANT_MAZE_LAYOUTS = tuple(LAYOUTS)  # every layout of reference 6.1 (maze.py); hardest_maze is its own eval layout

# Collision channels (bit masks). Channel 1 is the packaged ant's feet <-> floor channel.
FLOOR_CHANNEL = 1
BODY_CHANNEL = 2
WALL_CONTYPE = 0
WALL_CONAFFINITY = FLOOR_CHANNEL | BODY_CHANNEL  # touched by the feet (contype 1) and the body (contype 2)
# Body geoms of brax's ant.xml that collide with walls (besides the feet, which already do):
# the torso sphere and the four hip capsules (aux_k_geom), as the paper's ant_maze.xml
# (conaffinity 1 on exactly these). Adding the four upper-leg capsules too was measured 1.4x
# slower (ant_u_maze, 256 envs, CPU: 3.3K -> 2.3K env steps/s) for no effect on the torso.
WALL_COLLIDING_BODY_GEOMS = ("torso_geom", "aux_1_geom", "aux_2_geom", "aux_3_geom", "aux_4_geom")
WALL_RGBA = "0.7 0.5 0.3 1.0"


def maze_xml(layout: MazeLayout, cell_size: float = CELL_SIZE, merge: bool = True) -> str:
    """brax's ant.xml with the layout's wall boxes added to the worldbody and body-wall contacts on."""
    root = ET.fromstring(ant_xml())
    worldbody = root.find("worldbody")
    geoms = {g.get("name"): g for g in root.iter("geom")}
    for name in WALL_COLLIDING_BODY_GEOMS:
        if name not in geoms:
            raise ValueError(f"brax ant.xml has no geom {name!r}; cannot enable its wall contacts")
        geoms[name].set("contype", str(BODY_CHANNEL))
        geoms[name].set("conaffinity", "0")
    centres, halves = layout.wall_boxes(cell_size, merge=merge)
    for k, (c, h) in enumerate(zip(centres, halves)):
        ET.SubElement(
            worldbody,
            "geom",
            name=f"wall_{k}",
            type="box",
            pos=" ".join(f"{float(v):g}" for v in c),
            size=" ".join(f"{float(v):g}" for v in h),
            contype=str(WALL_CONTYPE),
            conaffinity=str(WALL_CONAFFINITY),
            rgba=WALL_RGBA,
        )
    return ET.tostring(root, encoding="unicode")


def cell_choice_sampler(centres: np.ndarray) -> Sampler:
    """key -> one of the rows of `centres` (n, 2), uniformly."""
    table = jnp.asarray(np.asarray(centres, np.float32).reshape(-1, 2))

    def sample(key: jax.Array) -> jax.Array:
        return table[jax.random.randint(key, (), 0, table.shape[0])]

    return sample


class AntMaze(GoalAnt):
    """GoalAnt in a maze layout: the model and the start/goal samplers come from the layout."""

    def __init__(self, layout: str | MazeLayout = "u_maze", *, name: str | None = None,
                 cell_size: float = CELL_SIZE, merge_walls: bool = True, **kwargs):
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.cell_size = float(cell_size)
        super().__init__(
            name=name or f"ant_{self.layout.name}",
            xml=_cached_maze_xml(self.layout, self.cell_size, merge_walls),
            # GoalAnt adds U(-reset_noise, reset_noise) to the root xy: start = R centre + U(-0.1, 0.1)
            start_sampler=cell_choice_sampler(self.layout.start_centers(self.cell_size)),
            goal_sampler=cell_choice_sampler(self.layout.goal_centers(self.cell_size)),
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
    for layout in ANT_MAZE_LAYOUTS:
        register(f"ant_{layout}", functools.partial(AntMaze, layout))
