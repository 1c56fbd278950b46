"""A user-defined algorithm in one module: goal-conditioned behaviour cloning with a squared-error loss.

Use it with `CRL_PLUGINS=mse_bc crl train --config quickstart --algorithm mse_bc` (this folder on
PYTHONPATH), or `import mse_bc` before `crl.train.train(cfg)` in Python.
"""
import jax
import jax.numpy as jnp

from crl.agents import Agent, apply_updates, make_optimizers, register_algorithm
from crl.agents.contrastive import future_goal_pool
from crl.agents.imitation import ImitationNetworks
from crl.networks import ACTOR_HEADS, mlp_from_config


def build(spec, cfg):
    """The shared residual actor, CRL's future-goal pool, and an SGD step over the TrainingState."""
    networks = ImitationNetworks(
        actor=mlp_from_config(cfg, cfg.actor_width, cfg.actor_depth, (spec.action_size,) * ACTOR_HEADS),
        state_dim=spec.state_dim, goal_dim=spec.goal_dim, action_size=spec.action_size)
    optimizers = make_optimizers(cfg)

    def loss(actor_params, batch):
        obs = jnp.concatenate([batch["state"], batch["goal"]], axis=-1)
        error = networks.deterministic_action(actor_params, obs) - batch["action"]
        return jnp.mean(jnp.sum(jnp.square(error), axis=-1))

    def sgd_step(state, batch_and_key):
        batch, _key = batch_and_key
        value, grads = jax.value_and_grad(loss)(state.actor_params, batch)
        params, opt_state = apply_updates(optimizers.actor, grads, state.actor_opt_state, state.actor_params)
        state = state.replace(actor_params=params, actor_opt_state=opt_state, grad_steps=state.grad_steps + 1)
        return state, {"mse_loss": value}

    return Agent(name="mse_bc", networks=networks, optimizers=optimizers, make_pool=future_goal_pool(spec, cfg),
                 sgd_step=sgd_step, explore=networks.sample_action)


register_algorithm("mse_bc", build, "behaviour cloning of the agent's own actions with a squared error")
