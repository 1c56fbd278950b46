"""A dataset on the device for offline training: the rows of a `Dataset`, and windows cut from them.

Offline, a training step samples `num_windows` windows of `window` consecutive rows, uniformly over their start,
exactly where online training samples one window per env from the replay buffer; the algorithm's make_pool
(crl.buffer.relabel, HER) then sees the same {'obs', 'action', 'traj_id'} windows and keeps goals inside one
trajectory. obs = concat(state, commanded goal): the dataset's `goals` where it has them (crl collect writes
them), else each trajectory's final achieved goal (OGBench's files have none; only algorithms that read the
commanded goal, sac and td3 without full HER, see the difference).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from crl import buffer as rb
from crl.config import ConfigError
from crl.envs.spec import EnvSpec
from crl.offline.dataset import GOALS_KEY


@flax.struct.dataclass
class OfflineData:
    """Every row of a dataset, on the device: state (N, S), goal (N, G), action (N, A), traj_id (N,)."""

    state: jax.Array
    goal: jax.Array
    action: jax.Array
    traj_id: jax.Array

    @property
    def num_rows(self) -> int:
        return self.traj_id.shape[0]


def final_achieved_goals(state: np.ndarray, traj_ids: np.ndarray, goal_indices: tuple[int, ...]) -> np.ndarray:
    """(N, G): for every row, the achieved goal of the last row of its trajectory."""
    last_row = np.flatnonzero(np.r_[traj_ids[1:] != traj_ids[:-1], True])  # the last row of each trajectory
    return np.asarray(state[last_row][:, list(goal_indices)][traj_ids - traj_ids[0]], np.float32)


@dataclasses.dataclass(frozen=True)
class Rows:
    """The selected rows of a (memory-mapped) column, read only when converted (np.asarray) for placing, so
    the host never holds more than one column's copy at a time."""

    array: np.ndarray
    index: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index),) + tuple(self.array.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def __len__(self) -> int:
        return len(self.index)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = np.asarray(self.array[self.index])
        return rows if dtype is None else rows.astype(dtype)


def host_columns(dataset: Any, spec: EnvSpec) -> dict[str, Rows]:
    """The dataset's rows that have a successor in their trajectory, as OfflineData takes them.

    Each trajectory's last row is left out, as OGBench's loader leaves it out and as an online replay buffer never
    holds it: its action led nowhere (crl collect writes zeros there), so it is no transition to learn from.
    """
    traj_ids = np.asarray(dataset.traj_ids, np.int32)
    goals = dataset.extras.get(GOALS_KEY)
    if goals is None:
        goals = final_achieved_goals(dataset.observations, traj_ids, spec.goal_indices)
    elif goals.shape != (dataset.num_transitions, spec.goal_dim):
        raise ConfigError(f"{dataset.path}: '{GOALS_KEY}' is shaped {goals.shape}, env {spec.name} expects "
                          f"({dataset.num_transitions}, {spec.goal_dim}); rewrite it with `crl collect` or drop the key")
    keep = np.flatnonzero(np.asarray(dataset.terminals) == 0)
    return {name: Rows(column, keep) for name, column in
            (("state", dataset.observations), ("goal", goals), ("action", dataset.actions), ("traj_id", traj_ids))}


def count_trajectories(traj_ids: np.ndarray) -> int:
    """Distinct trajectories in a column of non-decreasing trajectory ids."""
    return int(np.count_nonzero(np.diff(traj_ids)) + 1) if len(traj_ids) else 0


def place(columns: dict[str, Rows], sharding: jax.sharding.Sharding | None = None) -> OfflineData:
    """OfflineData on the device(s), one column at a time (no host copy of the whole dataset is made)."""
    return OfflineData(**{name: jax.device_put(np.asarray(column), sharding) for name, column in columns.items()})


def abstract(columns: dict[str, Rows], sharding: jax.sharding.Sharding | None = None) -> OfflineData:
    """OfflineData of ShapeDtypeStructs: what programs compile against before the data are placed."""
    return OfflineData(**{name: jax.ShapeDtypeStruct(column.shape, column.dtype, sharding=sharding)
                          for name, column in columns.items()})


def check_window(num_rows: int, window: int, path: Any) -> None:
    """ConfigError unless the dataset holds at least one training window (sample_windows needs num_rows >= window)."""
    if num_rows < window:
        raise ConfigError(f"{path}: the dataset has {num_rows} transitions (rows with a next row in their "
                          f"trajectory), fewer than one training window of {window} (the env's episode length); "
                          f"collect more episodes")


def sample_windows(data: OfflineData, key: jax.Array, num_windows: int, window: int) -> dict[str, jax.Array]:
    """`num_windows` windows of `window` consecutive rows, uniform start: {'obs', 'action', 'traj_id'} (W, L, ...)."""
    start = jax.random.randint(key, (num_windows,), 0, data.num_rows - window + 1, dtype=jnp.int32)
    rows = start[:, None] + jnp.arange(window, dtype=jnp.int32)[None, :]
    return {rb.OBS_KEY: jnp.concatenate([data.state[rows], data.goal[rows]], axis=-1),
            rb.ACTION_KEY: data.action[rows], rb.TRAJ_ID_KEY: data.traj_id[rows]}
