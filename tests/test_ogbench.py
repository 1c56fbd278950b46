"""The `ogbench` extra: OGBench's loader agrees with crl's on an OGBench-written file, and crl actors are scored on
OGBench's pointmaze tasks by OGBench's rule. Skipped where the extra is not installed; nothing downloads."""
from __future__ import annotations

import subprocess
import sys
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ogbench = pytest.importorskip("ogbench")

from crl.agents import build_agent  # noqa: E402
from crl.config import ConfigError  # noqa: E402
from crl.offline import load_dataset  # noqa: E402
from crl.offline import ogbench as crl_ogbench  # noqa: E402
from tiny_run import tiny_config  # noqa: E402

DATASET = "pointmaze-medium-navigate-v0"
CRL_NAME = crl_ogbench.OGBENCH_PREFIX + DATASET
TRAIN_LENGTHS = (4, 7, 2, 5)  # rows per trajectory (each >= 2: OGBench drops every trajectory's last row)
VAL_LENGTHS = (3, 6)
STATE_DIM = ACTION_DIM = 2  # pointmaze: the state is the point's x, y; the action a 2-d displacement
SUPPORTED = "pointmaze, antmaze, humanoidmaze"


def random_trajectories(lengths, seed):
    """Point-maze-like trajectories: a random walk of x, y per trajectory, with its actions (float32)."""
    rng = np.random.default_rng(seed)
    actions = [rng.uniform(-1, 1, (n, ACTION_DIM)).astype(np.float32) for n in lengths]
    states = [(rng.uniform(0, 20, (1, STATE_DIM)) + np.cumsum(0.2 * a, axis=0)).astype(np.float32) for a in actions]
    return states, actions


def write_ogbench_file(path, states, actions):
    """What OGBench's data generation scripts write: savez_compressed, float32 rows, bool terminals, qpos/qvel."""
    terminals = np.concatenate([np.arange(len(s)) == len(s) - 1 for s in states])
    observations = np.concatenate(states)
    np.savez_compressed(path, observations=observations, actions=np.concatenate(actions), terminals=terminals,
                        qpos=observations, qvel=np.zeros_like(observations))


