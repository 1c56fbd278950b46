"""One checkpoint of one run, ready to draw: its trainer, one seed's params and the words a title needs."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np

PHYSICS_FREE_BACKEND = "jax"  # the point mass: lengths are in maze units, not metres
LENGTH_UNITS = {PHYSICS_FREE_BACKEND: "units"}
DEFAULT_LENGTH_UNIT = "m"
VIEW_FIELDS = ("actor_params", "critic_params", "env_steps")  # what a figure reads from a checkpoint (no buffer)


class VizError(ValueError):
    """Bad input to a viz command (not a maze env, goal in a wall, unknown seed); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Maze:
    """The geometry a top-down figure needs: layout, cell size and which state entries are the agent's xy."""

    layout: Any  # crl.envs.maze.MazeLayout
    cell_size: float
    xy_indices: tuple[int, int]

    def cell_centre(self, cell: tuple[int, int]):
        return self.layout.cell_centers((tuple(cell),), self.cell_size)[0]

    def cell_of(self, xy) -> np.ndarray:
        """Integer (row, column) of the cell holding each world xy (last axis 2); may lie outside the grid."""
        return np.floor(np.asarray(xy)[..., :2] / self.cell_size + 0.5).astype(int)


@dataclasses.dataclass(frozen=True)
class RunView:
    """A restored checkpoint: the trainer (env, networks), one seed's params, epoch and env steps."""

    run_dir: Path
    trainer: Any
    epoch: int
    env_steps: int
    seed: int
    actor_params: Any
    critic_params: Any

    @property
    def cfg(self):
        return self.trainer.cfg

    @property
    def spec(self):
        return self.trainer.eval_spec

    @property
    def env(self):
        """The unwrapped evaluation environment (maze geometry, render model)."""
        return self.trainer.eval_env.unwrapped

    @property
    def length_unit(self) -> str:
        return LENGTH_UNITS.get(self.spec.backend, DEFAULT_LENGTH_UNIT)

    @property
    def label(self) -> str:
        """Short name of this run in a legend or panel: env and depths."""
        return f"{self.spec.name}, critic depth {self.cfg.critic_depth}, actor depth {self.cfg.actor_depth}"

    def title(self, what: str) -> str:
        return f"{what}\n{self.label}\nepoch {self.epoch} ({self.env_steps:,} env steps), seed {self.seed}"

    def maze(self, command: str) -> Maze:
        env = self.env
        if not hasattr(env, "layout"):
            raise VizError(f"{command} draws over a maze, but {self.run_dir}'s eval env {self.spec.name!r} has no maze "
                           "layout; use a run on a point_*, ant_* or humanoid_* maze")
        return Maze(env.layout, float(env.cell_size), tuple(self.spec.goal_indices[:2]))


def _one_seed(tree: Any, index: int, num_seeds: int) -> Any:
    return jax.tree.map(lambda x: x[index], tree) if num_seeds > 1 else tree


def load_run_view(run_dir: str | Path, checkpoint: int | None = None, seed: int | None = None,
                  **overrides: Any) -> RunView:
    """Restore RUN_DIR's newest valid checkpoint (or epoch `checkpoint`); `seed` picks one seed of a K-seed run.

    A missing RUN_DIR, or one without config.yaml, is a ConfigError from crl.policy.load_run_config.
    """
    from crl.policy import restore_run
    from crl.programs import run_seeds

    trainer, restored = restore_run(run_dir, checkpoint, fields=VIEW_FIELDS, **overrides)
    seeds = run_seeds(trainer.cfg)
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise VizError(f"seed {seed} is not one of {run_dir}'s seeds {seeds}; pass --seed with one of them")
    index, state = seeds.index(seed), restored.state
    env_steps = int(jax.device_get(_one_seed(state.env_steps, index, len(seeds))))
    return RunView(Path(run_dir), trainer, restored.epoch, env_steps, seed,
                   _one_seed(state.actor_params, index, len(seeds)), _one_seed(state.critic_params, index, len(seeds)))
