"""Evaluation: fresh resets, time-at-goal metrics summed while an episode lives, for any policy."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from crl.envs.spec import EnvSpec

HEADLINE_PREFIX = "eval/episode_"
Policy = Callable[[Any, jax.Array, jax.Array], jax.Array]  # (params, obs, key) -> action


def deterministic_policy(deterministic_action: Callable) -> Policy:
    """The evaluation policy of the paper: tanh(mu), ignoring the key."""
    return lambda params, obs, key: deterministic_action(params, obs)


def uniform_random_policy(action_size: int) -> Policy:
    """Uniform actions in [-1, 1]: the baseline that learning must beat."""
    return lambda params, obs, key: jax.random.uniform(key, (obs.shape[0], action_size), minval=-1.0, maxval=1.0)


def make_evaluator(eval_env, spec: EnvSpec, policy: Policy, episode_length: int) -> Callable:
    """Build evaluate(params, key) -> {metric: scalar}, pure and jittable.

    Each metric the spec names is summed over the steps of an episode while it is alive (the step that
    terminates it still counts, as in brax's evaluator), then averaged over eval envs: the sum of
    'success' is the paper's time at goal. Steps after an episode ended are masked out, whatever
    their values (NaN included).
    """
    names = spec.metric_names

    def evaluate(params: Any, key: jax.Array) -> dict[str, jax.Array]:
        reset_key, act_key = jax.random.split(key)
        state = eval_env.reset(reset_key)
        alive = jnp.ones(state.done.shape, jnp.float32)
        totals = {name: jnp.zeros_like(alive) for name in names}

        def step(carry, step_key):
            state, alive, totals = carry
            state = eval_env.step(state, policy(params, state.obs, step_key))
            # `where`, not `alive * metric`: a finished env may return NaN, and 0 * NaN is NaN.
            totals = {name: totals[name] + jnp.where(alive > 0, state.metrics[name], 0.0) for name in names}
            return (state, jnp.where(state.done > 0, 0.0, alive), totals), alive

        (_, _, totals), alive_per_step = jax.lax.scan(step, (state, alive, totals),
                                                      jax.random.split(act_key, episode_length))
        metrics = {f"{HEADLINE_PREFIX}{name}": totals[name].mean() for name in names}
        metrics[f"{HEADLINE_PREFIX}{spec.headline_metric}_any"] = (totals[spec.headline_metric] > 0).mean()
        metrics["eval/avg_episode_length"] = alive_per_step.sum(axis=0).mean()
        return metrics

    return evaluate
