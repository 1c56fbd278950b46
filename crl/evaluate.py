"""Evaluation: deterministic actor, fresh resets, time-at-goal metrics summed while an episode lives."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from crl.envs.spec import EnvSpec

HEADLINE_PREFIX = "eval/episode_"


def make_evaluator(eval_env, spec: EnvSpec, deterministic_action: Callable, episode_length: int) -> Callable:
    """Build evaluate(actor_params, key) -> {metric: scalar}, pure and jittable.

    Each metric the spec names is summed over the steps of an episode while it is alive (the step that
    terminates it still counts, as in brax's evaluator), then averaged over eval envs: the sum of
    'success' is the paper's time at goal.
    """
    names = spec.metric_names

    def evaluate(actor_params: Any, key: jax.Array) -> dict[str, jax.Array]:
        state = eval_env.reset(key)
        alive = jnp.ones(state.done.shape, jnp.float32)
        totals = {name: jnp.zeros_like(alive) for name in names}

        def step(carry, _):
            state, alive, totals = carry
            state = eval_env.step(state, deterministic_action(actor_params, state.obs))
            totals = {name: totals[name] + alive * state.metrics[name] for name in names}
            return (state, alive * (1.0 - state.done), totals), alive

        (_, _, totals), alive_per_step = jax.lax.scan(step, (state, alive, totals), None, length=episode_length)
        metrics = {f"{HEADLINE_PREFIX}{name}": totals[name].mean() for name in names}
        metrics[f"{HEADLINE_PREFIX}{spec.headline_metric}_any"] = (totals[spec.headline_metric] > 0).mean()
        metrics["eval/avg_episode_length"] = alive_per_step.sum(axis=0).mean()
        return metrics

    return evaluate
