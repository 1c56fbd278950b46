"""Goal-conditioned SAC (and SAC+HER): twin Q critics on (s, a, g), Polyak targets, automatic entropy tuning.

Update order per SGD step as brax's SAC (which JaxGCRL's is built on): alpha, then the critics with the new
alpha against the target critics, then the actor against the pre-step critics; then the targets move.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from crl.agents import hindsight as hs
from crl.agents.base import (Agent, Batch, Metrics, Optimizers, apply_updates, make_optimizers, masked_mean,
                             observation, polyak)
from crl.agents.q_networks import TwinQNetworks, make_twin_q_networks
from crl.agents.registry import register_algorithm
from crl.buffer import ACTION_KEY, GOAL_KEY, STATE_KEY
from crl.config import TrainConfig
from crl.envs.spec import EnvSpec
from crl.losses import alpha_loss, target_entropy


def td_target(reward: jax.Array, next_q: jax.Array, discount: float) -> jax.Array:
    """r + discount * min_i Q'_i: next_q is (NUM_Q, B) (entropy or smoothing already applied by the caller)."""
    return reward + discount * jnp.min(next_q, axis=0)


def twin_q_loss(q: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """0.5 * mean over critics and valid transitions of (Q_i - stopgrad(target))^2; q is (NUM_Q, B)."""
    error = q - jax.lax.stop_gradient(target)[None]
    return 0.5 * masked_mean(jnp.square(error), mask[None])


def make_sac_losses(networks: TwinQNetworks, discount: float) -> tuple[Callable, Callable]:
    """(critic_loss(critic, target_critic, actor, alpha, batch, key), actor_loss(actor, critic, alpha, batch, key))."""

    def critic_loss(critic_params, target_critic_params, actor_params, alpha, batch: Batch, key):
        next_action, next_log_prob = networks.sample_action(
            actor_params, observation(batch[hs.NEXT_STATE_KEY], batch[GOAL_KEY]), key)
        next_q = networks.q_values(target_critic_params, batch[hs.NEXT_STATE_KEY], next_action, batch[GOAL_KEY])
        target = td_target(batch[hs.REWARD_KEY], next_q - alpha * next_log_prob[None], discount)
        q = networks.q_values(critic_params, batch[STATE_KEY], batch[ACTION_KEY], batch[GOAL_KEY])
        loss = twin_q_loss(q, target, batch[hs.MASK_KEY])
        return loss, {"critic_loss": loss, "q": jnp.mean(q), "target_q": jnp.mean(target)}

    def actor_loss(actor_params, critic_params, alpha, batch: Batch, key):
        action, log_prob = networks.sample_action(actor_params, observation(batch[STATE_KEY], batch[GOAL_KEY]), key)
        q = networks.q_value(critic_params, batch[STATE_KEY], action, batch[GOAL_KEY])
        loss = jnp.mean(alpha * log_prob - q)
        return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}

    return critic_loss, actor_loss


def batch_metrics(batch: Batch) -> Metrics:
    """What the relabelled data looked like: mean reward and the relabelled share of valid transitions."""
    mask = batch[hs.MASK_KEY]
    return {"reward": masked_mean(batch[hs.REWARD_KEY], mask), "her_fraction": masked_mean(batch[hs.RELABELLED_KEY], mask)}


def make_sac_sgd_step(networks: TwinQNetworks, cfg: TrainConfig, opt: Optimizers, entropy_target: float) -> Callable:
    """sgd_step(state, (batch, key)) -> (state, metrics) for SAC over the TrainingState pytree."""
    critic_loss, actor_loss = make_sac_losses(networks, cfg.discount)

    def sgd_step(state, batch_and_key) -> tuple[Any, Metrics]:
        batch, key = batch_and_key
        alpha_key, critic_key, actor_key = jax.random.split(key, 3)
        obs = observation(batch[STATE_KEY], batch[GOAL_KEY])
        _, log_prob = networks.sample_action(state.actor_params, obs, alpha_key)
        (_, alpha_metrics), alpha_grad = jax.value_and_grad(alpha_loss, has_aux=True)(
            state.log_alpha, log_prob, entropy_target)
        log_alpha, alpha_opt_state = apply_updates(opt.alpha, alpha_grad, state.alpha_opt_state, state.log_alpha)
        alpha = jnp.exp(log_alpha)
        (_, critic_metrics), critic_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.critic_params, state.target_params["critic"], state.actor_params, alpha, batch, critic_key)
        (_, actor_metrics), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor_params, state.critic_params, alpha, batch, actor_key)
        critic_params, critic_opt_state = apply_updates(opt.critic, critic_grads, state.critic_opt_state,
                                                        state.critic_params)
        actor_params, actor_opt_state = apply_updates(opt.actor, actor_grads, state.actor_opt_state,
                                                      state.actor_params)
        targets = {"critic": polyak(state.target_params["critic"], critic_params, cfg.tau)}
        state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state, log_alpha=log_alpha,
                              alpha_opt_state=alpha_opt_state, critic_params=critic_params,
                              critic_opt_state=critic_opt_state, target_params=targets,
                              grad_steps=state.grad_steps + 1)
        return state, {**alpha_metrics, **critic_metrics, **actor_metrics, **batch_metrics(batch)}

    return sgd_step


def critic_targets(params: dict[str, Any]) -> dict[str, Any]:
    """Target critics start equal to the critics."""
    return {"critic": params["critic"]}


def build(spec: EnvSpec, cfg: TrainConfig, her: bool = False) -> Agent:
    networks, optimizers = make_twin_q_networks(spec, cfg), make_optimizers(cfg)
    step = make_sac_sgd_step(networks, cfg, optimizers, target_entropy(cfg, spec.action_size))
    return Agent(name="sac_her" if her else "sac", networks=networks, optimizers=optimizers,
                 make_pool=hs.hindsight_pool(spec, cfg.her_ratio if her else 0.0), sgd_step=step,
                 explore=networks.sample_action, init_targets=critic_targets)


register_algorithm("sac", build, "goal-conditioned SAC on the env's own goals (twin critics, Polyak targets)")
register_algorithm("sac_her", lambda spec, cfg: build(spec, cfg, her=True),
                   "SAC with hindsight relabelling of her_ratio of the goals to future achieved goals")
