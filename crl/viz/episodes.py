"""Evaluation episodes kept step by step (states, actions, success), for rollout, representation and render figures.

The same episodes `crl eval` scores: the eval env wrapped for evaluation, fresh resets, the
deterministic policy tanh(mu). `alive[t]` is evaluate()'s mask: 1 while step t is taken inside the
episode (the step that ends it included), so state t + 1 belongs to the episode iff alive[t].
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from crl.streams import epoch_eval_key
from crl.viz.run_view import RunView


@dataclasses.dataclass
class Episodes:
    """num_envs episodes of T steps; index t of states is the state before action t (t = 0..T)."""

    states: np.ndarray  # (T + 1, N, state_dim)
    actions: np.ndarray  # (T, N, action_size)
    goals: np.ndarray  # (N, goal_dim) commanded goal at reset
    alive: np.ndarray  # (T, N) 1 while step t is taken inside the episode
    success: np.ndarray  # (T, N) the spec's headline metric per step (1 at the goal)
    pipeline: Any = None  # (T + 1, N, ...) pipeline states, when kept (renders)

    @property
    def time_at_goal(self) -> np.ndarray:
        """(N,) steps at the goal while alive: the paper's per-episode score."""
        return (self.success * self.alive).sum(axis=0)

    @property
    def in_episode(self) -> np.ndarray:
        """(T + 1, N) bool: state t belongs to the episode (the reset state, and every state an alive step reached)."""
        return np.concatenate([np.ones_like(self.alive[:1]), self.alive]).astype(bool)

    def achieved(self, goal_indices) -> np.ndarray:
        """(T + 1, N, goal_dim) the achieved goal along each episode."""
        return self.states[..., list(goal_indices)]

    def closest_approach(self, goal_indices) -> np.ndarray:
        """(N,) the smallest distance between achieved and commanded goal within each episode."""
        distance = np.linalg.norm(self.achieved(goal_indices) - self.goals[None], axis=-1)
        return np.where(self.in_episode, distance, np.inf).min(axis=0)


def most_informative_episode(episodes: Episodes, goal_indices) -> int:
    """The first episode that reached its goal, else the one that came closest: what a render should show."""
    reached = np.nonzero(episodes.time_at_goal > 0)[0]
    if reached.size:
        return int(reached[0])
    return int(np.argmin(episodes.closest_approach(goal_indices)))


def describe_episode(episodes: Episodes, episode: int, goal_indices, length_unit: str) -> str:
    """One line saying which episode it is and whether (and how long) it reached its goal."""
    count, steps = episodes.goals.shape[0], episodes.alive.shape[0]
    at_goal = int(episodes.time_at_goal[episode])
    if at_goal:
        return f"episode {episode} of {count}: reached its goal ({at_goal} of {steps} steps at the goal)"
    closest = episodes.closest_approach(goal_indices)[episode]
    return f"episode {episode} of {count}: did not reach its goal (closest approach {closest:.2f} {length_unit})"


def collect_episodes(view: RunView, key: jax.Array | None = None, keep_pipeline: bool = False) -> Episodes:
    """Run the eval env's batch (num_eval_envs episodes) with the deterministic policy, keeping every step.

    Without `key` the run's own evaluation key of that epoch is used, so the episodes are those logged.
    """
    trainer, spec = view.trainer, view.spec
    env, networks, state_dim = trainer.eval_env, trainer.networks, spec.state_dim
    headline = spec.headline_metric
    key = epoch_eval_key(view.seed, view.epoch) if key is None else key

    def run(params, key):
        reset_key, _ = jax.random.split(key)  # the split evaluate() makes; its action key is unused here
        first = env.reset(reset_key)

        def step(carry, _):
            state, alive = carry
            action = networks.deterministic_action(params, state.obs)
            nxt = env.step(state, action)
            out = (state.obs[:, :state_dim], action, nxt.metrics[headline],
                   state.pipeline_state if keep_pipeline else None)
            return (nxt, alive * (1.0 - nxt.done)), (out, alive)

        alive0 = jnp.ones(first.done.shape, jnp.float32)
        (last, _), ((states, actions, success, pipeline), alive) = jax.lax.scan(
            step, (first, alive0), None, length=spec.episode_length)
        states = jnp.concatenate([states, last.obs[None, :, :state_dim]])
        if keep_pipeline:
            pipeline = jax.tree.map(lambda xs, x: jnp.concatenate([xs, x[None]]), pipeline, last.pipeline_state)
        return states, actions, first.obs[:, state_dim:], alive, success, pipeline

    states, actions, goals, alive, success, pipeline = jax.device_get(jax.jit(run)(view.actor_params, key))
    return Episodes(np.asarray(states), np.asarray(actions), np.asarray(goals), np.asarray(alive),
                    np.asarray(success), pipeline)
