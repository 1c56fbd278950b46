"""Acting in batched environments: collecting unrolls for the buffer with the stochastic actor."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Params = Any


def collect_unroll(env, sample_action: Callable, actor_params: Params, env_state, key: jax.Array,
                   unroll_length: int):
    """Step `env` for `unroll_length` steps with the stochastic actor; returns (env_state, chunk).

    chunk['obs'][t] is the observation the action at t was taken from; chunk['traj_id'][t] its episode id,
    so the buffer can keep goals inside one episode.
    """

    def step(state, step_key):
        action, _ = sample_action(actor_params, state.obs, step_key)
        next_state = env.step(state, action)
        record = {"obs": state.obs, "action": action, "traj_id": state.info["traj_id"].astype(jnp.int32)}
        return next_state, record

    return jax.lax.scan(step, env_state, jax.random.split(key, unroll_length))
