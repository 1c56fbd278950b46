"""Data parallelism over a 1-D ('data',) mesh: env, buffer and batch axes sharded, everything else replicated.

The training programs are the same on 1 or N devices (and on N hosts): GSPMD inserts the collectives,
so the InfoNCE negatives stay the global batch and N devices compute what one device computes.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from crl.config import ConfigError, TrainConfig

DATA_AXIS = "data"
ALL_DEVICES = 0  # num_devices value meaning every device of every process
BUFFER_ENV_AXIS = 1  # replay arrays are (capacity, num_envs, ...)
ENV_AXIS = 0  # env-state leaves are (num_envs, ...)
BATCH_AXIS = 1  # SGD batches are (sgd_steps, batch_size, ...)


def make_mesh(cfg: TrainConfig) -> Mesh:
    """The ('data',) mesh over the first cfg.num_devices devices (0: all), after checking the axes divide."""
    devices = jax.devices()
    count = len(devices) if cfg.num_devices == ALL_DEVICES else cfg.num_devices
    if count > len(devices):
        raise ConfigError(f"num_devices = {cfg.num_devices} but only {len(devices)} device(s) are visible "
                          f"({devices[0].platform}); lower num_devices or use 0 for all. On CPU, "
                          f"XLA_FLAGS=--xla_force_host_platform_device_count=N simulates N devices")
    if jax.process_count() > 1 and count != len(devices):
        raise ConfigError(f"num_devices = {cfg.num_devices} in a run of {jax.process_count()} processes: a multi-host "
                          f"run shards over every process's devices; set num_devices 0 (all {len(devices)})")
    for name in ("num_envs", "batch_size"):
        value = getattr(cfg, name)
        if value % count:
            raise ConfigError(f"{name} = {value} is not divisible by the {count} devices of the data mesh; "
                              f"use a multiple of {count} (each device takes an equal slice)")
    return Mesh(np.asarray(devices[:count]), (DATA_AXIS,))


def _spec(axis: int, seed_axis: bool) -> P:
    """PartitionSpec sharding `axis` over the mesh, shifted right by a leading seed axis when present."""
    axis += int(seed_axis)
    return P(*([None] * axis), DATA_AXIS)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def state_shardings(abstract_state: Any, mesh: Mesh, num_envs: int, seed_axis: bool) -> Any:
    """Shardings for a TrainingState: replay and env-state leaves split over envs; params, keys, counters replicated.

    An env-state leaf is one whose env axis has length num_envs (scalars in the env state stay replicated).
    """
    lead = int(seed_axis)

    def env_leaf(leaf) -> NamedSharding:
        sharded = leaf.ndim > lead + ENV_AXIS and leaf.shape[lead + ENV_AXIS] == num_envs
        return NamedSharding(mesh, _spec(ENV_AXIS, seed_axis)) if sharded else replicated(mesh)

    shardings = jax.tree.map(lambda _: replicated(mesh), abstract_state)
    if abstract_state.buffer is None:  # offline: no buffer and no envs (the dataset is an argument of its own)
        return shardings
    buffer = abstract_state.buffer.replace(
        data=jax.tree.map(lambda _: NamedSharding(mesh, _spec(BUFFER_ENV_AXIS, seed_axis)),
                          abstract_state.buffer.data),
        insert_pos=replicated(mesh), size=replicated(mesh))
    return shardings.replace(buffer=buffer, env_state=jax.tree.map(env_leaf, abstract_state.env_state))


def batch_constraint(mesh: Mesh):
    """x -> x constrained to be split over the batch axis of (sgd_steps, batch, ...) arrays."""
    sharding = NamedSharding(mesh, _spec(BATCH_AXIS, seed_axis=False))  # vmap adds the seed axis itself
    return lambda tree: jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)
