"""Environments: registry, every registered id under jit, point-maze walls, wrappers, ant."""
import crl  # noqa: F401  (XLA flags before jax)

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env, State

import crl.envs as envs
from crl.envs import ant as ant_mod
from crl.envs import ant_maze, maze, point_maze
from crl.envs.point_maze import PointMaze

ROLLOUT_ENVS = 4
ROOT_XY_GOAL = re.compile(r"(point|ant)(_\w*maze\w*)?")  # ids whose achieved goal is q[:2]
ROLLOUT_STEPS = 100
# ids whose goal follows the scene and whose success is not a distance threshold (tests/test_arm.py checks them)
SCENE_GOAL_IDS = {"arm_grasp"}


# --------------------------------------------------------------------------- shared rollouts
@pytest.fixture(scope="module")
def rollouts():
    """Lazily built, cached per env id: (env, reset state, stacked states of ROLLOUT_STEPS steps)."""
    cache = {}

    def get(name):
        if name not in cache:
            env = envs.make(name)
            reset = jax.jit(jax.vmap(env.reset))

            @jax.jit
            def roll(state, key):
                def body(s, k):
                    a = jax.random.uniform(k, (ROLLOUT_ENVS, env.action_size), minval=-1.0, maxval=1.0)
                    s = jax.vmap(env.step)(s, a)
                    return s, s

                return jax.lax.scan(body, state, jax.random.split(key, ROLLOUT_STEPS))[1]

            state0 = reset(jax.random.split(jax.random.PRNGKey(0), ROLLOUT_ENVS))
            cache[name] = (env, state0, roll(state0, jax.random.PRNGKey(1)))
        return cache[name]

    return get


def _check_state(env, state, leading):
    s = env.spec
    obs = np.asarray(state.obs)
    assert obs.shape == leading + (s.obs_dim,)
    assert env.observation_size == s.obs_dim and env.action_size == s.action_size
    assert np.all(np.isfinite(obs))
    np.testing.assert_array_equal(obs[..., s.state_dim :], np.asarray(state.info["goal"]))
    achieved = obs[..., list(s.goal_indices)]
    dist = np.linalg.norm(achieved - obs[..., s.state_dim :], axis=-1)
    for m in s.metric_names:
        assert state.metrics[m].shape == leading and state.metrics[m].dtype == jnp.float32, m
    assert set(np.unique(np.asarray(state.done))) <= {0.0, 1.0}
    if s.name in SCENE_GOAL_IDS:
        return
    np.testing.assert_allclose(np.asarray(state.metrics["dist"]), dist, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(state.metrics["success"]), (dist < s.success_radius).astype(np.float32))
    np.testing.assert_array_equal(
        np.asarray(state.metrics["success_easy"]), (dist < s.success_easy_radius).astype(np.float32)
    )
    np.testing.assert_allclose(np.asarray(state.reward), -dist, rtol=1e-5, atol=1e-5)


# Physics ids other than `ant` (each a distinct model: ~10-60 s compile on a 2-core CPU) run here
# only with -m slow; each family's own test file covers one representative id by default.
def _is_fast(name: str) -> bool:
    return name.startswith("point_") or name == "ant"


@pytest.mark.parametrize(
    "name", [n if _is_fast(n) else pytest.param(n, marks=pytest.mark.slow) for n in envs.list_envs()]
)
def test_every_env_resets_and_steps_under_jit(name, rollouts):
    env, state0, traj = rollouts(name)
    s = env.spec
    assert s.name == name and s.backend == env.backend
    assert float(env.dt) == pytest.approx(s.dt)
    _check_state(env, state0, (ROLLOUT_ENVS,))
    _check_state(env, traj, (ROLLOUT_STEPS, ROLLOUT_ENVS))
    # the achieved goal is the real position: point-mass xy / ant torso xy (free joint 'root'); the other
    # families check theirs (fingertip, object, ball, humanoid torso xyz) in their own test files
    if ROOT_XY_GOAL.fullmatch(name):
        q = traj.pipeline_state if s.backend == "jax" else traj.pipeline_state.q
        np.testing.assert_array_equal(np.asarray(traj.obs)[..., list(s.goal_indices)], np.asarray(q)[..., :2])
    # the commanded goal never changes inside an episode
    if name not in SCENE_GOAL_IDS:
        np.testing.assert_array_equal(np.asarray(traj.info["goal"]), np.broadcast_to(state0.info["goal"], traj.info["goal"].shape))


