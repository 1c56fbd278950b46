"""GCBC and GCSL: maximum likelihood of the agent's own actions given future-goal-relabelled goals.

Both collect online with the current stochastic actor and imitate what it did, conditioned on a goal it
then reached: GCBC draws the goal with CRL's discounted future law, GCSL uniformly from the rest of
the episode (Ghosh et al. 2021's hindsight relabelling). No critic, no reward.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from crl import buffer as rb
from crl.agents.base import Agent, Batch, Metrics, Optimizers, apply_updates, make_optimizers, observation
from crl.agents.contrastive import future_goal_pool
from crl.agents.registry import register_algorithm
from crl.config import TrainConfig
from crl.envs.spec import EnvSpec
from crl.networks import ACTOR_HEADS, ActorNetworks, Params, mlp_from_config


@dataclasses.dataclass(frozen=True)
class ImitationNetworks(ActorNetworks):
    """The tanh-Gaussian actor alone: params {'actor': ..., 'critic': {}}."""

    def init(self, key: jax.Array) -> Params:
        return {"actor": self.actor.init(key, self.actor_input())["params"], "critic": {}}


def bc_loss(networks: ActorNetworks, actor_params: Params, batch: Batch) -> tuple[jax.Array, Metrics]:
    """-mean log pi(a | s, g) over the batch, with the deterministic action's squared error as a metric."""
    obs = observation(batch[rb.STATE_KEY], batch[rb.GOAL_KEY])
    loss = -jnp.mean(networks.log_likelihood(actor_params, obs, batch[rb.ACTION_KEY]))
    error = networks.deterministic_action(actor_params, obs) - batch[rb.ACTION_KEY]
    return loss, {"bc_loss": loss, "action_mse": jnp.mean(jnp.sum(jnp.square(error), axis=-1))}


def make_bc_sgd_step(networks: ActorNetworks, opt: Optimizers) -> Callable:
    """sgd_step(state, (batch, key)): one Adam step of the actor on the behaviour-cloning loss."""

    def sgd_step(state, batch_and_key) -> tuple[Any, Metrics]:
        batch, _ = batch_and_key
        (_, metrics), grads = jax.value_and_grad(lambda p: bc_loss(networks, p, batch), has_aux=True)(
            state.actor_params)
        actor_params, actor_opt_state = apply_updates(opt.actor, grads, state.actor_opt_state, state.actor_params)
        state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state,
                              grad_steps=state.grad_steps + 1)
        return state, metrics

    return sgd_step


def build(spec: EnvSpec, cfg: TrainConfig, uniform_goals: bool = False) -> Agent:
    networks = ImitationNetworks(actor=mlp_from_config(cfg, cfg.actor_width, cfg.actor_depth,
                                                       (spec.action_size,) * ACTOR_HEADS),
                                 state_dim=spec.state_dim, goal_dim=spec.goal_dim, action_size=spec.action_size)
    optimizers = make_optimizers(cfg)
    pool = future_goal_pool(spec, cfg, offsets=rb.uniform_future_offsets if uniform_goals else None)
    return Agent(name="gcsl" if uniform_goals else "gcbc", networks=networks, optimizers=optimizers, make_pool=pool,
                 sgd_step=make_bc_sgd_step(networks, optimizers), explore=networks.sample_action)


register_algorithm("gcbc", build, "goal-conditioned behaviour cloning of the agent's own data, discounted future goals")
register_algorithm("gcsl", lambda spec, cfg: build(spec, cfg, uniform_goals=True),
                   "goal-conditioned supervised learning: imitation with goals uniform over the rest of the episode")
