"""OGBench-layout datasets: `crl collect` -> npz -> load round trip, validation messages, memory-mapping."""
from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl import envs
from crl.offline.collect import collect, trajectories_from_rollout, write_collected
from crl.offline.dataset import REQUIRED_KEYS, DatasetError, load_dataset, save_dataset, sidecar_path

ENV = "point_u_maze"
EPISODES = 5
NUM_ENVS = 2  # 3 rounds, the last one with an env more than episodes left
SEED = 3


@pytest.fixture(scope="module")
def spec():
    return envs.spec(ENV)


@pytest.fixture(scope="module")
def collected():
    return collect(ENV, "random", EPISODES, num_envs=NUM_ENVS, seed=SEED, say=lambda line: None)


@pytest.fixture(scope="module")
def written(collected, tmp_path_factory):
    return write_collected(collected, tmp_path_factory.mktemp("data") / "random.npz", command="test")


# ---------------------------------------------------------------------------------------------- round trip
def test_round_trip_gives_the_collected_arrays_ids_and_sidecar(collected, written, spec):
    data = load_dataset(written, spec.state_dim, spec.action_size)
    rows = spec.episode_length + 1
    np.testing.assert_array_equal(data.observations, collected.observations)
    np.testing.assert_array_equal(data.actions, collected.actions)
    np.testing.assert_array_equal(data.terminals, collected.terminals)
    np.testing.assert_array_equal(data.extras["goals"], collected.goals)
    np.testing.assert_array_equal(data.traj_ids, np.repeat(np.arange(EPISODES), rows))
    assert (data.num_trajectories, data.num_transitions, data.env) == (EPISODES, EPISODES * rows, ENV)
    assert np.flatnonzero(data.terminals).tolist() == [rows * (k + 1) - 1 for k in range(EPISODES)]
    info = json.loads(sidecar_path(written).read_text())
    assert data.info == info
    assert info["spec"] == json.loads(json.dumps(dataclasses.asdict(spec)))
    assert {k: info[k] for k in ("format", "env", "policy", "checkpoint_epoch", "noise", "episodes", "seed",
                                 "num_transitions", "command")} == {
        "format": "ogbench", "env": ENV, "policy": "random", "checkpoint_epoch": None, "noise": 0.0,
        "episodes": EPISODES, "seed": SEED, "num_transitions": EPISODES * rows, "command": "test"}
    assert info["crl_version"] and info["created"]


def test_collected_rows_are_env_transitions(collected, spec):
    """Replaying each recorded action from its recorded state gives the next row; the goal stays the commanded one."""
    env = envs.make(ENV)
    template = env.reset(jax.random.PRNGKey(0))
    moves = collected.terminals == 0
    states, actions, goals = (jnp.asarray(a[moves]) for a in (collected.observations, collected.actions,
                                                               collected.goals))

    def step(state, action, goal):
        return env.step(template.replace(pipeline_state=state, info={"goal": goal}), action).obs

    replayed = np.asarray(jax.vmap(step)(states, actions, goals))
    np.testing.assert_allclose(replayed[:, :spec.state_dim], collected.observations[1:][moves[:-1]], atol=1e-6)
    np.testing.assert_array_equal(replayed[:, spec.state_dim:], collected.goals[1:][moves[:-1]])
    np.testing.assert_array_equal(collected.actions[~moves], 0.0)  # the last action has no next state
    assert np.all(np.abs(collected.actions) <= 1.0)
    # time at goal: steps 1..T of each episode within the success radius of the commanded goal
    dist = np.linalg.norm(collected.observations[:, list(spec.goal_indices)] - collected.goals, axis=1)
    first_rows = np.concatenate([[True], collected.terminals[:-1] > 0])
    per_episode = (dist < spec.success_radius).reshape(EPISODES, -1)[:, 1:].sum(axis=1)
    np.testing.assert_allclose(collected.time_at_goal, per_episode)
    assert len(np.unique(collected.observations[first_rows], axis=0)) == EPISODES  # fresh starts per episode