RESET_EPISODE = 3  # short episodes, so a few steps cross a reset
RESET_ENVS = 16
GOAL_ROUNDING_TOL = 1e-6


# The reset modes are the shared training wrapper's: by default they are checked on one id of each kind of
# goal set (training layout, far-goal eval, single-goal eval, stitching, a big and the hardest maze, ant);
# every other id runs with -m slow (its layout data is checked by test_every_env_resets_and_steps_under_jit).
RESET_MODE_IDS = ("point_u_maze", "point_u_maze_eval", "point_u_maze_single_eval", "point_u_maze_gen_1f2f3f",
                  "point_big_maze", "point_hardest_maze", "ant")


@pytest.mark.parametrize(
    "name", [n if n in RESET_MODE_IDS else pytest.param(n, marks=pytest.mark.slow) for n in envs.list_envs()]
)
def test_every_env_fresh_reset_redraws_cached_reset_restores(name):
    """Through the training wrapper: `fresh` draws a new episode at every reset, `cached` restores the first."""
    env = envs.make(name)
    out = {}
    for mode in envs.RESET_MODES:
        wenv = envs.wrap_for_training(env, episode_length=RESET_EPISODE, reset_mode=mode, num_envs=RESET_ENVS)
        state0 = jax.jit(wenv.reset)(jax.random.PRNGKey(3))
        action = jnp.zeros((RESET_ENVS, env.action_size))
        traj = jax.jit(lambda s, wenv=wenv: jax.lax.scan(lambda s, _: (wenv.step(s, action),) * 2, s, None,
                                                         length=RESET_EPISODE)[1])(state0)
        out[mode] = (state0, traj)
    s = env.spec
    for mode, (state0, traj) in out.items():
        first, after = np.asarray(state0.obs), np.asarray(traj.obs[RESET_EPISODE - 1])
        assert np.asarray(traj.done)[RESET_EPISODE - 1].all()  # every env was reset at the last step
        # equal up to float rounding: XLA may compute a fresh goal once per consumer (obs, info), e.g. with an FMA
        np.testing.assert_allclose(after[:, s.state_dim:], np.asarray(traj.info["goal"][RESET_EPISODE - 1]),
                                   rtol=0, atol=GOAL_ROUNDING_TOL)
        if mode == "cached":
            np.testing.assert_array_equal(after, first)
        else:
            assert (after != first).any(axis=1).mean() > 0.5, "fresh resets reproduced the first episode"
            goals0 = np.asarray(state0.info["goal"])
            if len(np.unique(goals0, axis=0)) > 1:  # a goal distribution, not a fixed goal: goals are redrawn
                goals1 = np.asarray(traj.info["goal"][RESET_EPISODE - 1])
                assert (goals1 != goals0).any(axis=1).any()


# --------------------------------------------------------------------------- registry
def test_registry_lists_builtin_ids():
    names = envs.list_envs()
    assert names == sorted(names)
    for layout in ("u_maze", "u_maze_eval", "big_maze", "big_maze_eval", "hardest_maze"):
        assert f"point_{layout}" in names
    assert "ant" in names


def test_unknown_name_names_closest_and_families_not_every_id():
    with pytest.raises(envs.UnknownEnvError) as info:
        envs.make("point_u_maz")
    msg = str(info.value)
    assert "Did you mean 'point_u_maze'?" in msg and "`crl envs`" in msg
    assert "Ids: ant*, arm*, cheetah, humanoid*, point*, pusher*, reacher." in msg
    assert "point_big_maze_eval" not in msg  # the ~70 ids are `crl envs`' job, not one error line's
    assert info.value.closest == "point_u_maze"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(KeyError):
        envs.spec("no_such_env_at_all_xyz")


CORRIDOR = """
    # # # # # # # #
    # R . . . . G #
    # # # # # # # #
"""