def expected_ogbench_rows(states, actions):
    """OGBench's non-compact layout, computed per trajectory: every row but the last, with the next state."""
    return dict(observations=np.concatenate([s[:-1] for s in states]),
                next_observations=np.concatenate([s[1:] for s in states]),
                actions=np.concatenate([a[:-1] for a in actions]),
                terminals=np.concatenate([np.arange(len(s) - 1) == len(s) - 2 for s in states]).astype(np.float32))


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test (OGBench fetches with urllib.request.urlopen when a file is missing)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_ogbench_loader_and_crl_loader_agree_on_an_ogbench_file(tmp_path, no_network):
    splits = {"": TRAIN_LENGTHS, "-val": VAL_LENGTHS}
    written = {suffix: random_trajectories(lengths, seed) for seed, (suffix, lengths) in enumerate(splits.items())}
    for suffix, (states, actions) in written.items():
        write_ogbench_file(tmp_path / f"{DATASET}{suffix}.npz", states, actions)

    env, train, val = ogbench.make_env_and_datasets(DATASET, dataset_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{DATASET}-val.npz", f"{DATASET}.npz"]  # nothing fetched
    for suffix, theirs in (("", train), ("-val", val)):
        states, actions = written[suffix]
        expected = expected_ogbench_rows(states, actions)
        assert sorted(theirs) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(theirs[key], value, err_msg=key)

        ours = load_dataset(tmp_path / f"{DATASET}{suffix}.npz", state_dim=env.observation_space.shape[0],
                            action_size=env.action_space.shape[0])
        lengths = [len(s) for s in states]
        np.testing.assert_array_equal(ours.traj_ids, np.repeat(np.arange(len(lengths)), lengths))
        np.testing.assert_array_equal(ours.observations, np.concatenate(states))
        np.testing.assert_array_equal(ours.actions, np.concatenate(actions))
        # OGBench's row i is crl's i-th row that has a successor in its trajectory; its next state is that successor.
        has_next = np.r_[ours.traj_ids[1:] == ours.traj_ids[:-1], False]
        np.testing.assert_array_equal(ours.observations[has_next], theirs["observations"])
        np.testing.assert_array_equal(ours.observations[np.r_[False, has_next[:-1]]], theirs["next_observations"])
        np.testing.assert_array_equal(ours.actions[has_next], theirs["actions"])
        their_traj_ids = np.r_[0, np.cumsum(theirs["terminals"])[:-1]]
        np.testing.assert_array_equal(ours.traj_ids[has_next], their_traj_ids)


@pytest.mark.parametrize("family", ["pointmaze", "antmaze", "humanoidmaze"])
def test_ogbench_spec_matches_the_env(family):
    name = f"{family}-medium-navigate-v0"
    spec = crl_ogbench.ogbench_spec(crl_ogbench.OGBENCH_PREFIX + name)
    assert spec == crl_ogbench.ogbench_spec(name)
    env = ogbench.make_env_and_datasets(name, env_only=True)
    assert (spec.state_dim, spec.action_size) == (env.observation_space.shape[0], env.action_space.shape[0])
    assert spec.episode_length == env.spec.max_episode_steps and spec.backend == "ogbench"
    ob, info = env.reset(seed=0, options=dict(task_id=1))
    maze = env.unwrapped
    np.testing.assert_allclose(ob[list(spec.goal_indices)], maze.get_xy()[:2])  # the goal is the robot's x, y
    np.testing.assert_allclose(info["goal"][list(spec.goal_indices)], maze.cur_goal_xy)
    for scale, success in ((0.99, True), (1.01, False)):  # the radius is the one the env's success rule uses
        maze.set_xy(np.asarray(maze.cur_goal_xy) + [scale * spec.success_radius, 0.0])
        assert maze.compute_success() == success


def tiny_actor(spec):
    agent = build_agent(spec, tiny_config())
    return agent.networks.deterministic_action, agent.networks.init(jax.random.PRNGKey(0))["actor"]


def test_one_evaluation_episode_with_a_crl_actor(no_network):
    spec = crl_ogbench.ogbench_spec(CRL_NAME)
    deterministic_action, actor_params = tiny_actor(spec)
    evaluate = crl_ogbench.make_ogbench_evaluator(CRL_NAME, deterministic_action, episodes_per_task=1, task_ids=[1])
    numpy_state = np.random.get_state()
    metrics = evaluate(actor_params)
    assert set(metrics) == {"eval/ogbench_success", "eval/ogbench_task1_success", "eval/ogbench_episode_length"}
    assert metrics["eval/ogbench_success"] in (0.0, 1.0)
    assert metrics["eval/ogbench_success"] == metrics["eval/ogbench_task1_success"]
    assert 1 <= metrics["eval/ogbench_episode_length"] <= spec.episode_length
    assert evaluate(actor_params) == metrics  # the same seed replays the same episode
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))  # global numpy restored


def greedy_action(gain, obs):
    """Straight at the goal (obs = x, y, goal x, goal y): reaches some pointmaze goals and not others."""
    return jnp.clip(gain * (obs[:, 2:4] - obs[:, 0:2]), -1.0, 1.0)


def ogbench_rule_by_hand(env, tasks, episodes, seed):
    """OGBench's evaluate loop written out: per task, the mean of each episode's last info['success']."""
    np.random.seed(seed)
    env.action_space.seed(seed)
    successes, lengths, reset_seed = {}, [], seed
    for task in tasks:
        for _ in range(episodes):
            ob, info = env.reset(seed=reset_seed, options=dict(task_id=task, render_goal=False))
            goal, reset_seed, done, steps = info["goal"], None, False, 0
            while not done:
                toward_goal = goal.astype(np.float32) - ob.astype(np.float32)  # the actor sees float32
                action = np.clip(np.clip(toward_goal, -1, 1), env.action_space.low, env.action_space.high)
                ob, _, terminated, truncated, info = env.step(action)
                done, steps = terminated or truncated, steps + 1
            successes.setdefault(task, []).append(info["success"])
            lengths.append(steps)
    return successes, lengths


def test_evaluator_scores_by_ogbench_rule():
    tasks, episodes, seed = (1, 2), 2, 0
    evaluate = crl_ogbench.make_ogbench_evaluator(DATASET, greedy_action, episodes, tasks, seed)
    metrics = evaluate(jnp.float32(1.0))
    successes, lengths = ogbench_rule_by_hand(ogbench.make_env_and_datasets(DATASET, env_only=True), tasks,
                                              episodes, seed)
    every_episode = sum(successes.values(), [])
    assert 0.0 in every_episode and 1.0 in every_episode  # the check sees both outcomes
    assert metrics == pytest.approx({
        "eval/ogbench_success": np.mean([np.mean(successes[task]) for task in tasks]),
        **{f"eval/ogbench_task{task}_success": np.mean(successes[task]) for task in tasks},
        "eval/ogbench_episode_length": np.mean(lengths)})


