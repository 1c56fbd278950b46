"""What an algorithm gives the shared trainer (`Agent`), and the update pieces every SGD step is built from."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from crl.config import TrainConfig

Metrics = dict[str, jax.Array]
Pool = dict[str, jax.Array]  # relabelled transitions, every array shaped (N, ...)
Batch = Mapping[str, jax.Array]  # one SGD batch of a pool: the same keys, every array shaped (B, ...)


def observation(state: jax.Array, goal: jax.Array) -> jax.Array:
    """The actor's input concat(state, goal)."""
    return jnp.concatenate([state, goal], axis=-1)


class Optimizers(NamedTuple):
    actor: optax.GradientTransformation
    critic: optax.GradientTransformation
    alpha: optax.GradientTransformation


def make_optimizers(cfg: TrainConfig) -> Optimizers:
    """Adam for actor, critic and alpha; no clipping, no weight decay (reference section 1)."""
    return Optimizers(optax.adam(cfg.actor_lr), optax.adam(cfg.critic_lr), optax.adam(cfg.alpha_lr))


def apply_updates(opt: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any) -> tuple[Any, Any]:
    """(new params, new optimiser state) after one optimiser step on `grads`."""
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def polyak(target: Any, online: Any, tau: float) -> Any:
    """Target networks moved a fraction tau towards the online ones: (1 - tau) * target + tau * online."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of `values` over the entries where mask is 1 (0 when none is); mask broadcasts against values."""
    mask = jnp.broadcast_to(mask, values.shape)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def select(flag: jax.Array, new: Any, old: Any) -> Any:
    """`new` where flag is true, else `old`, leaf by leaf (a delayed update that keeps one program)."""
    return jax.tree.map(lambda n, o: jnp.where(flag, n, o), new, old)


def no_targets(params: dict[str, Any]) -> None:
    """Algorithms without target networks keep no target params (TrainingState.target_params is None)."""
    return None


@dataclasses.dataclass(frozen=True)
class Agent:
    """One configured algorithm: what the shared trainer calls, all pure and jittable.

    - networks: init(key) -> {'actor': ..., 'critic': ...} (critic may be {}), sample_action(params, obs, key),
      deterministic_action(params, obs) and, for algorithms with a critic, q_value(critic, s, a, g) -> (B,).
    - make_pool(windows, key) -> Pool: the relabelled transitions of one training step (from `sample_windows`).
    - sgd_step(state, (batch, key)) -> (state, metrics) over the TrainingState pytree; increments grad_steps.
    - explore(actor_params, obs, key) -> (action, aux): the collection policy.
    - init_targets(params) -> the target params kept in TrainingState.target_params (or None).
    """

    name: str
    networks: Any
    optimizers: Optimizers
    make_pool: Callable[[Mapping[str, jax.Array], jax.Array], Pool]
    sgd_step: Callable[[Any, tuple[Any, jax.Array]], tuple[Any, Metrics]]
    explore: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
    init_targets: Callable[[dict[str, Any]], Any] = no_targets

    @property
    def has_critic(self) -> bool:
        """Whether the algorithm learns a critic that `crl viz q` can draw."""
        return hasattr(self.networks, "q_value")