def test_register_make_custom_env_and_duplicates():
    name = "test_custom_corridor"
    layout = maze.parse_layout(CORRIDOR, "corridor")
    envs.register(name, lambda **kw: PointMaze(layout, name=name, **kw))
    try:
        assert name in envs.list_envs()
        env = envs.make(name, max_step=0.3)
        assert env.max_step == 0.3 and env.spec.name == name
        assert envs.spec(name).obs_dim == 4
        with pytest.raises(envs.DuplicateEnvError, match="already registered"):
            envs.register(name, lambda: PointMaze(layout))
        envs.register(name, lambda: PointMaze(layout, name=name, episode_length=7), overwrite=True)
        assert envs.spec(name).episode_length == 7  # spec cache invalidated on overwrite
    finally:
        envs.unregister(name)
    assert name not in envs.list_envs()

    envs.register("test_no_spec", lambda: object())
    try:
        with pytest.raises(TypeError, match="spec"):
            envs.make("test_no_spec")
    finally:
        envs.unregister("test_no_spec")


# --------------------------------------------------------------------------- maze layouts
def test_layouts_parse_and_geometry():
    for name in maze.LAYOUTS:
        layout = maze.get_layout(name)
        assert layout.walls[0].all() and layout.walls[-1].all() and layout.walls[:, 0].all() and layout.walls[:, -1].all()
        dist = layout.shortest_path_lengths(layout.starts[0])
        assert all(dist[g] > 0 for g in layout.goals), name  # every goal reachable
        centres, halves = layout.wall_boxes(4.0)
        covered = np.zeros(layout.shape, int)
        for (x, y, _), (hx, hy, hz) in zip(centres, halves):
            i0, i1 = round((x - hx) / 4.0 + 0.5), round((x + hx) / 4.0 - 0.5)
            j0, j1 = round((y - hy) / 4.0 + 0.5), round((y + hy) / 4.0 - 0.5)
            covered[i0 : i1 + 1, j0 : j1 + 1] += 1
            assert hz == pytest.approx(1.0)
        np.testing.assert_array_equal(covered, layout.walls.astype(int))  # exact, disjoint cover
    u = maze.get_layout("u_maze")
    assert u.starts == ((1, 1),) and set(u.goals) == {(1, 2), (1, 3), (2, 3), (3, 1), (3, 2), (3, 3)}
    assert set(maze.get_layout("u_maze_eval").goals) == {(3, 1), (3, 2), (3, 3)}
    np.testing.assert_array_equal(u.cell_centers(((3, 2),), 4.0), [[12.0, 8.0]])  # row i -> x
    with pytest.raises(ValueError, match="unknown cell"):
        maze.parse_layout("# X #\n# R G")


# --------------------------------------------------------------------------- point maze
def _cells(env, xy):
    return np.floor(np.asarray(xy) / env.cell_size + 0.5).astype(int)


def _assert_in_free_cells(env, xy):
    cells = _cells(env, xy).reshape(-1, 2)
    n_rows, n_cols = env.layout.shape
    assert (cells >= 0).all() and (cells[:, 0] < n_rows).all() and (cells[:, 1] < n_cols).all()
    assert not env.layout.walls[cells[:, 0], cells[:, 1]].any()


PUSH_STEPS = 60


@pytest.fixture(scope="module")
def u_maze_push():
    """(point_u_maze env, jitted run(state, action) -> positions (PUSH_STEPS, n, 2)) with constant actions."""
    env = envs.make("point_u_maze")

    @jax.jit
    def run(state, action):
        def body(s, _):
            s = jax.vmap(env.step)(s, action)
            return s, s.pipeline_state

        return jax.lax.scan(body, state, None, length=PUSH_STEPS)[1]

    return env, run


DIRECTIONS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, -1], [1, -1], [-1, 1]], np.float32)


def test_point_maze_walls_stop_the_agent(rollouts, u_maze_push):
    for name in ("point_u_maze", "point_hardest_maze"):
        env, state0, traj = rollouts(name)
        _assert_in_free_cells(env, traj.pipeline_state)  # random actions never enter a wall
    env, run = u_maze_push
    n = len(DIRECTIONS)
    state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(3), n))
    path = np.asarray(run(state, jnp.asarray(DIRECTIONS)))  # (PUSH_STEPS, n, 2)
    _assert_in_free_cells(env, path)
    # pushing into a wall converges: the last 20 positions are identical (agent pinned)
    np.testing.assert_array_equal(path[-20:], np.broadcast_to(path[-1], path[-20:].shape))
    # +x from R (1, 1): the wall cell (2, 1) blocks at once, x never leaves row 1
    assert (_cells(env, path[:, 0])[:, 0] == 1).all()
    # per-step displacement bounded by max_step per axis
    steps = np.abs(np.diff(path, axis=0))
    assert steps.max() <= env.max_step + 1e-6


