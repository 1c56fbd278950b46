"""Humanoid (`humanoid`, `humanoid_<layout>`, clean twins): specs, state layouts, goals, walls.

Default run: two compiled step models (humanoid, humanoid_u_maze), each one jitted 100-step
rollout shared by its tests, plus cheap jitted resets. `pytest -m slow` also resets and steps
every humanoid id and shows that the feet-only contact model lets limbs into walls.
"""
import crl  # noqa: F401  (XLA flags before jax)

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax import math as brax_math
from rollouts import reset_batch, rollout_fn

import crl.envs as envs
from crl.envs import humanoid as hum
from crl.envs import humanoid_maze as hmaze
from crl.envs import maze

N_ENVS = 8
N_STEPS = 100
PAPER_STATE_DIM = 268
CLEAN_STATE_DIM = 246
WALL_TOL = 0.05  # m: allowed penetration of a colliding sphere into a wall (soft spring contacts)
CONTACT_REACH = 0.1  # m: a sphere centre this close to a wall touches it (radii 0.04-0.09)
LAUNCH_SPEED = 5.0  # m/s: initial torso velocity towards the walls in the wall test
MAZE_IDS = [f"humanoid_{layout}" for layout in hmaze.HUMANOID_MAZE_LAYOUTS]


@pytest.fixture(scope="module")
def plain():
    env = envs.make("humanoid")
    return env, rollout_fn(env)


@pytest.fixture(scope="module")
def u_maze():
    env = envs.make("humanoid_u_maze")
    return env, rollout_fn(env)


def _reset(env, seed, n=N_ENVS):
    return reset_batch(env, seed, n)


def _random_actions(env, seed, n=N_ENVS):
    return jax.random.uniform(jax.random.PRNGKey(seed), (N_STEPS, n, env.action_size), minval=-1.0, maxval=1.0)


def _torso_xyz(env, pipeline_state):
    """Torso position read from the pipeline's link transforms by body name."""
    return np.asarray(pipeline_state.x.pos)[..., env.sys.link_names.index(hum.TORSO_BODY), :]


def _root_xyz(env, pipeline_state):
    """Torso position read from qpos at the address of the free joint 'root' (looked up by name)."""
    mj = env.sys.mj_model
    adr = int(mj.jnt_qposadr[mj.joint(hum.ROOT_JOINT).id])
    return np.asarray(pipeline_state.q)[..., adr : adr + 3]


