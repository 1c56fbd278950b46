"""Physics-free point-mass mazes in pure JAX (backend 'jax'): the cheap environment family.

State = xy position (state_dim 2, goal_indices (0, 1)); obs = concat(xy, goal xy).
Action in [-1, 1]^2 (clipped) scaled by MAX_STEP per step, dt = DT = 1.0 (one step = one time
unit; there is no physics). Movement is axis-separated: first x, then y; an axis move whose
destination lies in a wall cell or outside the grid is rejected (that coordinate stays put).
MAX_STEP < cell_size / 2, so a move can never skip over a wall cell (no tunnelling). Geometry as
`maze.py`: cell (i, j) centre at (x = i * s, y = j * s). Start = an R cell centre + uniform
noise of +-START_NOISE * s per axis; goal = a uniformly drawn G cell centre (exact). No
termination. Episode length: at least EPISODE_LENGTH and at least PATH_TIME_FACTOR x the
straight-run time to the farthest goal along the shortest cell path (rounded up to a multiple
of EPISODE_LENGTH_ROUNDING), so every goal is reachable well within an episode.
Stitching ids `point_<layout>_gen_<cfg>` (stitching.py, reference 6.2) draw (start, goal) pairs a
given number of cells apart along the corridor, both at exact cell centres (no start noise).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State

from .families import maze_task, register_maze_family
from .maze import LAYOUTS, MazeLayout, get_layout
from .spec import EnvSpec, goal_metrics
from .walls import add_maze_walls

CELL_SIZE = 1.0
MAX_STEP = 0.2  # max displacement per axis per step, in world units (0.2 cells)
START_NOISE = 0.1  # start = R centre + U(-0.1, 0.1) * cell size per axis
DT = 1.0  # physics-free: one step is one time unit
SUCCESS_RADIUS = 0.25  # quarter of a cell
SUCCESS_EASY_RADIUS = 0.5  # within half a cell (same cell-relative ratio as the ant's 2.0 m / 4 m)
EPISODE_LENGTH = 100  # minimum episode length
PATH_TIME_FACTOR = 3.0  # episode >= 3 x (farthest goal's shortest path / MAX_STEP)
EPISODE_LENGTH_ROUNDING = 50
BACKEND = "jax"
RENDER_POINT_RADIUS = 0.15  # the point's sphere in renders, in cells (it has no size in the dynamics)
# The render model: a floor and the point on two slide joints (x, y); qpos = the point's xy.
RENDER_XML = """<mujoco model="point_maze">
  <worldbody>
    <light pos="{cx} {cy} 10" dir="0 0 -1" directional="true"/>
    <geom name="floor" type="plane" pos="{cx} {cy} 0" size="{hx} {hy} 0.1" rgba="0.85 0.85 0.85 1"/>
    <body name="point" pos="0 0 {r}">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <geom name="point" type="sphere" size="{r}" rgba="0.2 0.4 1.0 1"/>
    </body>
  </worldbody>