def test_point_maze_corridor_is_traversable(u_maze_push):
    # u_maze row 1: R (1,1) -> (1,2) -> (1,3), then wall (1,4): constant +y reaches the end and stops
    env, run = u_maze_push
    n = len(DIRECTIONS)
    state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(4), n))
    path = np.asarray(run(state, jnp.tile(jnp.array([[0.0, 1.0]]), (n, 1))))
    assert (_cells(env, path[-1]) == [1, 3]).all()
    assert (path[-1, :, 1] > 3.0 + 0.5 - env.max_step - 1e-6).all()  # within one step of the wall
    # a straight custom corridor: reach G (success) well within the episode
    corridor = PointMaze(maze.parse_layout(CORRIDOR, "corridor"))
    state = jax.vmap(corridor.reset)(jax.random.split(jax.random.PRNGKey(5), 3))
    np.testing.assert_array_equal(np.asarray(state.info["goal"]), [[1.0, 6.0]] * 3)
    steps = 40
    assert steps < corridor.spec.episode_length
    action = jnp.tile(jnp.array([[0.0, 1.0]]), (3, 1))

    def body(s, _):
        s = jax.vmap(corridor.step)(s, action)
        return s, s

    traj = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps)[1])(state)
    assert np.asarray(traj.metrics["success"]).any(axis=0).all()  # passes through the goal cell centre
    _assert_in_free_cells(corridor, traj.pipeline_state)


def test_point_maze_start_and_goal_distributions():
    n = 3000
    for name in ("point_u_maze", "point_u_maze_eval", "point_big_maze_eval"):
        env = envs.make(name)
        state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(6), n))
        goals = np.asarray(state.info["goal"])
        cells = goals / env.cell_size
        np.testing.assert_array_equal(cells, np.round(cells))  # exact cell centres
        got = {tuple(c) for c in np.round(cells).astype(int)}
        assert got == set(env.layout.goals), name  # only G cells, and all of them
        counts = np.array([np.all(np.round(cells).astype(int) == g, axis=1).sum() for g in env.layout.goals])
        expected = n / len(env.layout.goals)
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (name, counts)  # uniform
        start = env.layout.start_centers(env.cell_size)[0]
        offset = np.asarray(state.pipeline_state) - start
        assert np.abs(offset).max() <= point_maze.START_NOISE * env.cell_size + 1e-6
        assert np.abs(offset).max() > 0.09 * env.cell_size  # the noise is really there


def test_point_maze_episode_length_allows_crossing():
    for name in point_maze.POINT_MAZE_LAYOUTS:
        layout = maze.get_layout(name)
        env = PointMaze(layout)
        far = max(layout.shortest_path_lengths(layout.starts[0])[g] for g in layout.goals)
        assert far * env.cell_size / env.max_step * 2 <= env.spec.episode_length, name


def test_point_maze_step_speed():
    """Cheap env: 256 envs step well under a millisecond (measured inside a jitted scan)."""
    import time

    env = envs.make("point_hardest_maze")
    n, steps = 256, 200
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), n))
    action = jnp.full((n, 2), 0.5)
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: (jax.vmap(env.step)(s, action), None), s, None, length=steps)[0])
    jax.block_until_ready(run(state))
    t = time.perf_counter()
    jax.block_until_ready(run(state))
    per_step = (time.perf_counter() - t) / steps
    assert per_step < 1e-3, per_step


# --------------------------------------------------------------------------- wrappers
class _TerminatingEnv(Env):
    """Counter env: terminates after a per-episode random number of steps in {2, ..., 8}."""

    spec = envs.EnvSpec(name="count", backend="jax", state_dim=1, goal_indices=(0,), action_size=1,
                        episode_length=5, dt=1.0, success_radius=0.5, success_easy_radius=1.0)

    def reset(self, rng):
        limit = jax.random.randint(rng, (), 2, 9).astype(jnp.float32)
        metrics = {m: jnp.zeros(()) for m in self.spec.metric_names}
        return State(pipeline_state=jnp.zeros(()), obs=jnp.stack([0.0, limit]), reward=jnp.zeros(()),
                     done=jnp.zeros(()), metrics=metrics, info={"goal": limit[None]})

    def step(self, state, action):
        t = state.pipeline_state + 1.0
        done = (t >= state.info["goal"][0]).astype(jnp.float32)
        return state.replace(pipeline_state=t, obs=jnp.stack([t, state.info["goal"][0]]), done=done)

    observation_size = 2
    action_size = 1
    backend = "jax"