def _check_consistency(env, st):
    """obs = concat(state, goal); achieved goal = torso xyz; metrics and reward follow.

    The torso is read from qpos by joint name and, on spring, also from the link transforms by
    body name (MJX's x is the kinematics before the last substep's integration, so it lags q).
    """
    s = env.spec
    obs = np.asarray(st.obs)
    assert np.isfinite(obs).all() and obs.shape[-1] == s.obs_dim
    np.testing.assert_array_equal(obs[..., list(s.goal_indices)], _root_xyz(env, st.pipeline_state))
    if env.backend in hum.SPRING_BACKENDS:
        np.testing.assert_allclose(obs[..., list(s.goal_indices)], _torso_xyz(env, st.pipeline_state), atol=1e-5)
    np.testing.assert_array_equal(obs[..., s.state_dim :], np.asarray(st.info["goal"]))
    dist = np.linalg.norm(obs[..., list(s.goal_indices)] - obs[..., s.state_dim :], axis=-1)
    np.testing.assert_allclose(np.asarray(st.metrics["dist"]), dist, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(st.metrics["success"]), (dist < s.success_radius).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(st.metrics["success_easy"]), (dist < s.success_easy_radius).astype(np.float32))
    np.testing.assert_allclose(np.asarray(st.reward), -dist, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- specs (no compile)
@pytest.mark.parametrize(
    "name, state_dim, dt",
    [("humanoid", PAPER_STATE_DIM, 0.03), ("humanoid_clean", CLEAN_STATE_DIM, 0.03),
     ("humanoid_u_maze", PAPER_STATE_DIM, 0.015), ("humanoid_clean_big_maze_eval", CLEAN_STATE_DIM, 0.015),
     ("humanoid_u_maze_gen_1f2f3f", PAPER_STATE_DIM, 0.015)],
)
def test_spec(name, state_dim, dt):
    env = envs.make(name)
    s = env.spec
    assert s.name == name and s.backend == env.backend == "spring"
    assert s.state_dim == state_dim and s.obs_dim == state_dim + 3 and env.observation_size == s.obs_dim
    assert s.goal_indices == (0, 1, 2) and s.action_size == env.action_size == 17
    assert float(env.dt) == pytest.approx(dt) and s.dt == pytest.approx(dt)
    assert s.episode_length == 1000 and s.success_radius == 0.5 and s.success_easy_radius == 2.0


def test_state_dim_arithmetic():
    """268 = q 26 + qd 25 + 12 links x (10 + 6) + qfrc 25 on brax 0.14.2 (feet fuse into shins)."""
    for layout, links, q, qd in (("paper", 12, 26, 25), ("clean", 11, 24, 23)):
        env = hum.GoalHumanoid(state_layout=layout)
        assert env.sys.num_links() == links and env.sys.q_size() == q and env.sys.qd_size() == qd
        assert env.spec.state_dim == q + qd + links * 10 + links * 6 + qd
        assert ("target" in env.sys.link_names) == (layout == "paper")


def test_registered_ids():
    names = set(envs.list_envs())
    for robot in ("humanoid", "humanoid_clean"):
        assert robot in names and f"{robot}_u_maze_gen_1f2f3f" in names
        for layout in hmaze.HUMANOID_MAZE_LAYOUTS:
            assert f"{robot}_{layout}" in names
    # pattern ids of both families resolve to the right state layout
    assert envs.make("humanoid_clean_u4_maze_gen_1f").state_layout == "clean"
    assert envs.make("humanoid_u4_maze_gen_1f").state_layout == "paper"


def test_bad_options_name_the_allowed_values():
    with pytest.raises(ValueError, match="state_layout 'pixels'.*'paper', 'clean'"):
        hum.GoalHumanoid(state_layout="pixels")
    with pytest.raises(ValueError, match="contacts 'hands'.*'all', 'feet'"):
        hum.humanoid_xml(contacts="hands")


def test_paper_contacts_every_body_geom_touches_floor_and_walls():
    mj = envs.make("humanoid_u_maze").sys.mj_model
    names = [mj.geom(i).name for i in range(mj.ngeom)]

    def collides(a, b):
        a, b = names.index(a), names.index(b)
        return bool(mj.geom_contype[a] & mj.geom_conaffinity[b] or mj.geom_contype[b] & mj.geom_conaffinity[a])

    for geom in ("torso1", "butt", "right_thigh1", "left_foot", "right_hand"):
        assert collides(geom, "floor") and collides(geom, "wall_0"), geom
    assert not collides("torso1", "right_hand")  # no self contacts (walls/floor: same world body, never paired)
    assert not collides("target", "floor") and not collides("target", "wall_0")
    np.testing.assert_allclose(mj.geom_size[[n.startswith("wall_") for n in names]][:, 2], 0.5)  # 1 m high


# --------------------------------------------------------------------------- humanoid rollout
def test_reset_and_step_humanoid(plain):
    env, run = plain
    state0 = _reset(env, 0)
    traj = run(state0, _random_actions(env, 1))
    for st in (state0, traj):
        _check_consistency(env, st)
        assert np.isfinite(np.asarray(st.pipeline_state.qd)).all()
    np.testing.assert_array_equal(np.asarray(traj.info["goal"]),
                                  np.broadcast_to(state0.info["goal"], traj.info["goal"].shape))
    z = np.asarray(traj.pipeline_state.q[..., 2])
    low, high = hum.HEALTHY_Z_RANGE
    np.testing.assert_array_equal(np.asarray(traj.done), ((z < low) | (z > high)).astype(np.float32))
    assert np.asarray(traj.done).any()  # random actions topple the humanoid within 3 s


def test_paper_layout_holds_the_commanded_goal_in_the_state(plain):
    """The reproduced bug: the target's slide joints inside s equal the commanded goal xy."""
    env, run = plain
    idx = list(env.target_q_indices)
    assert len(idx) == 2 and min(idx) >= 0 and max(idx) < env.spec.state_dim
    state0 = _reset(env, 0)
    traj = run(state0, _random_actions(env, 1))
    for st in (state0, traj):
        np.testing.assert_allclose(np.asarray(st.obs)[..., idx], np.asarray(st.info["goal"])[..., :2], atol=1e-4)
    # and the state depends on the goal: same physics noise, different goals -> different states
    reset_to = jax.jit(env.reset_to)
    key, start = jax.random.PRNGKey(3), jnp.zeros(2)
    a, b = reset_to(key, start, jnp.array([2.0, 0.0])), reset_to(key, start, jnp.array([0.0, -3.0]))
    assert not np.array_equal(np.asarray(a.obs[: env.spec.state_dim]), np.asarray(b.obs[: env.spec.state_dim]))


def test_clean_layout_state_never_holds_the_goal():
    env = envs.make("humanoid_clean", reset_noise_scale=0.1)
    assert env.target_q_indices == () and "target" not in env.sys.link_names
    reset_to = jax.jit(env.reset_to)
    key, start = jax.random.PRNGKey(3), jnp.zeros(2)
    a, b = reset_to(key, start, jnp.array([2.0, 0.0])), reset_to(key, start, jnp.array([0.0, -3.0]))
    d = env.spec.state_dim
    np.testing.assert_array_equal(np.asarray(a.obs[:d]), np.asarray(b.obs[:d]))  # state independent of goal
    np.testing.assert_array_equal(np.asarray(b.obs[d:]), [0.0, -3.0, hum.GOAL_Z])
    for value in (2.0, -3.0):  # the goal coordinates appear nowhere in the state
        assert not np.any(np.isclose(np.asarray(a.obs[:d]), value, atol=1e-6))
    # the physics noise is there (reset_noise_scale 0.1) and the torso xy stays exactly at the start
    assert np.abs(np.asarray(a.pipeline_state.q[7:])).max() > 0.05
    np.testing.assert_array_equal(np.asarray(a.pipeline_state.q[:2]), [0.0, 0.0])


def test_goal_distribution_humanoid(plain):
    env, _ = plain
    n = 4000
    st = _reset(env, 5, n)
    goal = np.asarray(st.info["goal"])
    np.testing.assert_array_equal(goal[:, 2], np.float32(hum.GOAL_Z))
    dist = np.linalg.norm(goal[:, :2], axis=1)
    assert dist.min() >= hum.GOAL_MIN_DIST - 1e-5 and dist.max() <= hum.GOAL_MAX_DIST + 1e-5
    counts, _ = np.histogram(dist, bins=4, range=(hum.GOAL_MIN_DIST, hum.GOAL_MAX_DIST))
    assert np.all(np.abs(counts - n / 4) < 5 * np.sqrt(n / 4)), counts  # distance uniform
    angle = np.arctan2(goal[:, 1], goal[:, 0])
    counts, _ = np.histogram(angle, bins=4, range=(-np.pi, np.pi))
    assert np.all(np.abs(counts - n / 4) < 5 * np.sqrt(n / 4)), counts  # angle uniform
    q = np.asarray(st.pipeline_state.q)
    np.testing.assert_array_equal(q[:, :2], 0.0)  # starts at the origin, no noise (paper's runs)
    np.testing.assert_allclose(q[:, 2], 1.4)


# --------------------------------------------------------------------------- mazes
@pytest.mark.parametrize("layout", hmaze.HUMANOID_MAZE_LAYOUTS)
def test_maze_start_and_goals(layout):
    """Start exactly at the R centre; goals exactly at G centres (eval layouts: only theirs).

    Physics-free: reset draws (start, goal) from the env's task sampler, checked here for every layout;
    test_reset_and_step_u_maze checks that reset puts them into the physics and the observation.
    """
    env = envs.make(f"humanoid_{layout}")
    lay = maze.get_layout(layout)
    n = 512
    start, goal_xy = jax.jit(jax.vmap(env._task_sampler))(jax.random.split(jax.random.PRNGKey(2), n))
    np.testing.assert_array_equal(start, np.broadcast_to(lay.start_centers(hmaze.CELL_SIZE)[0], (n, 2)))
    cells = np.asarray(goal_xy) / hmaze.CELL_SIZE
    np.testing.assert_array_equal(cells, np.round(cells))
    got = {tuple(c) for c in np.round(cells).astype(int)}
    assert got == set(lay.goals)  # only G cells, and all of them (n draws)


def test_reset_and_step_u_maze(u_maze):
    env, run = u_maze
    lay = maze.get_layout("u_maze")
    state0 = _reset(env, 0)
    q, goal = np.asarray(state0.pipeline_state.q), np.asarray(state0.info["goal"])
    np.testing.assert_array_equal(q[:, :2], np.broadcast_to(lay.start_centers(hmaze.CELL_SIZE)[0], (N_ENVS, 2)))
    np.testing.assert_array_equal(goal[:, 2], np.float32(hum.GOAL_Z))
    assert {tuple(c) for c in np.round(goal[:, :2] / hmaze.CELL_SIZE).astype(int)} <= set(lay.goals)
    np.testing.assert_allclose(q[:, list(env.target_q_indices)], goal[:, :2])  # paper layout target
    traj = run(state0, _random_actions(env, 1))
    for st in (state0, traj):
        _check_consistency(env, st)
    np.testing.assert_array_equal(np.asarray(traj.info["goal"]),
                                  np.broadcast_to(state0.info["goal"], traj.info["goal"].shape))


def _box_signed_distance(points, centres, halves):
    """Signed distance (n_points..., n_boxes) of 3-D points to boxes (< 0: inside)."""
    d = np.abs(points[..., None, :] - centres) - halves
    outside = np.linalg.norm(np.maximum(d, 0.0), axis=-1)
    inside = np.minimum(d.max(axis=-1), 0.0)
    return outside + inside


def _geom_centres(env, pipeline_state, geoms):
    """World centres of named geoms from link transforms (bodies fused by brax included)."""
    mj = env.sys.mj_model
    ids = [mj.geom(g).id for g in geoms]
    links = np.asarray(mj.geom_bodyid[ids]) - 1
    pos, rot = pipeline_state.x.pos[..., links, :], pipeline_state.x.rot[..., links, :]
    offset = jnp.asarray(mj.geom_pos[ids], jnp.float32)
    rotate = jnp.vectorize(brax_math.rotate, signature="(3),(4)->(3)")
    return np.asarray(pos + rotate(jnp.broadcast_to(offset, pos.shape), rot)), np.asarray(mj.geom_size[ids, 0])


def _launch(env, state, speed):
    """Restart `state` with the torso moving at `speed` m/s in N_ENVS directions around the circle."""
    angles = np.arange(N_ENVS) * (2 * np.pi / N_ENVS)
    velocity = speed * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    qd = state.pipeline_state.qd.at[:, 0:2].set(jnp.asarray(velocity, jnp.float32))
    return state.replace(pipeline_state=jax.jit(jax.vmap(env.pipeline_init))(state.pipeline_state.q, qd))


def _wall_report(env, traj):
    """(max sphere penetration into walls, min torso-centre distance to walls, per-env closest approach)."""
    centres, halves = env.layout.wall_boxes(env.cell_size)
    spheres = ("left_foot", "right_foot", "left_hand", "right_hand", "head")
    pts, radii = _geom_centres(env, traj.pipeline_state, spheres)  # (T, n, 5, 3)
    sd = _box_signed_distance(pts, centres, halves).min(axis=-1)  # (T, n, 5)
    penetration = (radii - sd).max()
    torso = _box_signed_distance(_torso_xyz(env, traj.pipeline_state), centres, halves).min(axis=-1)  # (T, n)
    closest = np.minimum(sd.min(axis=(0, 2)), torso.min(axis=0))
    return penetration, torso.min(), closest


def test_walls_stop_the_humanoid(u_maze):
    """Launch the humanoid at 5 m/s from R (walls 1 m away on 3 sides) in 8 directions with random
    actions: its feet, hands and head never enter a wall by more than WALL_TOL and its torso centre
    never enters one (climbing over the 1 m walls is allowed physics; going through is not)."""
    env, run = u_maze
    state = _launch(env, _reset(env, 3), LAUNCH_SPEED)
    traj = run(state, _random_actions(env, 4))
    assert np.isfinite(np.asarray(traj.pipeline_state.q)).all()
    penetration, torso_min, closest = _wall_report(env, traj)
    assert penetration < WALL_TOL, penetration
    assert torso_min > 0.0, torso_min
    # the launches at the walls reach them: -x (k=4), -y (k=6), +x (k=0) touch (sphere radii <= 9 cm)
    for k in (0, 4, 6):
        assert closest[k] < CONTACT_REACH, (k, closest)


# --------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_feet_only_contacts_let_the_body_into_walls():
    """Control for the wall test: brax's packaged contacts (feet only) let limbs enter the walls."""
    env = hmaze.HumanoidMaze("u_maze", contacts=hum.FEET_CONTACTS)
    state = _launch(env, _reset(env, 3), LAUNCH_SPEED)
    traj = rollout_fn(env)(state, _random_actions(env, 4))
    penetration, _, _ = _wall_report(env, traj)
    assert penetration > WALL_TOL, penetration


@pytest.mark.slow
@pytest.mark.parametrize("name", ["humanoid", "humanoid_u_maze"])
def test_mjx_backend_resets_and_steps(name):
    env = envs.make(name, backend="mjx")
    assert env.backend == env.spec.backend == "mjx" and env.spec.state_dim == PAPER_STATE_DIM
    state = _reset(env, 0)
    traj = rollout_fn(env)(state, _random_actions(env, 1))
    _check_consistency(env, state)
    _check_consistency(env, traj)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["humanoid", "humanoid_clean", "humanoid_u_maze_gen_1f2f3f"] + MAZE_IDS
                         + [n.replace("humanoid", "humanoid_clean") for n in MAZE_IDS])
def test_every_humanoid_id_resets_and_steps(name):
    env = envs.make(name)
    n, steps = 4, 20
    state = _reset(env, 0, n)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (steps, n, env.action_size), minval=-1.0, maxval=1.0)
    traj = rollout_fn(env)(state, actions)
    _check_consistency(env, state)
    _check_consistency(env, traj)
    assert env.spec.name == name
