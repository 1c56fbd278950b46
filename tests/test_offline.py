"""Offline training (`crl train --offline`): runs on a collected dataset, exact resume, vmapped seeds, the windows
it samples, the goals it uses, the BC term of the offline CRL actor, and the errors of bad input."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import crl  # noqa: F401  (before jax)
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from stats import chi2_ok
from test_scale import assert_same_metrics
from tiny_run import comparable, read_metrics, tiny_config, write_tiny_yaml

from crl import envs
from crl.checkpoint import Checkpointer
from crl.config import ConfigError, TrainConfig, shape_differences, to_dict, validate
from crl.offline import data as offline_data
from crl.offline.collect import collect, write_collected
from crl.offline.dataset import GOALS_KEY, DatasetError, load_dataset, save_dataset, sidecar_path
from crl.offline.setup import offline_config
from crl.train import SGD_RATE, make_trainer, train

DATA_ENV = "point_u_maze"  # the env the dataset is collected in (its sidecar names it)
OTHER_ENV = "point_big_maze"  # same robot, another maze: a config naming it is refused
DEFAULT_ENV = TrainConfig().env  # an offline run left at the default env takes the dataset's
EPISODES = 40
SEEDS = (0, 1)
KEEP_CHECKPOINTS = 3


def offline_cfg(dataset: Path, run_dir: Path, **changes) -> TrainConfig:
    """The tiny run on the dataset, env left at the default: the sidecar must supply it."""
    return tiny_config(env=DEFAULT_ENV, eval_env=DATA_ENV, offline=str(dataset), run_dir=str(run_dir), **changes)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory) -> Path:
    """A random-policy dataset on the point U-maze, written as `crl collect` writes it (with its sidecar)."""
    collected = collect(DATA_ENV, policy="random", episodes=EPISODES, num_envs=EPISODES, seed=0, say=lambda _: None)
    return write_collected(collected, tmp_path_factory.mktemp("data") / "random.npz", "test_offline")


@pytest.fixture(scope="module")
def offline_run(dataset_path, tmp_path_factory):
    """Two epochs of offline CRL, seed 1 (the vmapped-seeds test compares seed 1 of a two-seed run with it)."""
    run_dir = tmp_path_factory.mktemp("offline_run")
    return run_dir, train(offline_cfg(dataset_path, run_dir, seed=SEEDS[1]), print_fn=None)


def rewrite(source: Path, out: Path, rows: int | None = None, state_dim: int | None = None, goals: bool = True,
            sidecar: dict | None = None) -> Path:
    """A copy of the dataset cut to `rows` rows (last row made terminal), with observations widened to `state_dim`,
    with or without its goals key, with the given sidecar (None: no sidecar at all)."""
    data = load_dataset(source)
    rows = rows or data.num_transitions
    observations = np.asarray(data.observations[:rows])
    if state_dim is not None:
        observations = np.pad(observations, ((0, 0), (0, state_dim - observations.shape[1])))
    terminals = np.asarray(data.terminals[:rows]).copy()
    terminals[-1] = 1.0
    extras = {GOALS_KEY: np.asarray(data.extras[GOALS_KEY][:rows])} if goals else {}
    save_dataset(out, observations, np.asarray(data.actions[:rows]), terminals, sidecar or {}, extras=extras)
    if sidecar is None:
        sidecar_path(out).unlink()
    return out


# ---------------------------------------------------------------------------------------------- the runs
def test_an_offline_run_trains_without_env_steps(offline_run, dataset_path):
    run_dir, result = offline_run
    trainer, records = result.trainer, read_metrics(run_dir / "metrics.jsonl")
    assert trainer.offline and trainer.env is None and trainer.cfg.env == DATA_ENV
    assert result.state.buffer is None and result.state.env_state is None
    sgd_per_epoch = trainer.plan.train_steps_per_epoch * trainer.cfg.sgd_steps_per_train_step
    assert sgd_per_epoch > 0
    assert [r["epoch"] for r in records] == list(range(trainer.cfg.num_epochs + 1))
    assert all(r["env_steps"] == 0 for r in records)
    assert [r["grad_steps"] for r in records] == [epoch * sgd_per_epoch for epoch in range(len(records))]
    for record in records[1:]:
        assert record[SGD_RATE] > 0 and "training/sps" not in record
        assert np.isfinite(record["training/critic_loss"]) and np.isfinite(record["eval/episode_dist"])
    assert Checkpointer(run_dir, KEEP_CHECKPOINTS, True).steps() == list(range(1, trainer.cfg.num_epochs + 1))
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["config"]
    assert saved["env"] == load_dataset(dataset_path).env == DATA_ENV
    assert saved["offline"] == str(dataset_path)


def test_offline_resume_is_exact(offline_run, dataset_path, tmp_path):
    """Drop the last checkpoint and train again: the last epoch is recomputed from the restored state bit for bit."""
    run_dir, _ = offline_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    last = Checkpointer(copy, KEEP_CHECKPOINTS, True).steps()[-1]
    shutil.rmtree(copy / "checkpoints" / str(last))
    result = train(offline_cfg(dataset_path, copy, seed=SEEDS[1]), print_fn=None)
    assert result.state.buffer is None
    assert comparable(read_metrics(copy / "metrics.jsonl")) == comparable(read_metrics(run_dir / "metrics.jsonl"))


def test_vmapped_offline_seeds_equal_separate_runs(offline_run, dataset_path, tmp_path):
    run_dir, _ = offline_run
    result = train(offline_cfg(dataset_path, tmp_path, seed=SEEDS[0], num_seeds=len(SEEDS)), print_fn=None)
    assert result.trainer.trace_counts == {"prefill": 1, "epoch": 1}
    seed0, seed1 = (read_metrics(tmp_path / "seeds" / str(seed) / "metrics.jsonl") for seed in SEEDS)
    assert_same_metrics(comparable(seed1), comparable(read_metrics(run_dir / "metrics.jsonl")))
    assert seed0[-1]["training/critic_loss"] != seed1[-1]["training/critic_loss"]  # the seeds drew other windows


def test_cli_trains_offline_and_exits_2_on_a_missing_file(offline_run, dataset_path, tmp_path):
    from crl.cli import main

    config = write_tiny_yaml(tmp_path / "tiny.yaml", env=DEFAULT_ENV)
    run_dir = tmp_path / "cli_run"
    assert main(["train", "--config", str(config), "--offline", str(dataset_path), "--run-dir", str(run_dir),
                 "--seed", str(SEEDS[1])]) == 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["config"]["env"] == DATA_ENV
    # the same run as train() of the same config
    assert comparable(read_metrics(run_dir / "metrics.jsonl")) == comparable(read_metrics(offline_run[0] / "metrics.jsonl"))
    missing = tmp_path / "missing.npz"
    assert main(["train", "--config", str(config), "--offline", str(missing), "--run-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_online_and_offline_runs_do_not_resume_each_other(offline_run, dataset_path, tmp_path):
    run_dir, _ = offline_run
    offline, online = offline_cfg(dataset_path, run_dir), tiny_config(run_dir=str(run_dir))
    assert any(change.startswith("offline:") for change in shape_differences(to_dict(online), offline))
    assert any(change.startswith("offline:") for change in shape_differences(to_dict(offline_config(offline)), online))
    moved = shutil.copy(dataset_path, tmp_path / "moved.npz")  # the same data elsewhere: resuming is fine
    assert shape_differences(to_dict(offline_config(offline)),
                             offline_config(offline_cfg(Path(moved), run_dir))) == []
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    with pytest.raises(ConfigError, match="cannot resume.*offline"):
        train(tiny_config(run_dir=str(copy)), print_fn=None)  # refused before anything compiles


# ---------------------------------------------------------------------------------------------- the data
def synthetic_data(num_rows: int, traj_len: int) -> offline_data.OfflineData:
    """Rows whose state and goal encode the row index, so a window's rows can be read back."""
    row = np.arange(num_rows, dtype=np.float32)
    return offline_data.OfflineData(state=jnp.asarray(np.stack([row, 10 * row], -1)),
                                    goal=jnp.asarray(np.stack([-row, row + 0.5], -1)),
                                    action=jnp.asarray(np.stack([row / num_rows, -row / num_rows], -1)),
                                    traj_id=jnp.asarray(np.arange(num_rows, dtype=np.int32) // traj_len))


def test_sample_windows_are_consecutive_rows_with_a_uniform_start():
    num_rows, window, draws = 13, 4, 18_000
    data = synthetic_data(num_rows, traj_len=5)
    sample = jax.jit(offline_data.sample_windows, static_argnums=(2, 3))
    windows = jax.device_get(sample(data, jax.random.key(3), draws, window))
    rows = windows["obs"][..., 0].astype(int)  # (W, L): state[0] is the row index
    assert windows["obs"].shape == (draws, window, 4) and windows["action"].shape == (draws, window, 2)
    assert np.array_equal(rows, rows[:, :1] + np.arange(window))
    state, goal = np.asarray(data.state), np.asarray(data.goal)
    np.testing.assert_array_equal(windows["obs"], np.concatenate([state[rows], goal[rows]], -1))
    np.testing.assert_array_equal(windows["action"], np.asarray(data.action)[rows])
    np.testing.assert_array_equal(windows["traj_id"], np.asarray(data.traj_id)[rows])
    starts = num_rows - window + 1
    counts = np.bincount(rows[:, 0], minlength=num_rows)
    ok, stat = chi2_ok(counts, np.r_[np.full(starts, 1 / starts), np.zeros(num_rows - starts)])
    assert ok, f"window starts are not uniform over [0, {starts - 1}]: chi2 {stat:.1f}, counts {counts}"


def final_goals_by_loop(state: np.ndarray, traj_ids: np.ndarray, goal_indices: tuple[int, ...]) -> np.ndarray:
    last = {}
    for row, traj in enumerate(traj_ids):
        last[traj] = row
    return np.array([[state[last[traj], i] for i in goal_indices] for traj in traj_ids], np.float32)


@pytest.mark.parametrize("first_id", [0, 7])
def test_final_achieved_goals_match_a_loop(first_id):
    rng = np.random.default_rng(first_id)
    lengths = rng.integers(1, 6, size=9)
    traj_ids = np.repeat(np.arange(first_id, first_id + len(lengths)), lengths).astype(np.int32)
    state = rng.normal(size=(len(traj_ids), 3)).astype(np.float32)
    for goal_indices in ((0, 1), (2, 0)):
        np.testing.assert_array_equal(offline_data.final_achieved_goals(state, traj_ids, goal_indices),
                                      final_goals_by_loop(state, traj_ids, goal_indices))


def test_host_columns_use_the_files_goals_else_the_final_achieved_ones(dataset_path, tmp_path):
    spec = envs.spec(DATA_ENV)
    with_goals = load_dataset(dataset_path)
    columns = offline_data.host_columns(with_goals, spec)
    moves = np.asarray(with_goals.terminals) == 0  # every row but each trajectory's last (its action led nowhere)
    assert len(columns["traj_id"]) == with_goals.num_transitions - with_goals.num_trajectories
    np.testing.assert_array_equal(columns["goal"], with_goals.extras[GOALS_KEY][moves])
    np.testing.assert_array_equal(columns["traj_id"], with_goals.traj_ids[moves])
    np.testing.assert_array_equal(columns["state"], with_goals.observations[moves])
    np.testing.assert_array_equal(columns["action"], with_goals.actions[moves])
    without = load_dataset(rewrite(dataset_path, tmp_path / "no_goals.npz", goals=False, sidecar={"env": DATA_ENV}))
    final = final_goals_by_loop(np.asarray(without.observations), without.traj_ids, spec.goal_indices)
    np.testing.assert_array_equal(offline_data.host_columns(without, spec)["goal"], final[moves])
    assert not np.allclose(final[moves], columns["goal"])  # the random policy's commanded goals are not where it ended
    wide = tmp_path / "wide_goals.npz"
    save_dataset(wide, with_goals.observations, with_goals.actions, with_goals.terminals, {},
                 extras={GOALS_KEY: np.zeros((with_goals.num_transitions, 3), np.float32)})
    with pytest.raises(ConfigError, match=r"'goals' is shaped \(\d+, 3\).*expects \(\d+, 2\)"):
        offline_data.host_columns(load_dataset(wide), spec)


# -------------------------------------------------------------------------------------- the BC actor term
@pytest.fixture(scope="module")
def actor_setup():
    from crl.losses import Batch
    from crl.networks import make_networks

    spec = envs.spec(DATA_ENV)
    cfg = tiny_config()
    networks = make_networks(spec, cfg)
    params = jax.jit(networks.init)(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 3)
    batch = Batch(state=jax.random.normal(keys[0], (32, spec.state_dim)),
                  action=jax.random.uniform(keys[1], (32, spec.action_size), minval=-1, maxval=1),
                  goal=jax.random.normal(keys[2], (32, spec.goal_dim)))
    return spec, cfg, networks, params, batch


def actor_loss(setup, bc_weight: float):
    """crl's actor loss at this BC weight."""
    from crl.losses import make_losses

    spec, cfg, networks, _, _ = setup
    return make_losses(networks, dataclasses.replace(cfg, bc_weight=bc_weight), spec.action_size).actor_loss_fn


def test_bc_actor_loss_matches_a_recomputation_and_changes_the_gradient(actor_setup):
    """OGBench's CRL actor: mean(alpha log pi) - mean(Q) / stopgrad(mean |Q| + eps) + w * -mean log pi(a_data)."""
    _, _, networks, params, batch = actor_setup
    weight, log_alpha, key = 0.7, jnp.asarray(-0.4), jax.random.key(5)
    alpha = np.exp(float(log_alpha))
    bc_loss_fn, plain_loss_fn = actor_loss(actor_setup, weight), actor_loss(actor_setup, 0.0)

    def parts(actor):
        """The policy's log-probs of its sampled actions, their Q values, and log pi of the data's actions."""
        obs = jnp.concatenate([batch.state, batch.goal], -1)
        action, log_prob = networks.sample_action(actor, obs, key)
        return (log_prob, networks.q_value(params["critic"], batch.state, action, batch.goal),
                networks.log_likelihood(actor, obs, batch.action))

    def recomputed(actor):
        log_prob, q, log_pi_data = parts(actor)
        scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(q))) + 1e-6
        return jnp.mean(alpha * log_prob) - jnp.mean(q) / scale - weight * jnp.mean(log_pi_data)

    def of(loss_fn):
        return lambda actor: loss_fn(actor, params["critic"], log_alpha, batch, key)

    @jax.jit  # one program: compiles once
    def everything(actor):
        return (of(bc_loss_fn)(actor), of(plain_loss_fn)(actor)[1], parts(actor),
                [jax.grad(lambda a: fn(a)[0])(actor) for fn in (of(bc_loss_fn), of(plain_loss_fn))],
                jax.grad(recomputed)(actor))

    (loss, metrics), plain_metrics, got_parts, (bc_grads, plain_grads), want_grads = everything(params["actor"])
    log_prob, q, log_pi_data = (np.asarray(x, np.float64) for x in got_parts)
    want = np.mean(alpha * log_prob) - q.mean() / (np.abs(q).mean() + 1e-6) - weight * log_pi_data.mean()
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["bc_loss"]), -log_pi_data.mean(), rtol=1e-5)
    assert "bc_loss" not in plain_metrics
    for got, expected in zip(jax.tree.leaves(bc_grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(bc_grads), jax.tree.leaves(plain_grads)))


