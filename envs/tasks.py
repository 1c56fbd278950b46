"""Task samplers: where an episode starts and which goal it commands, as data shared by robots.

A `Sampler` maps a PRNG key to one xy (shape (2,)); a `TaskSampler` maps a key to the pair
(start xy, goal), drawn jointly so that stitching tasks can tie the goal to the start. Robots
(point mass, ant, humanoid) take a TaskSampler and never know which maze or protocol made it.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Sampler = Callable[[jax.Array], jax.Array]  # key -> xy (2,)
TaskSampler = Callable[[jax.Array], tuple[jax.Array, jax.Array]]  # key -> (start xy, goal)


def circle(radius: float) -> Sampler:
    """Points uniform on the circle of `radius` around the origin."""

    def sample(key: jax.Array) -> jax.Array:
        angle = jax.random.uniform(key, (), minval=0.0, maxval=2.0 * jnp.pi)
        return radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])

    return sample


def origin(key: jax.Array) -> jax.Array:
    """The point (0, 0)."""
    del key
    return jnp.zeros((2,))


def choice(points: np.ndarray) -> Sampler:
    """One of the rows of `points` (n, 2), uniformly."""
    table = jnp.asarray(np.asarray(points, np.float32).reshape(-1, 2))

    def sample(key: jax.Array) -> jax.Array:
        return table[jax.random.randint(key, (), 0, table.shape[0])]

    return sample


def independent(start: Sampler, goal: Sampler) -> TaskSampler:
    """Start and goal drawn independently."""

    def sample(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_start, k_goal = jax.random.split(key)
        return start(k_start), goal(k_goal)

    return sample


def weighted_pairs(starts: np.ndarray, goals: np.ndarray, weights: np.ndarray) -> TaskSampler:
    """Row k = (starts[k], goals[k]) with probability weights[k] (normalised here)."""
    starts = np.asarray(starts, np.float32).reshape(-1, 2)
    goals = np.asarray(goals, np.float32).reshape(-1, 2)
    weights = np.asarray(weights, np.float64).reshape(-1)
    if not (len(starts) == len(goals) == len(weights) > 0):
        raise ValueError(f"need as many starts, goals and weights (> 0), got {len(starts)}, {len(goals)}, {len(weights)}")
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("pair weights must be non-negative with a positive sum")
    log_p = jnp.asarray(np.log(np.where(weights > 0, weights / weights.sum(), 1e-300)), jnp.float32)
    starts_j, goals_j = jnp.asarray(starts), jnp.asarray(goals)

    def sample(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        k = jax.random.categorical(key, log_p)
        return starts_j[k], goals_j[k]

    return sample
