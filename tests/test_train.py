"""Training: a tiny point-maze run learns measurably, compiles its epoch once and logs exact accounting."""
import json

import jax
import pytest
import yaml

from crl.config import TrainConfig
from crl.train import make_trainer, train

LEARN_EPOCHS = 3
LEARN_TRAIN_STEPS = 20  # per epoch: 960 SGD steps in all; time at goal ~41 by epoch 2 (random policy: 0.7)
MIN_GAIN_OVER_RANDOM = 10.0  # steps at goal (out of 100) above the uniform random policy


def tiny_point_maze(run_dir, **changes) -> TrainConfig:
    values = dict(env="point_u_maze", num_envs=64, unroll_length=25, max_replay_size=1000, min_replay_size=100,
                  batch_size=256, sgd_steps_per_train_step=16, num_eval_envs=128, critic_depth=4, actor_depth=4,
                  critic_width=128, actor_width=128, num_epochs=LEARN_EPOCHS,
                  total_env_steps=6_400 + LEARN_EPOCHS * LEARN_TRAIN_STEPS * 1_600, run_dir=str(run_dir), progress=False)
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = tiny_point_maze(run_dir)
    return cfg, train(cfg)


def test_point_maze_learns_above_random(learned):
    _, result = learned
    first, last = result.history[0], result.history[-1]
    random_success = first["eval/random_episode_success"]
    final = max(r["eval/episode_success"] for r in result.history[-2:])
    assert final > random_success + MIN_GAIN_OVER_RANDOM, (random_success, [r["eval/episode_success"] for r in result.history])
    assert last["eval/episode_dist"] < first["eval/episode_dist"]  # closer to the goal on average
    # the critic learns to tell the positive goal apart from the batch's negatives
    assert last["training/categorical_accuracy"] > 2.0 / 256
    assert last["training/logits_pos"] > last["training/logits_neg"]


@pytest.mark.slow
def test_stitching_reaches_goals_never_trained_on(tmp_path):
    """Trained only on 1-3 cell hops (point_u_maze_gen_1f2f3f), the policy reaches the 4-6 cell goals of
    point_u_maze_eval (reference 6.2) more often than the random policy: stitching happens."""
    epochs = 10
    cfg = tiny_point_maze(tmp_path, env="point_u_maze_gen_1f2f3f", eval_env="point_u_maze_eval", num_epochs=epochs,
                          critic_width=256, actor_width=256, total_env_steps=6_400 + epochs * 37 * 1_600)
    result = train(cfg)
    random_success = result.history[0]["eval/random_episode_success"]
    best_late = max(r["eval/episode_success"] for r in result.history[-3:])  # noisy between epochs
    assert best_late > random_success + MIN_GAIN_OVER_RANDOM, [r["eval/episode_success"] for r in result.history]


def test_epoch_compiles_once(learned):
    _, result = learned
    assert result.trainer.trace_counts == {"prefill": 1, "epoch": 1}


def test_run_directory_and_exact_step_accounting(learned):
    cfg, result = learned
    plan = result.trainer.plan
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == cfg.num_epochs + 1
    assert [r["epoch"] for r in records] == list(range(cfg.num_epochs + 1))
    assert records[0]["env_steps"] == plan.prefill_env_steps
    assert records[-1]["env_steps"] == plan.total_env_steps == int(result.state.env_steps)
    assert records[-1]["grad_steps"] == cfg.num_epochs * plan.train_steps_per_epoch * cfg.sgd_steps_per_train_step
    assert records[0]["time/compile_s"] > 0 and all("training/sps" in r for r in records[1:])
    resolved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert resolved["config"]["critic_width"] == 128
    assert resolved["step_plan"]["total_env_steps"] == plan.total_env_steps
    assert list((result.run_dir / "tb").glob("events.out.tfevents.*"))


def test_sgd_update_order_actor_before_critic():
    """The actor update must see the pre-step critic (reference: actor and alpha first, then critic)."""
    from crl.agents import contrastive, make_optimizers
    from crl.agents.contrastive import make_sgd_step
    from crl.bench import ANT_SHAPES, _random_batch
    from crl.losses import make_losses
    from crl.train import init_learner_state

    cfg = TrainConfig(critic_width=32, actor_width=32)
    agent = contrastive.build(ANT_SHAPES, cfg)
    losses, opt = make_losses(agent.networks, cfg, ANT_SHAPES.action_size), make_optimizers(cfg)
    state = init_learner_state(agent, jax.random.PRNGKey(0))
    batch, key = _random_batch(ANT_SHAPES, 16, jax.random.PRNGKey(1)), jax.random.PRNGKey(2)
    new_state, _ = jax.jit(make_sgd_step(losses, opt))(state, (batch, key))
    grads = jax.grad(lambda p: losses.actor_loss_fn(p, state.critic_params, state.log_alpha, batch, key)[0])(
        state.actor_params)
    expected, _ = opt.actor.update(grads, state.actor_opt_state, state.actor_params)
    leaf = lambda tree: jax.tree.leaves(tree)[0]  # noqa: E731
    assert jax.numpy.allclose(leaf(new_state.actor_params), leaf(state.actor_params) + leaf(expected), atol=1e-6)
    assert int(new_state.grad_steps) == 1
    assert not jax.numpy.allclose(leaf(new_state.critic_params), leaf(state.critic_params))


def test_eval_env_with_other_dims_is_rejected(tmp_path):
    from crl.config import ConfigError

    with pytest.raises(ConfigError, match="eval_env 'ant'.*same robot"):
        make_trainer(tiny_point_maze(tmp_path, eval_env="ant"))


@pytest.mark.slow
def test_ant_trains_a_few_epochs_on_cpu(tmp_path):
    """The paper's algorithm on a real Brax env (spring ant), small num_envs; no patched library."""
    cfg = TrainConfig(env="ant", num_envs=8, unroll_length=62, batch_size=256, sgd_steps_per_train_step=10,
                      num_eval_envs=8, num_epochs=2, total_env_steps=17 * 8 * 62 + 2 * 2 * 8 * 62,
                      reset_mode="cached", run_dir=str(tmp_path), progress=False, random_baseline=False)
    result = train(cfg)
    assert len(result.history) == 3
    assert all(jax.numpy.isfinite(r["training/critic_loss"]) for r in result.history[1:])
    assert result.history[-1]["env_steps"] == result.trainer.plan.total_env_steps