# --------------------------------------------------------------------------------------------- the errors
def test_a_sidecar_env_other_than_the_configs_is_refused(dataset_path):
    with pytest.raises(ConfigError, match=f"'{DATA_ENV}'.*'{OTHER_ENV}'"):
        offline_config(tiny_config(env=OTHER_ENV, offline=str(dataset_path)))
    assert offline_config(tiny_config(env=DATA_ENV, offline=str(dataset_path))).env == DATA_ENV


def test_a_file_without_sidecar_takes_env_or_eval_env_else_says_how(dataset_path, tmp_path):
    bare = rewrite(dataset_path, tmp_path / "bare.npz", sidecar=None)
    with pytest.raises(ConfigError, match=f"no sidecar.*--eval-env.*--env when it is not the default env '{DEFAULT_ENV}'"):
        offline_config(tiny_config(env=DEFAULT_ENV, eval_env=None, offline=str(bare)))
    assert offline_config(tiny_config(env=DEFAULT_ENV, eval_env=DATA_ENV, offline=str(bare))).env == DATA_ENV
    assert offline_config(tiny_config(env=OTHER_ENV, eval_env=DATA_ENV, offline=str(bare))).env == OTHER_ENV


def test_a_dataset_shorter_than_one_window_names_its_rows(dataset_path, tmp_path):
    rows = envs.spec(DATA_ENV).episode_length  # one trajectory: its last row is no transition, so one short
    short = rewrite(dataset_path, tmp_path / "short.npz", rows=rows, sidecar={"env": DATA_ENV})
    with pytest.raises(ConfigError, match=f"has {rows - 1} transitions .* fewer than one training window of {rows}"):
        make_trainer(tiny_config(offline=str(short)))