def test_relabelled_goals_are_later_achieved_goals_of_the_same_trajectory(written, spec):
    """crl.buffer.relabel on windows cut from the loaded file (across trajectory ends) picks goals it may pick."""
    from crl.buffer import ACTION_KEY, GOAL_KEY, OBS_KEY, STATE_KEY, TRAJ_ID_KEY, relabel

    data = load_dataset(written)
    window, starts = 40, np.array([0, 80, 190, 300])  # windows 2 and 3 straddle the ends of trajectories 0, 1, 2
    rows = starts[:, None] + np.arange(window)[None, :]
    obs = np.concatenate([data.observations, data.extras["goals"]], axis=1)
    windows = {OBS_KEY: jnp.asarray(obs[rows]), ACTION_KEY: jnp.asarray(data.actions[rows]),
               TRAJ_ID_KEY: jnp.asarray(data.traj_ids[rows])}
    out = jax.tree.map(np.asarray, relabel(windows, jax.random.PRNGKey(1), 0.9, spec.state_dim, spec.goal_indices))
    achieved = data.observations[:, list(spec.goal_indices)]
    ids = data.traj_ids
    for n, (b, i) in enumerate((b, i) for b in range(len(starts)) for i in range(window - 1)):
        row, last = rows[b, i], rows[b, -1]
        later = [j for j in range(row + 1, last + 1) if ids[j] == ids[row]]
        candidates = later or [row]  # no later row of its trajectory in the window: its own achieved goal
        assert any(np.array_equal(out[GOAL_KEY][n], achieved[j]) for j in candidates), (b, i)
        np.testing.assert_array_equal(out[STATE_KEY][n], data.observations[row])


def test_rounds_cut_early_episodes_at_their_end():
    """An episode that ends after L steps gives L + 1 rows: the states up to its end, a zero action, terminal 1."""
    steps, num_envs, state_dim, goal_dim, action_size = 5, 3, 2, 1, 2
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(steps + 1, num_envs, state_dim + goal_dim)).astype(np.float32)
    actions = rng.normal(size=(steps, num_envs, action_size)).astype(np.float32)
    lengths = np.array([steps, 2, 0])
    rows = trajectories_from_rollout(obs, actions, lengths, state_dim)
    expected = {"observations": [], "actions": [], "goals": [], "terminals": []}
    for k, length in enumerate(lengths):
        for t in range(length + 1):
            expected["observations"].append(obs[t, k, :state_dim])
            expected["goals"].append(obs[t, k, state_dim:])
            expected["actions"].append(actions[t, k] if t < length else np.zeros(action_size, np.float32))
            expected["terminals"].append(float(t == length))
    for key, value in expected.items():
        np.testing.assert_array_equal(rows[key], np.asarray(value, np.float32), err_msg=key)


def test_ogbench_loader_reads_a_collected_file(collected, written):
    """OGBench's own loader accepts the file and pairs each state with the next one of its trajectory."""
    ogbench_utils = pytest.importorskip("ogbench.utils")
    loaded = ogbench_utils.load_dataset(str(written))
    moves = collected.terminals == 0
    np.testing.assert_array_equal(loaded["observations"], collected.observations[moves])
    np.testing.assert_array_equal(loaded["actions"], collected.actions[moves])
    np.testing.assert_array_equal(loaded["next_observations"], collected.observations[1:][moves[:-1]])


# ---------------------------------------------------------------------------------------------- the CLI
def test_crl_collect_writes_what_the_function_collects(collected, tmp_path, capsys):
    from crl.cli import main

    out = tmp_path / "cli.npz"
    rc = main(["collect", ENV, "--policy", "random", "--episodes", str(EPISODES), "--num-envs", str(NUM_ENVS),
               "--seed", str(SEED), "--out", str(out)])
    assert rc == 0
    data = load_dataset(out)
    for key in ("observations", "actions", "terminals"):
        np.testing.assert_array_equal(getattr(data, key), getattr(collected, key), err_msg=key)
    np.testing.assert_array_equal(data.extras["goals"], collected.goals)
    assert data.info["command"].startswith(f"crl collect {ENV} --policy random")
    printed = capsys.readouterr()
    assert f"episodes {EPISODES}" in printed.out and f"time at goal {np.mean(collected.time_at_goal):.2f}" in printed.out
    assert "round 3/3" in printed.err


