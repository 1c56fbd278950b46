"""Jitted batched resets and rollouts shared by the environment tests."""
import jax


def reset_batch(env, seed: int, n: int):
    """`n` states of env.reset under jit and vmap, from PRNGKey(seed)."""
    return jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(seed), n))


def rollout_fn(env):
    """jitted run(state, actions (steps, n, action_size)) -> the stacked states after every step."""

    @jax.jit
    def run(state, actions):
        return jax.lax.scan(lambda s, a: (jax.vmap(env.step)(s, a),) * 2, state, actions)[1]

    return run