def test_bc_weight_with_gcbc_is_refused():
    with pytest.raises(ConfigError, match="bc_weight = 0.1 applies to algorithm 'crl'"):
        validate(tiny_config(algorithm="gcbc", bc_weight=0.1))


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(DatasetError, match=f"{missing}: no such dataset file"):
        make_trainer(tiny_config(offline=str(missing)))


def test_observations_of_another_dim_than_the_sidecar_env_are_refused(dataset_path, tmp_path):
    wide = rewrite(dataset_path, tmp_path / "wide.npz", state_dim=4, sidecar={"env": DATA_ENV})
    with pytest.raises(DatasetError, match="observations has dim 4 per row.*state_dim 2"):
        make_trainer(tiny_config(offline=str(wide)))


def test_sweep_prelaunch_check_reads_the_datasets_env(dataset_path, tmp_path):
    """`crl sweep` checks an offline run against the dataset's env (its sidecar), not the config's default env."""
    from crl.sweep.check import run_problem

    pool = tiny_config().num_envs * (envs.spec(DATA_ENV).episode_length - 1)  # point_u_maze: 100-step windows
    assert run_problem(tiny_config(offline=str(dataset_path), env=DEFAULT_ENV, batch_size=pool,
                                   sgd_steps_per_train_step=1)) is None
    problem = run_problem(tiny_config(offline=str(dataset_path), env=DEFAULT_ENV, batch_size=pool + 1,
                                      sgd_steps_per_train_step=1))
    assert problem and f"relabelled pool of {pool}" in problem  # ant's 1000-step windows would have passed
    assert "no such dataset file" in run_problem(tiny_config(offline=str(tmp_path / "gone.npz")))
