"""FLOPs of one SGD update from XLA's cost analysis, exact at any depth without compiling the deep network.

XLA's cost analysis counts a while-loop (scan) body once, not times its trip count, so the scanned
residual blocks of a deep network would be counted as one block. Instead one SGD update (actor, alpha
and critic losses, their gradients and Adam) is compiled alone with straight-line (unrolled) blocks at
1 and 2 residual blocks per network; its cost is affine in the number of blocks of each network, so
flops(c, a) = f(1, 1) + (c - 1) * [f(2, 1) - f(1, 1)] + (a - 1) * [f(1, 2) - f(1, 1)].
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from crl import envs
from crl.config import BLOCK_LAYERS, TrainConfig
from crl.agents import build_agent
from crl.buffer import ACTION_KEY, OBS_KEY, TRAJ_ID_KEY
from crl.networks import num_blocks

FLOPS_KEY = "flops"
ONE_BLOCK, TWO_BLOCKS = BLOCK_LAYERS, 2 * BLOCK_LAYERS  # depths of the two probe networks


def _compiled_flops(cfg: TrainConfig) -> float:
    """XLA's FLOP count of one SGD update for `cfg` (abstract inputs; nothing allocated)."""
    from crl.train import init_learner_state  # train imports this package

    spec = envs.spec(cfg.env)
    agent = build_agent(spec, cfg)
    state = jax.eval_shape(lambda key: init_learner_state(agent, key), jax.random.PRNGKey(0))
    key = jax.eval_shape(jax.random.PRNGKey, 0)
    batch = batch_template(agent, spec, cfg.batch_size)
    return float(jax.jit(agent.sgd_step).lower(state, (batch, key)).compile().cost_analysis()[FLOPS_KEY])


def batch_template(agent, spec, batch_size: int) -> dict:
    """Abstract (batch_size, ...) arrays of the algorithm's pool, from its make_pool on one abstract window."""
    window = {OBS_KEY: jax.ShapeDtypeStruct((1, spec.episode_length, spec.obs_dim), jnp.float32),
              ACTION_KEY: jax.ShapeDtypeStruct((1, spec.episode_length, spec.action_size), jnp.float32),
              TRAJ_ID_KEY: jax.ShapeDtypeStruct((1, spec.episode_length), jnp.int32)}
    pool = jax.eval_shape(agent.make_pool, window, jax.eval_shape(jax.random.PRNGKey, 0))
    return {name: jax.ShapeDtypeStruct((batch_size,) + x.shape[1:], x.dtype) for name, x in pool.items()}


@dataclasses.dataclass(frozen=True)
class BlockCosts:
    """One SGD update's FLOPs as an affine function of the number of residual blocks of each network."""

    base: float  # one block in the critic encoders and one in the actor
    critic_block: float  # each further critic block (both encoders)
    actor_block: float  # each further actor block

    def at(self, critic_depth: int, actor_depth: int) -> float:
        return (self.base + (num_blocks(critic_depth) - 1) * self.critic_block
                + (num_blocks(actor_depth) - 1) * self.actor_block)


def block_costs(cfg: TrainConfig) -> BlockCosts:
    """The three probe compiles of the module docstring, for cfg's widths, batch, dtype and algorithm."""
    probe = dataclasses.replace(cfg, unroll_blocks=True, num_seeds=1, num_devices=1)
    at = lambda critic, actor: _compiled_flops(  # noqa: E731
        dataclasses.replace(probe, critic_depth=critic, actor_depth=actor))
    base = at(ONE_BLOCK, ONE_BLOCK)
    return BlockCosts(base, at(TWO_BLOCKS, ONE_BLOCK) - base, at(ONE_BLOCK, TWO_BLOCKS) - base)


def sgd_update_flops(cfg: TrainConfig) -> float:
    """FLOPs of one SGD update of one seed at the config's depths (see the module docstring)."""
    return block_costs(cfg).at(cfg.critic_depth, cfg.actor_depth)
