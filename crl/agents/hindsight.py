"""Transitions for TD learning with hindsight goals: (s, a, s', g, reward, mask), a fraction relabelled (HER).

A window row t gives the transition (s_t, a_t, s_{t+1}); `mask` is 0 where t + 1 starts a new episode (the
next state is not the one a_t led to). The goal is the env's commanded goal, or with probability
`fraction` the achieved goal of a uniformly drawn later step of the same episode (HER's 'future'
strategy). The reward is 1 when s_{t+1}'s achieved goal is within the env's success radius of the goal.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from crl import buffer as rb
from crl.envs.spec import EnvSpec

NEXT_STATE_KEY = "next_state"
REWARD_KEY = "reward"
MASK_KEY = "mask"
RELABELLED_KEY = "relabelled"


def goal_reward(next_achieved: jax.Array, goal: jax.Array, success_radius: float) -> jax.Array:
    """1.0 where ||achieved(s') - g|| < success_radius, else 0.0 (the paper's and JaxGCRL's sparse reward)."""
    return (jnp.linalg.norm(next_achieved - goal, axis=-1) < success_radius).astype(jnp.float32)


def _one_window(obs, action, traj_id, key, state_dim, goal_indices, fraction, success_radius):
    length = traj_id.shape[0]
    offset_key, coin_key = jax.random.split(key)
    offsets = rb.uniform_future_offsets(traj_id, offset_key)[:-1]
    steps = jnp.arange(length - 1, dtype=jnp.int32)
    achieved = obs[:, goal_indices]
    relabelled = (jax.random.uniform(coin_key, (length - 1,)) < fraction) & (offsets > 0)
    goal = jnp.where(relabelled[:, None], achieved[steps + offsets], obs[:-1, state_dim:])
    return {
        rb.STATE_KEY: obs[:-1, :state_dim],
        rb.ACTION_KEY: action[:-1],
        NEXT_STATE_KEY: obs[1:, :state_dim],
        rb.GOAL_KEY: goal,
        REWARD_KEY: goal_reward(achieved[1:], goal, success_radius),
        MASK_KEY: (traj_id[:-1] == traj_id[1:]).astype(jnp.float32),
        RELABELLED_KEY: relabelled.astype(jnp.float32),
    }


def hindsight_transitions(windows: Mapping[str, jax.Array], key: jax.Array, state_dim: int, goal_indices,
                          fraction: float, success_radius: float) -> dict[str, jax.Array]:
    """Every env's window as num_envs * (window - 1) transitions (see the module docstring)."""
    obs, action, traj_id = windows[rb.OBS_KEY], windows[rb.ACTION_KEY], windows[rb.TRAJ_ID_KEY]
    num_envs, window = traj_id.shape
    one = functools.partial(_one_window, state_dim=state_dim, goal_indices=jnp.asarray(goal_indices, jnp.int32),
                            fraction=fraction, success_radius=success_radius)
    per_env = jax.vmap(one)(obs, action, traj_id, jax.random.split(key, num_envs))
    return jax.tree.map(lambda x: x.reshape((num_envs * (window - 1),) + x.shape[2:]), per_env)


def hindsight_pool(spec: EnvSpec, fraction: float) -> Callable:
    """make_pool for TD algorithms: HER with relabel `fraction` (0: the env's own goals only)."""
    return functools.partial(hindsight_transitions, state_dim=spec.state_dim, goal_indices=spec.goal_indices,
                             fraction=fraction, success_radius=spec.success_radius)