@pytest.mark.parametrize("name", ["ogbench:cube-single-play-v0", "visual-antmaze-medium-navigate-v0",
                                  "powderworld-easy-play-v0", "antsoccer-arena-navigate-v0",
                                  "pointmaze-medium-navigate-singletask-task1-v0", "pointmaze-huge-navigate-v0"])
def test_unsupported_names_are_config_errors(name):
    with pytest.raises(ConfigError, match=SUPPORTED if "huge" not in name else "pointmaze-medium-navigate-v0"):
        crl_ogbench.ogbench_spec(name)


def test_bad_task_ids_are_config_errors():
    with pytest.raises(ConfigError, match=r"1\.\.5"):
        crl_ogbench.make_ogbench_evaluator(DATASET, greedy_action, task_ids=[0, 6])


def test_names_and_the_missing_extra(monkeypatch):
    assert crl_ogbench.is_ogbench_name(CRL_NAME)
    assert not any(map(crl_ogbench.is_ogbench_name, [None, "", DATASET, "point_u_maze"]))
    monkeypatch.setitem(sys.modules, "ogbench", None)  # `import ogbench` now raises ImportError
    for call in (crl_ogbench.require_ogbench, lambda: crl_ogbench.ogbench_spec(CRL_NAME)):
        with pytest.raises(ConfigError, match=r"pip install -e '\.\[ogbench\]' \(or pip install -r "
                                              r"requirements-ogbench\.lock\)"):
            call()


def test_crl_imports_without_loading_ogbench():
    code = ("import sys, crl.offline, crl.offline.ogbench; "
            "print(sorted(m for m in ('ogbench', 'gymnasium', 'dm_control') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


OGBENCH_EPISODE = 1000  # pointmaze-medium's time limit: one training window offline
TWO_TRAINING_STEPS = 2400  # tiny_config's prefill budget (1,600) + 2 x 400 env steps' worth of SGD steps


def test_offline_training_on_an_ogbench_file_is_scored_on_ogbench_tasks(tmp_path, no_network):
    """`crl train --offline FILE --eval-env ogbench:...`: the file has no sidecar, so the eval env names the data's
    env; every epoch is evaluated on the host by OGBench's rule, logged as eval/ogbench_*, and `crl eval` reproduces
    the logged evaluation of the saved actor."""
    from crl.policy import evaluate_checkpoint
    from crl.train import train

    states, actions = random_trajectories((OGBENCH_EPISODE + 1, OGBENCH_EPISODE + 1), seed=3)
    write_ogbench_file(tmp_path / "data.npz", states, actions)
    cfg = tiny_config(offline=str(tmp_path / "data.npz"), env="ant", eval_env=CRL_NAME, num_epochs=1,
                      total_env_steps=TWO_TRAINING_STEPS, ogbench_eval_episodes=1,
                      run_dir=str(tmp_path / "run"))  # env "ant" is the default: unset
    result = train(cfg, print_fn=None)
    assert result.trainer.cfg.env == CRL_NAME and result.trainer.spec.episode_length == OGBENCH_EPISODE
    last = result.history[-1]
    tasks = [last[f"eval/ogbench_task{k}_success"] for k in range(1, 6)]
    assert set(tasks) <= {0.0, 1.0} and last["eval/ogbench_success"] == np.mean(tasks)
    assert 0 < last["eval/ogbench_episode_length"] <= OGBENCH_EPISODE
    assert last["env_steps"] == 0 and last["grad_steps"] > 0
    again = evaluate_checkpoint(tmp_path / "run")
    assert {k: v for k, v in again.items() if k.startswith("eval/")} == {
        k: v for k, v in last.items() if k.startswith("eval/")}


def test_ogbench_envs_do_not_collect():
    from crl.train import make_trainer

    with pytest.raises(ConfigError, match="train offline on the OGBench dataset"):
        make_trainer(tiny_config(env=CRL_NAME, eval_env=None))
