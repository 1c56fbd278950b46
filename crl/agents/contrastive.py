"""CRL, the paper's algorithm: contrastive critic phi(s, a) / psi(g), future-goal pool, SAC-style actor."""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax

from crl import buffer as rb
from crl.agents.base import Agent, Metrics, Optimizers, apply_updates, make_optimizers
from crl.agents.registry import register_algorithm
from crl.config import TrainConfig
from crl.envs.spec import EnvSpec
from crl.losses import Batch, make_losses
from crl.networks import make_networks


def as_batch(batch: Batch | Mapping[str, jax.Array]) -> Batch:
    """A Batch from the pool's {'state', 'action', 'goal'} arrays (a Batch is returned as is)."""
    if isinstance(batch, Batch):
        return batch
    return Batch(state=batch[rb.STATE_KEY], action=batch[rb.ACTION_KEY], goal=batch[rb.GOAL_KEY])


def make_sgd_step(losses: Any, opt: Optimizers) -> Callable:
    """Build sgd_step(state, (batch, key)) -> (state, metrics) over any TrainingState-shaped pytree.

    Actor and alpha are updated against the pre-step critic, as is the critic, all on one batch; the goal
    encoder runs once, its psi(g) shared by both losses.
    """

    def sgd_step(state, batch_and_key) -> tuple[Any, Metrics]:
        batch, key = batch_and_key
        batch = as_batch(batch)
        # one gradient for both losses (each sees only its own params): their networks share scans
        (_, (critic_metrics, actor_metrics)), (critic_grads, actor_grads) = jax.value_and_grad(
            losses.critic_actor_fn, argnums=(0, 1), has_aux=True)(
            state.critic_params, state.actor_params, state.log_alpha, batch, key)
        (_, alpha_metrics), alpha_grad = jax.value_and_grad(losses.alpha_loss_fn, has_aux=True)(
            state.log_alpha, -actor_metrics["entropy"])
        actor_params, actor_opt_state = apply_updates(opt.actor, actor_grads, state.actor_opt_state,
                                                      state.actor_params)
        log_alpha, alpha_opt_state = apply_updates(opt.alpha, alpha_grad, state.alpha_opt_state, state.log_alpha)
        critic_params, critic_opt_state = apply_updates(opt.critic, critic_grads, state.critic_opt_state,
                                                        state.critic_params)
        state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state, log_alpha=log_alpha,
                              alpha_opt_state=alpha_opt_state, critic_params=critic_params,
                              critic_opt_state=critic_opt_state, grad_steps=state.grad_steps + 1)
        return state, {**actor_metrics, **alpha_metrics, **critic_metrics}

    return sgd_step


def future_goal_pool(spec: EnvSpec, cfg: TrainConfig, offsets=None) -> Callable:
    """make_pool for goal-conditioned learning from future states: (state, action, goal) per transition."""
    return functools.partial(rb.relabel, discount=cfg.discount, state_dim=spec.state_dim,
                             goal_indices=spec.goal_indices, offsets=offsets)


def build(spec: EnvSpec, cfg: TrainConfig) -> Agent:
    """CRL exactly as before the algorithm interface (same networks, keys, update order and pool)."""
    networks, optimizers = make_networks(spec, cfg), make_optimizers(cfg)
    losses = make_losses(networks, cfg, spec.action_size)
    return Agent(name="crl", networks=networks, optimizers=optimizers, make_pool=future_goal_pool(spec, cfg),
                 sgd_step=make_sgd_step(losses, optimizers), explore=networks.sample_action)


register_algorithm("crl", build, "contrastive RL (the paper): InfoNCE critic over future goals, SAC-style actor")