@pytest.mark.parametrize("args, message", [
    (["point_u_mze", "--policy", "random", "--episodes", "2"], "unknown environment 'point_u_mze'"),
    ([ENV, "--policy", "random", "--episodes", "0"], "--episodes must be >= 1, got 0"),
    ([ENV, "--policy", "no/such/run", "--episodes", "2"], "no/such/run: no such run directory"),
    ([ENV, "--policy", "random", "--episodes", "2", "--noise", "-1"], "--noise"),
])
def test_crl_collect_rejects_bad_input_with_exit_2(args, message, tmp_path, capsys):
    from crl.cli import main

    out = tmp_path / "bad.npz"
    assert main(["collect", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- malformed files
def _arrays(rows: int = 10, state_dim: int = 2, action_size: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    terminals = np.zeros(rows, np.float32)
    terminals[[3, rows - 1]] = 1.0
    return {"observations": rng.normal(size=(rows, state_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(rows, action_size)).astype(np.float32), "terminals": terminals}


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _without(arrays, key):
    return {k: v for k, v in arrays.items() if k != key}


@pytest.mark.parametrize("change, expected, message", [
    (lambda a: _without(a, "terminals"), {}, "missing key 'terminals'; an OGBench-layout dataset holds "
                                             + ", ".join(REQUIRED_KEYS)),
    (lambda a: {**a, "terminals": a["terminals"][:-1]}, {}, "terminals has 9 rows, observations has 10: every key "
                                                            "needs one row per observation, shape (10, ...)"),
    (lambda a: {**a, "goals": a["observations"][:7]}, {}, "goals has 7 rows, observations has 10"),
    (lambda a: {**a, "observations": np.zeros((10, 4), np.float32)}, {"state_dim": 2},
     "observations has dim 4 per row, the env spec expects state_dim 2: shape (N, 2), found (10, 4)"),
    (lambda a: a, {"action_size": 3}, "actions has dim 2 per row, the env spec expects action_size 3: "
                                      "shape (N, 3), found (10, 2)"),
    (lambda a: {**a, "terminals": np.where(np.arange(10) == 9, 0.0, a["terminals"])}, {},
     "the last trajectory does not end: terminals[-1] must be 1"),
    (lambda a: {**a, "terminals": np.where(np.arange(10) == 3, 2.0, a["terminals"])}, {},
     "terminals must be 0 or 1"),
    (lambda a: {**a, "terminals": a["terminals"][:, None]}, {}, "terminals must be 1-d (10,), found shape (10, 1)"),
    (lambda a: {**a, "actions": a["actions"].astype(np.int32)}, {}, "actions must hold floats"),
    (lambda a: {**a, "actions": np.where(np.arange(10)[:, None] == 7, np.nan, a["actions"])}, {},
     "actions has a non-finite value (NaN or inf) at row 7"),
])
def test_a_malformed_file_is_rejected_naming_key_and_shape(tmp_path, change, expected, message):
    path = _write(tmp_path / "bad.npz", **change(_arrays()))
    with pytest.raises(DatasetError) as err:
        load_dataset(path, **expected)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_file_that_is_not_an_npz_or_missing_is_rejected(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("observations, actions, terminals")
    with pytest.raises(DatasetError, match=f"{text}: not an .npz"):
        load_dataset(text)
    with pytest.raises(DatasetError, match=f"{tmp_path / 'absent.npz'}: no such dataset file"):
        load_dataset(tmp_path / "absent.npz")


def test_the_dim_error_names_the_env_of_the_sidecar(written, spec):
    with pytest.raises(DatasetError, match=f"state_dim {spec.state_dim + 1}: .*collected in {ENV}"):
        load_dataset(written, state_dim=spec.state_dim + 1)


def test_save_validates_first_and_leaves_no_file(tmp_path):
    arrays = _arrays()
    with pytest.raises(DatasetError, match="terminals has 9 rows, observations has 10"):
        save_dataset(tmp_path / "d.npz", arrays["observations"], arrays["actions"], arrays["terminals"][:-1], {})
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    arrays = _arrays()
    path = save_dataset(tmp_path / "d.npz", **arrays, info={"version": 1})
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(KeyboardInterrupt):
        save_dataset(path, **{**arrays, "observations": arrays["observations"] + 1}, info={"version": 2})
    assert path.read_bytes() == before and json.loads(sidecar_path(path).read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "d.npz"]  # no temp file left


# ---------------------------------------------------------------------------------------------- memory-mapping
def _is_memmap(array) -> bool:
    return isinstance(array, np.memmap) or isinstance(getattr(array, "base", None), np.memmap)


def test_uncompressed_members_are_memory_mapped_with_equal_values(tmp_path):
    arrays = _arrays(rows=50)
    extras = {"goals": np.asfortranarray(np.random.default_rng(1).normal(size=(50, 3))).astype(np.float32, order="F"),
              "qpos": np.arange(50 * 4, dtype=np.float64).reshape(50, 2, 2)}
    path = save_dataset(tmp_path / "d.npz", **arrays, info={}, extras=extras)
    data = load_dataset(path)
    reference = np.load(path)
    for key in (*REQUIRED_KEYS, *extras):
        value = getattr(data, key) if key in REQUIRED_KEYS else data.extras[key]
        assert _is_memmap(value), key
        np.testing.assert_array_equal(value, reference[key], err_msg=key)
        assert value.dtype == reference[key].dtype
    assert data.extras["goals"].flags.f_contiguous
    in_memory = load_dataset(path, mmap=False)
    assert not _is_memmap(in_memory.observations)
    np.testing.assert_array_equal(in_memory.observations, arrays["observations"])


def test_a_compressed_file_loads_too(tmp_path):
    """OGBench ships np.savez_compressed files: read into memory, same values, float32."""
    arrays = _arrays(rows=50)
    arrays["terminals"] = arrays["terminals"].astype(bool)  # any 0/1 type is accepted and stored as float32
    path = tmp_path / "ogbench.npz"
    np.savez_compressed(path, **arrays, qpos=np.ones((50, 3)))
    data = load_dataset(path, state_dim=2, action_size=2)
    assert not _is_memmap(data.observations) and data.info is None and data.env is None
    np.testing.assert_array_equal(data.observations, arrays["observations"])
    np.testing.assert_array_equal(data.terminals, arrays["terminals"].astype(np.float32))
    assert data.terminals.dtype == np.float32 and set(data.extras) == {"qpos"}
    np.testing.assert_array_equal(data.traj_ids, (np.arange(50) > 3).astype(np.int32))


# ---------------------------------------------------------------------------------------------- a run's actor
def test_crl_collect_rejects_a_run_of_another_env(tmp_path, capsys):
    import yaml

    from crl.cli import main
    from crl.config import to_dict
    from tiny_run import tiny_config

    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"config": to_dict(tiny_config())}))
    assert main(["collect", "point_big_maze", "--policy", str(tmp_path), "--episodes", "2",
                 "--out", str(tmp_path / "d.npz")]) == 2
    assert f"{tmp_path} was trained on {ENV} (eval env {ENV}), not point_big_maze" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_run_dir(tmp_path_factory):
    from crl.train import train
    from tiny_run import tiny_config

    run_dir = tmp_path_factory.mktemp("run")
    train(tiny_config(run_dir=str(run_dir)), print_fn=None)
    return run_dir


@pytest.mark.slow
def test_a_runs_actor_collects_its_deterministic_actions_plus_clipped_noise(tiny_run_dir, tmp_path):
    from crl.policy import export_actor, load_actor

    actor = load_actor(export_actor(tiny_run_dir, tmp_path / "actor", epoch=1))
    clean = collect(ENV, str(tiny_run_dir), 3, checkpoint=1, say=lambda line: None)
    moves = clean.terminals == 0
    expected = np.asarray(actor(np.concatenate([clean.observations, clean.goals], axis=1)[moves]))
    np.testing.assert_allclose(clean.actions[moves], expected, atol=1e-6)
    assert (clean.info["policy"], clean.info["checkpoint_epoch"]) == (str(tiny_run_dir), 1)

    noise = 0.2
    noisy = collect(ENV, str(tiny_run_dir), 3, checkpoint=1, noise=noise, say=lambda line: None)
    moves = noisy.terminals == 0
    mean = np.asarray(actor(np.concatenate([noisy.observations, noisy.goals], axis=1)[moves]))
    assert np.all(np.abs(noisy.actions) <= 1.0)
    unclippable = np.abs(mean) + 4 * noise < 1.0  # chosen by the mean alone: the residual there is the raw noise
    residual = (noisy.actions[moves] - mean)[unclippable]
    assert residual.size > 100
    assert abs(residual.std() - noise) < 0.15 * noise and abs(residual.mean()) < 0.15 * noise
    assert noisy.info["noise"] == noise