</mujoco>"""

# Layouts registered as `point_<layout>` (reference.md 6.1); hardest_maze is its own eval layout.
POINT_MAZE_LAYOUTS = tuple(LAYOUTS)  # every layout of reference 6.1 (maze.py); hardest_maze is its own eval layout


def default_episode_length(layout: MazeLayout, cell_size: float = CELL_SIZE, max_step: float = MAX_STEP) -> int:
    """max(EPISODE_LENGTH, PATH_TIME_FACTOR x steps to the farthest goal), rounded up."""
    farthest = 0
    for start in layout.starts:
        dist = layout.shortest_path_lengths(start)
        farthest = max(farthest, max(int(dist[g]) for g in layout.goals))
    need = PATH_TIME_FACTOR * farthest * cell_size / max_step
    rounded = EPISODE_LENGTH_ROUNDING * math.ceil(need / EPISODE_LENGTH_ROUNDING)
    return max(EPISODE_LENGTH, rounded)


class PointMaze(Env):
    """A point mass in a maze layout; one class for every layout (see module docstring)."""

    def __init__(
        self,
        layout: str | MazeLayout = "u_maze",
        *,
        name: str | None = None,
        cell_size: float = CELL_SIZE,
        max_step: float = MAX_STEP,
        start_noise: float = START_NOISE,
        success_radius: float = SUCCESS_RADIUS,
        success_easy_radius: float = SUCCESS_EASY_RADIUS,
        episode_length: int | None = None,
        stitching: str | None = None,
    ):
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        if not 0.0 < max_step < 0.5 * cell_size:
            raise ValueError(f"max_step must be in (0, cell_size / 2) to prevent tunnelling, got {max_step}")
        self.cell_size = float(cell_size)
        self.max_step = float(max_step)
        self.start_noise = 0.0 if stitching else float(start_noise)
        self._walls = np.asarray(self.layout.walls, bool)
        self._task_sampler = maze_task(self.layout, cell_size, stitching)
        if episode_length is None:
            episode_length = default_episode_length(self.layout, cell_size, max_step)
        self.spec = EnvSpec(
            name=name or f"point_{self.layout.name}",
            backend=BACKEND,
            state_dim=2,
            goal_indices=(0, 1),
            action_size=2,
            episode_length=int(episode_length),
            dt=DT,
            success_radius=float(success_radius),
            success_easy_radius=float(success_easy_radius),
        )

    # --- brax Env interface -------------------------------------------------------------------
    @property
    def observation_size(self) -> int:
        return self.spec.obs_dim

    @property
    def action_size(self) -> int:
        return self.spec.action_size

    @property
    def backend(self) -> str:
        return BACKEND

    @property
    def dt(self) -> float:
        return DT

    def reset(self, rng: jax.Array) -> State:
        k_task, k_noise = jax.random.split(rng)
        start, goal = self._task_sampler(k_task)
        noise = self.start_noise * self.cell_size
        pos = start + jax.random.uniform(k_noise, (2,), minval=-noise, maxval=noise)
        dist, metrics = self._metrics(pos, goal)
        return State(
            pipeline_state=pos,
            obs=jnp.concatenate([pos, goal]),
            reward=-dist,
            done=jnp.zeros(()),
            metrics=metrics,
            info={"goal": goal},
        )

    def step(self, state: State, action: jax.Array) -> State:
        delta = jnp.clip(action, -1.0, 1.0) * self.max_step
        pos = state.pipeline_state
        x_moved = pos.at[0].add(delta[0])
        pos = jnp.where(self.blocked(x_moved), pos, x_moved)
        y_moved = pos.at[1].add(delta[1])
        pos = jnp.where(self.blocked(y_moved), pos, y_moved)
        goal = state.info["goal"]
        dist, metrics = self._metrics(pos, goal)
        return state.replace(
            pipeline_state=pos,
            obs=jnp.concatenate([pos, goal]),
            reward=-dist,
            done=jnp.zeros_like(state.done),
            metrics=metrics,
        )

    # --- geometry ------------------------------------------------------------------------------
    def cell_of(self, pos: jax.Array) -> jax.Array:
        """Integer cell (i, j) containing xy `pos` (may lie outside the grid)."""
        return jnp.floor(pos / self.cell_size + 0.5).astype(jnp.int32)

    def blocked(self, pos: jax.Array) -> jax.Array:
        """True if xy `pos` is in a wall cell or outside the grid."""
        cell = self.cell_of(pos)
        shape = jnp.asarray(self._walls.shape, jnp.int32)
        inside = jnp.all((cell >= 0) & (cell < shape))
        safe = jnp.clip(cell, 0, shape - 1)
        return ~inside | jnp.asarray(self._walls)[safe[0], safe[1]]

    def _metrics(self, pos: jax.Array, goal: jax.Array):
        return goal_metrics(self.spec, pos, goal)

    # --- rendering (no physics here, so a MuJoCo model is built only to draw) -------------------
    def render_xml(self) -> str:
        """MJCF of the maze's walls, a floor and the point on x/y slide joints (for `crl render`)."""
        low, high = self.layout.world_bounds(self.cell_size)
        centre, half = (low + high) / 2, (high - low) / 2
        xml = RENDER_XML.format(cx=centre[0], cy=centre[1], hx=half[0], hy=half[1],
                                r=RENDER_POINT_RADIUS * self.cell_size)
        return add_maze_walls(xml, self.layout, self.cell_size)

    def render_qpos(self, pipeline_state: jax.Array) -> jax.Array:
        """qpos of render_xml's model for a pipeline state (the xy position)."""
        return pipeline_state


def register_all(register) -> None:
    """Register `point_<layout>` for every layout in POINT_MAZE_LAYOUTS and the stitching family."""
    del register  # the maze family registers through registry directly
    register_maze_family("point", PointMaze, POINT_MAZE_LAYOUTS)
