"""Evaluation cannot be poisoned: steps after an episode ended never reach the metrics, NaN included."""
import flax
import jax
import jax.numpy as jnp
import numpy as np

from crl.envs.spec import EnvSpec
from crl.evaluate import HEADLINE_PREFIX, make_evaluator

N_ENVS, EPISODE = 6, 10
END_STEP = np.array([3, 5, 10, 1, 7, 10])  # the step (1-based) at which each env terminates
SUCCESS_FROM = np.array([2, 9, 4, 1, 1, 11])  # success is 1 from this step on (while alive)
SPEC = EnvSpec(name="nan_after_done", backend="jax", state_dim=1, goal_indices=(0,), action_size=1,
               episode_length=EPISODE, dt=1.0, success_radius=1.0, metric_names=("success", "dist"))


@flax.struct.dataclass
class _State:
    obs: jax.Array
    done: jax.Array
    metrics: dict
    t: jax.Array


class NanAfterDoneEnv:
    """Reports NaN metrics and observations on every step after its episode ended."""

    def reset(self, key):
        zeros = jnp.zeros(N_ENVS)
        return _State(obs=jnp.zeros((N_ENVS, 2)), done=zeros, metrics={"success": zeros, "dist": zeros},
                      t=jnp.zeros(N_ENVS, jnp.int32))

    def step(self, state, action):
        t = state.t + 1
        ended = t > jnp.asarray(END_STEP)
        success = (t >= jnp.asarray(SUCCESS_FROM)).astype(jnp.float32)
        dist = jnp.full(N_ENVS, 0.5)
        nan = jnp.full(N_ENVS, jnp.nan)
        return _State(obs=jnp.where(ended[:, None], jnp.nan, jnp.ones((N_ENVS, 2))),
                      done=(t >= jnp.asarray(END_STEP)).astype(jnp.float32),
                      metrics={"success": jnp.where(ended, nan, success), "dist": jnp.where(ended, nan, dist)}, t=t)


def test_nan_after_termination_gives_the_metrics_of_the_live_steps():
    policy = lambda params, obs, key: jnp.zeros((obs.shape[0], 1))  # noqa: E731
    metrics = jax.jit(make_evaluator(NanAfterDoneEnv(), SPEC, policy, EPISODE))(None, jax.random.PRNGKey(0))
    metrics = {k: float(v) for k, v in metrics.items()}
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    # independent count: steps 1..END_STEP are alive (the terminating step counts), success from SUCCESS_FROM
    live_success = np.maximum(0, END_STEP - SUCCESS_FROM + 1)
    np.testing.assert_allclose(metrics[f"{HEADLINE_PREFIX}success"], live_success.mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics[f"{HEADLINE_PREFIX}dist"], (0.5 * END_STEP).mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics[f"{HEADLINE_PREFIX}success_any"], (live_success > 0).mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["eval/avg_episode_length"], END_STEP.mean(), rtol=1e-6)


def test_nonfinite_evaluation_stops_training_and_rolls_back_like_training_metrics(tmp_path):
    """Eval metrics go through the same NaN check and rollback rules as training metrics."""
    import pytest

    from crl.checkpoint import Checkpointer
    from crl.train import NonFiniteError, make_trainer, train
    from tiny_run import read_metrics, tiny_config

    # TINY_RUN's epochs (2), so the prefill and epoch programs are the ones other tests compiled (disk cache).
    # Evaluations 0 (before training) and 1 are clean; from epoch 2 on the policy's eval is NaN.
    clean_epochs = 2
    cfg = tiny_config(run_dir=str(tmp_path / "run"), nan_rollbacks=1, progress=True, random_baseline=False)
    trainer = make_trainer(cfg)
    clean_evaluate, calls = trainer.evaluate, []

    def poisoned_flag():
        calls.append(1)
        return np.bool_(len(calls) > clean_epochs)

    def poisoned(params, key):
        metrics = clean_evaluate(params, key)
        bad = jax.pure_callback(poisoned_flag, jax.ShapeDtypeStruct((), jnp.bool_))
        return {**metrics, "eval/episode_success": jnp.where(bad, jnp.nan, metrics["eval/episode_success"])}

    trainer.evaluate = poisoned
    lines = []
    with pytest.raises(NonFiniteError, match=r"epoch 2: non-finite eval/episode_success"):
        train(cfg, trainer=trainer, print_fn=lines.append)
    assert sum("rolled back to epoch 1" in line for line in lines) == 1
    assert [r["epoch"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [0, 1]
    assert Checkpointer(cfg.run_dir, cfg.keep_checkpoints, True).steps() == [1]
