"""Twin Q critics Q_i(s, a, g) on the shared residual MLP, with the tanh-Gaussian or a deterministic actor."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from crl.config import TrainConfig
from crl.envs.spec import EnvSpec
from crl.networks import ACTOR_HEADS, INIT_BATCH, ActorNetworks, Params, ResidualMLP, mlp_from_config

NUM_Q = 2  # twin critics (clipped double Q: SAC and TD3)
Q_HEADS = (1,)  # one scalar output per critic


@dataclasses.dataclass(frozen=True)
class TwinQNetworks(ActorNetworks):
    """Actor plus NUM_Q critics stacked on a leading axis (one network applied with vmap, so twins cost one trace)."""

    q: ResidualMLP = None

    def init(self, key: jax.Array) -> Params:
        """Fresh params {'actor': ..., 'critic': twin Q params with a leading (NUM_Q, ...) axis}."""
        k_actor, k_q = jax.random.split(key)
        sag = jnp.zeros((INIT_BATCH, self.state_dim + self.action_size + self.goal_dim), jnp.float32)
        critic = jax.vmap(lambda k: self.q.init(k, sag)["params"])(jax.random.split(k_q, NUM_Q))
        return {"actor": self.actor.init(k_actor, self.actor_input())["params"], "critic": critic}

    def q_values(self, critic_params: Params, state: jax.Array, action: jax.Array, goal: jax.Array) -> jax.Array:
        """(NUM_Q, B) values of every critic on concat(state, action, goal)."""
        x = jnp.concatenate([state, action, goal], axis=-1)
        return jax.vmap(lambda p: self.q.apply({"params": p}, x)[0][..., 0])(critic_params)

    def q_value(self, critic_params: Params, state: jax.Array, action: jax.Array, goal: jax.Array) -> jax.Array:
        """(B,) min over the twin critics: the value the actor maximises (what `crl viz q` draws)."""
        return jnp.min(self.q_values(critic_params, state, action, goal), axis=0)


@dataclasses.dataclass(frozen=True)
class DeterministicTwinQNetworks(TwinQNetworks):
    """TD3's networks: a deterministic actor tanh(mu(obs)); collection adds clipped Gaussian noise."""

    exploration_noise: float = 0.0

    def actor_dist(self, actor_params: Params, obs: jax.Array):
        raise TypeError("a deterministic actor has no action distribution; use deterministic_action or sample_action")

    def deterministic_action(self, actor_params: Params, obs: jax.Array) -> jax.Array:
        """tanh(mu(obs)): the action TD3 learns, evaluates and exports."""
        (mean,) = self.actor.apply({"params": actor_params}, obs)
        return jnp.tanh(mean)

    def sample_action(self, actor_params: Params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """clip(tanh(mu) + N(0, exploration_noise^2), -1, 1), and a zero log-probability (none is defined)."""
        action = self.deterministic_action(actor_params, obs)
        noise = self.exploration_noise * jax.random.normal(key, action.shape, action.dtype)
        return jnp.clip(action + noise, -1.0, 1.0), jnp.zeros(action.shape[:-1], action.dtype)


def make_twin_q_networks(spec: EnvSpec, cfg: TrainConfig, deterministic: bool = False) -> TwinQNetworks:
    """Actor (actor_depth x actor_width) and twin critics (critic_depth x critic_width) for an environment."""
    heads = 1 if deterministic else ACTOR_HEADS
    common = dict(actor=mlp_from_config(cfg, cfg.actor_width, cfg.actor_depth, (spec.action_size,) * heads),
                  q=mlp_from_config(cfg, cfg.critic_width, cfg.critic_depth, Q_HEADS),
                  state_dim=spec.state_dim, goal_dim=spec.goal_dim, action_size=spec.action_size)
    if deterministic:
        return DeterministicTwinQNetworks(**common, exploration_noise=cfg.exploration_noise)
    return TwinQNetworks(**common)