WRAP_EPISODE = 5
WRAP_ENVS = 64
WRAP_STEPS = 13


@pytest.fixture(scope="module")
def wrapped_rollouts():
    """{(env kind, reset mode): (state0, stacked states)} for short episodes."""
    out = {}
    base = {"maze": envs.make("point_u_maze"), "count": _TerminatingEnv()}
    for kind, env in base.items():
        for mode in envs.RESET_MODES:
            wenv = envs.wrap_for_training(env, episode_length=WRAP_EPISODE, reset_mode=mode, num_envs=WRAP_ENVS)
            state0 = jax.jit(wenv.reset)(jax.random.PRNGKey(7))
            action = jnp.zeros((WRAP_ENVS, env.action_size))
            run = jax.jit(lambda s, wenv=wenv, action=action: jax.lax.scan(
                lambda s, _: (wenv.step(s, action),) * 2, s, None, length=WRAP_STEPS)[1])
            out[kind, mode] = (wenv, state0, run(state0))
    return out


def test_fresh_reset_draws_new_start_and_goal_cached_restores(wrapped_rollouts):
    for mode in envs.RESET_MODES:
        wenv, state0, traj = wrapped_rollouts["maze", mode]
        assert wenv.spec.name == "point_u_maze" and wenv.num_envs == WRAP_ENVS
        done = np.asarray(traj.done)
        assert done[WRAP_EPISODE - 1].all() and done[2 * WRAP_EPISODE - 1].all()
        assert done.sum() == 2 * WRAP_ENVS
        first_obs, after_reset = np.asarray(state0.obs), np.asarray(traj.obs[WRAP_EPISODE - 1])
        goal0, goal1 = np.asarray(state0.info["goal"]), np.asarray(traj.info["goal"][WRAP_EPISODE - 1])
        np.testing.assert_array_equal(after_reset[:, 2:], goal1)  # obs carries the new goal
        if mode == "cached":
            np.testing.assert_array_equal(after_reset, first_obs)  # every env restored exactly
            np.testing.assert_array_equal(goal1, goal0)
            np.testing.assert_array_equal(np.asarray(traj.obs[2 * WRAP_EPISODE - 1]), first_obs)
        else:
            assert (after_reset[:, :2] != first_obs[:, :2]).any(axis=1).all()  # new start noise per env
            changed = (goal1 != goal0).any(axis=1).mean()
            assert changed > 0.6  # 6 goal cells: ~5/6 of envs draw another goal
            goal2 = np.asarray(traj.info["goal"][2 * WRAP_EPISODE - 1])
            assert (goal2 != goal1).any(axis=1).mean() > 0.6  # the reset key advanced
            # the new obs is a genuine reset: start near R
            assert np.abs(after_reset[:, :2] - [1.0, 1.0]).max() <= 0.1 + 1e-6
        # steps counter: brax semantics (episode length shown at done, zeroed on the next step)
        steps = np.asarray(traj.info["steps"])
        np.testing.assert_array_equal(steps[WRAP_EPISODE - 1], WRAP_EPISODE)
        np.testing.assert_array_equal(steps[WRAP_EPISODE], 1)


def test_traj_id_increments_exactly_at_episode_ends(wrapped_rollouts):
    for (kind, mode), (wenv, state0, traj) in wrapped_rollouts.items():
        ids = np.concatenate([np.asarray(state0.info["traj_id"])[None], np.asarray(traj.info["traj_id"])])
        done = np.asarray(traj.done)
        assert ids.dtype == np.int32 and (ids[0] == 0).all()
        np.testing.assert_array_equal(np.diff(ids, axis=0), done.astype(np.int32), err_msg=str((kind, mode)))
        if kind == "count":
            limit = np.asarray(state0.obs[:, 1])
            trunc = np.asarray(traj.info["truncation"])
            first_end = np.argmax(done, axis=0) + 1  # length of each env's first episode
            np.testing.assert_array_equal(first_end, np.minimum(limit, WRAP_EPISODE))
            # truncation flags only time-limit ends that are not terminations
            t_idx = first_end - 1
            np.testing.assert_array_equal(trunc[t_idx, np.arange(WRAP_ENVS)], (limit > WRAP_EPISODE).astype(np.float32))
            assert (trunc <= done).all()
            # recorded obs before each step: consecutive obs share an id iff same episode
            obs_t = np.concatenate([np.asarray(state0.obs)[None], np.asarray(traj.obs)])[:, :, 0]
            same = ids[1:] == ids[:-1]
            np.testing.assert_array_equal(same, obs_t[1:] == obs_t[:-1] + 1)  # counter continues iff same id


