"""Goal-conditioned TD3 (and TD3+HER): twin critics, target-policy smoothing with clipped noise, actor and
targets updated on every `policy_delay`-th SGD step, Gaussian exploration noise while collecting."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from crl.agents import hindsight as hs
from crl.agents.base import (Agent, Batch, Metrics, Optimizers, apply_updates, make_optimizers, observation,
                             polyak, select)
from crl.agents.q_networks import DeterministicTwinQNetworks, make_twin_q_networks
from crl.agents.registry import register_algorithm
from crl.agents.sac import batch_metrics, td_target, twin_q_loss
from crl.buffer import ACTION_KEY, GOAL_KEY, STATE_KEY
from crl.config import TrainConfig
from crl.envs.spec import EnvSpec

ACTION_LOW, ACTION_HIGH = -1.0, 1.0  # the tanh action box


def smoothed_target_action(target_action: jax.Array, key: jax.Array, noise: float, noise_clip: float) -> jax.Array:
    """clip(pi'(s') + clip(N(0, noise^2), -noise_clip, noise_clip), -1, 1): TD3's target policy smoothing."""
    eps = jnp.clip(noise * jax.random.normal(key, target_action.shape, target_action.dtype), -noise_clip, noise_clip)
    return jnp.clip(target_action + eps, ACTION_LOW, ACTION_HIGH)


def make_td3_losses(networks: DeterministicTwinQNetworks, cfg: TrainConfig) -> tuple[Callable, Callable]:
    """(critic_loss(critic, targets, batch, key), actor_loss(actor, critic, batch)); the actor maximises Q_1."""

    def critic_loss(critic_params, targets, batch: Batch, key):
        next_obs = observation(batch[hs.NEXT_STATE_KEY], batch[GOAL_KEY])
        next_action = smoothed_target_action(networks.deterministic_action(targets["actor"], next_obs), key,
                                             cfg.target_noise, cfg.target_noise_clip)
        next_q = networks.q_values(targets["critic"], batch[hs.NEXT_STATE_KEY], next_action, batch[GOAL_KEY])
        target = td_target(batch[hs.REWARD_KEY], next_q, cfg.discount)
        q = networks.q_values(critic_params, batch[STATE_KEY], batch[ACTION_KEY], batch[GOAL_KEY])
        loss = twin_q_loss(q, target, batch[hs.MASK_KEY])
        return loss, {"critic_loss": loss, "q": jnp.mean(q), "target_q": jnp.mean(target)}

    def actor_loss(actor_params, critic_params, batch: Batch):
        action = networks.deterministic_action(actor_params, observation(batch[STATE_KEY], batch[GOAL_KEY]))
        q_first = networks.q_values(critic_params, batch[STATE_KEY], action, batch[GOAL_KEY])[0]
        loss = -jnp.mean(q_first)
        return loss, {"actor_loss": loss}

    return critic_loss, actor_loss


def make_td3_sgd_step(networks: DeterministicTwinQNetworks, cfg: TrainConfig, opt: Optimizers) -> Callable:
    """sgd_step(state, (batch, key)): the critics every step; the actor (against the updated critics) and both
    targets only when grad_steps % policy_delay == 0 (a select, so the epoch stays one program)."""
    critic_loss, actor_loss = make_td3_losses(networks, cfg)

    def sgd_step(state, batch_and_key) -> tuple[Any, Metrics]:
        batch, key = batch_and_key
        (_, critic_metrics), critic_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.critic_params, state.target_params, batch, key)
        critic_params, critic_opt_state = apply_updates(opt.critic, critic_grads, state.critic_opt_state,
                                                        state.critic_params)
        (_, actor_metrics), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor_params, critic_params, batch)
        actor_params, actor_opt_state = apply_updates(opt.actor, actor_grads, state.actor_opt_state,
                                                      state.actor_params)
        targets = {"actor": polyak(state.target_params["actor"], actor_params, cfg.tau),
                   "critic": polyak(state.target_params["critic"], critic_params, cfg.tau)}
        delayed = state.grad_steps % cfg.policy_delay == 0
        actor_params, actor_opt_state, targets = select(
            delayed, (actor_params, actor_opt_state, targets),
            (state.actor_params, state.actor_opt_state, state.target_params))
        state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state, critic_params=critic_params,
                              critic_opt_state=critic_opt_state, target_params=targets,
                              grad_steps=state.grad_steps + 1)
        metrics = {**critic_metrics, **actor_metrics, **batch_metrics(batch),
                   "actor_updated": delayed.astype(jnp.float32)}
        return state, metrics

    return sgd_step


def actor_and_critic_targets(params: dict[str, Any]) -> dict[str, Any]:
    """TD3 keeps a target actor and target critics, both starting equal to the online networks."""
    return {"actor": params["actor"], "critic": params["critic"]}


def build(spec: EnvSpec, cfg: TrainConfig, her: bool = False) -> Agent:
    networks, optimizers = make_twin_q_networks(spec, cfg, deterministic=True), make_optimizers(cfg)
    return Agent(name="td3_her" if her else "td3", networks=networks, optimizers=optimizers,
                 make_pool=hs.hindsight_pool(spec, cfg.her_ratio if her else 0.0),
                 sgd_step=make_td3_sgd_step(networks, cfg, optimizers), explore=networks.sample_action,
                 init_targets=actor_and_critic_targets)


register_algorithm("td3", build, "goal-conditioned TD3 on the env's own goals")
register_algorithm("td3_her", lambda spec, cfg: build(spec, cfg, her=True),
                   "TD3 with hindsight relabelling of her_ratio of the goals to future achieved goals")