def test_fresh_reset_is_guarded_by_cond_and_accepts_typed_keys():
    env = envs.make("point_u_maze")
    wenv = envs.wrap_for_training(env, episode_length=3, reset_mode="fresh", num_envs=2)
    state = wenv.reset(jax.random.key(0))  # typed key accepted
    assert state.obs.shape == (2, env.spec.obs_dim)
    jaxpr = str(jax.make_jaxpr(wenv.step)(state, jnp.zeros((2, 2))))
    assert "cond[" in jaxpr
    with pytest.raises(ValueError, match="reset_mode"):
        envs.wrap_for_training(env, 3, "sometimes", 2)


def test_wrap_for_eval_has_no_auto_reset():
    env = envs.make("point_u_maze")
    eenv = envs.wrap_for_eval(env, episode_length=3, num_envs=4)
    state = jax.jit(eenv.reset)(jax.random.PRNGKey(0))
    step = jax.jit(eenv.step)
    action = jnp.tile(jnp.array([[0.0, 1.0]]), (4, 1))
    dones, ys = [], []
    for _ in range(5):
        state = step(state, action)
        dones.append(np.asarray(state.done))
        ys.append(np.asarray(state.obs[:, 1]))
    np.testing.assert_array_equal(np.stack(dones), [[0] * 4, [0] * 4, [1] * 4, [1] * 4, [1] * 4])
    assert (np.diff(np.stack(ys), axis=0) >= 0).all()  # keeps moving along +y, never reset to R
    assert "traj_id" not in state.info


# --------------------------------------------------------------------------- ant
def test_ant_goal_start_and_timing(rollouts):
    env, state0, traj = rollouts("ant")
    assert float(env.dt) == pytest.approx(0.05) and env.spec.dt == pytest.approx(0.05)
    assert env.backend == "spring" and env.spec.state_dim == 29 and env.spec.goal_indices == (0, 1)
    assert env.spec.action_size == 8 and env.spec.episode_length == 1000
    assert env.spec.success_radius == 0.5 and env.spec.success_easy_radius == 2.0
    goal = np.asarray(state0.info["goal"])
    np.testing.assert_allclose(np.linalg.norm(goal, axis=-1), ant_mod.GOAL_RADIUS, rtol=1e-5)
    z = np.asarray(state0.pipeline_state.q[:, 2])
    low, high = ant_mod.HEALTHY_Z_RANGE
    assert ((z > low) & (z < high)).all()
    assert (np.asarray(state0.done) == 0).all()
    # termination follows the torso height
    zs = np.asarray(traj.pipeline_state.q[..., 2])
    np.testing.assert_array_equal(np.asarray(traj.done), ((zs < low) | (zs > high)).astype(np.float32))
    assert np.isfinite(np.asarray(traj.pipeline_state.qd)).all()


def test_ant_model_is_data():
    """The ant class takes the model, start and goal samplers as data (for ant mazes)."""
    env = ant_mod.GoalAnt(name="ant_test", task_sampler=lambda k: (jnp.array([8.0, 4.0]), jnp.array([3.0, 4.0])))
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(state.info["goal"]), [3.0, 4.0])
    np.testing.assert_allclose(np.asarray(state.obs[:2]), [8.0, 4.0], atol=0.1 + 1e-6)
    assert env.spec.name == "ant_test"


def test_crl_envs_lists_every_id_with_its_spec(capsys):
    from crl import cli

    assert cli.main(["envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:] if not line.startswith("family ")}
    assert lines[0].split()[:2] == ["id", "backend"] and set(rows) == set(envs.list_envs())
    declared = envs.list_specs()
    for name, row in rows.items():
        s = envs.spec(name)
        assert declared[name] == s, f"{name}: crl/env_catalog.py is stale; rerun `python -m crl.envs.catalog`"
        assert row[1:] == [s.backend, str(s.state_dim), str(s.goal_dim), str(s.action_size), f"{s.dt:g}",
                           f"{s.success_radius:g}", str(s.episode_length)], name
    assert sum(line.startswith("family ") for line in lines) == len(envs.list_patterns())
