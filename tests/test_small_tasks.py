"""reacher, pusher_easy / pusher_hard, cheetah: specs, timing, state layout, goals, success.

Default run: each env compiles one batched reset (RESET_BATCH envs, for the goal laws) and
reacher, pusher_hard and cheetah one ROLLOUT_STEPS-step rollout of ROLLOUT_ENVS envs.
`pytest -m slow` adds a long random-action rollout per id (numerical stability).
"""
import crl  # noqa: F401  (XLA flags before jax)

import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import crl.envs as envs
from crl.envs import cheetah, goal_pipeline, pusher, reacher

IDS = ("reacher", "pusher_easy", "pusher_hard", "cheetah")
ROLLOUT_IDS = ("reacher", "pusher_hard", "cheetah")
RESET_BATCH = 4000
ROLLOUT_ENVS = 4
ROLLOUT_STEPS = 100
# (backend, state dim, goal indices, actions, success radius, reference physics step x frames)
EXPECTED = {
    "reacher": ("spring", 10, (4, 5, 6), 2, 0.05, 0.04),
    "pusher_easy": ("generalized", 20, (10, 11, 12), 7, 0.1, 0.01 * 5),
    "pusher_hard": ("generalized", 20, (10, 11, 12), 7, 0.1, 0.01 * 5),
    "cheetah": ("mjx", 18, (0,), 6, 0.5, 0.01 * 5),
}
SIGMAS = 5.0  # tolerance of the binned-count checks


@pytest.fixture(scope="module")
def made():
    """Cached per id: (env, RESET_BATCH reset states, stacked ROLLOUT_STEPS states or None)."""
    cache = {}

    def get(name):
        if name not in cache:
            env = envs.make(name)
            state0 = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), RESET_BATCH))
            traj = None
            if name in ROLLOUT_IDS:
                first = jax.tree_util.tree_map(lambda x: x[:ROLLOUT_ENVS], state0)
                traj = _rollout(env, first, ROLLOUT_STEPS, jax.random.PRNGKey(1))
            cache[name] = (env, state0, traj)
        return cache[name]

    return get


def _rollout(env, state, steps, key):
    """Stacked states of `steps` random-action steps in [-1, 1] (jitted scan of the vmapped step)."""

    @jax.jit
    def run(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (s.obs.shape[0], env.action_size), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            return s, s

        return jax.lax.scan(body, state, jax.random.split(key, steps))[1]

    return run(state, key)


def _np(x):
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------- specs and timing
@pytest.mark.parametrize("name", IDS)
def test_spec_and_control_dt(name, made):
    env, _, _ = made(name)
    backend, state_dim, goal_idx, act, radius, control_dt = EXPECTED[name]
    s = envs.spec(name)
    assert s == env.spec and s.name == name and env.backend == backend == s.backend
    assert (s.state_dim, s.goal_indices, s.action_size, s.success_radius) == (state_dim, goal_idx, act, radius)
    assert s.episode_length == 1000 and s.obs_dim == state_dim + len(goal_idx)
    assert env.observation_size == s.obs_dim and env.action_size == act
    # the physics step really used x frames per step == the table / reference
    assert float(env.sys.opt.timestep) * env._n_frames == pytest.approx(control_dt)
    assert float(env.dt) == pytest.approx(control_dt) and s.dt == pytest.approx(control_dt)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unsupported backend 'nope'"):
        reacher.Reacher(backend="nope")
    with pytest.raises(ValueError, match="unknown pusher kind"):
        pusher.make_pusher("medium")
    with pytest.raises(ValueError, match="goal_box"):
        pusher.Pusher(name="p", goal_box=((0.2, -0.2), (0.0, 0.1)))
    with pytest.raises(KeyError, match="no body named 'nobody'"):
        goal_pipeline.strip_bodies(reacher.REACHER_XML_PATH.read_text(), ["nobody"])


# --------------------------------------------------------------------------- rollouts
@pytest.mark.parametrize("name", ROLLOUT_IDS)
def test_rollout_is_finite_and_consistent(name, made):
    env, state0, traj = made(name)
    s = env.spec
    obs = _np(traj.obs)
    assert obs.shape == (ROLLOUT_STEPS, ROLLOUT_ENVS, s.obs_dim) and np.isfinite(obs).all()
    goal0 = np.asarray(state0.info["goal"][:ROLLOUT_ENVS])
    np.testing.assert_array_equal(np.asarray(traj.info["goal"]), np.broadcast_to(goal0, traj.info["goal"].shape))
    np.testing.assert_array_equal(np.asarray(traj.obs)[..., s.state_dim:], np.asarray(traj.info["goal"]))
    dist = np.linalg.norm(obs[..., list(s.goal_indices)] - obs[..., s.state_dim:], axis=-1)
    np.testing.assert_allclose(_np(traj.metrics["dist"]), dist, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(traj.reward), -dist, rtol=1e-5, atol=1e-6)
    assert (np.asarray(traj.done) == 0).all()  # no termination
    assert np.abs(np.diff(obs[..., : s.state_dim], axis=0)).max() > 1e-3  # the robot moves


@pytest.mark.parametrize("name", ROLLOUT_IDS)
def test_success_metric_is_the_distance_threshold(name, made):
    env, state0, _ = made(name)
    s = env.spec
    ps = jax.tree_util.tree_map(lambda x: x[0], state0.pipeline_state)
    achieved = np.asarray(env._state(ps))[list(s.goal_indices)]
    direction = np.ones_like(achieved) / np.sqrt(achieved.size)
    for radius, metric in ((s.success_radius, "success"), (s.success_easy_radius, "success_easy")):
        for scale, expected in ((0.99, 1.0), (1.01, 0.0)):
            goal = jnp.asarray(achieved + scale * radius * direction, dtype=jnp.float32)
            obs, dist, metrics = env._observe(ps, goal)
            assert float(dist) == pytest.approx(scale * radius, rel=1e-4)
            assert float(metrics[metric]) == expected, (metric, scale)
            assert metrics[metric].dtype == jnp.float32


# --------------------------------------------------------------------------- achieved goals by name
SPRING_JOINT_SLACK = 0.01  # spring joints are stiff springs, not rigid: link poses stray from rigid FK


def test_reacher_state_matches_planar_kinematics(made):
    """cos/sin of the joints and the fingertip xyz from the joint angles alone (rigid 2-link arm)."""
    env, _, traj = made("reacher")
    xml = reacher.REACHER_XML_PATH.read_text()
    base = goal_pipeline.body_pos(xml, "body0")
    l0 = goal_pipeline.body_pos(xml, "body1")[0]
    l1 = goal_pipeline.body_pos(xml, reacher.TIP_BODY)[0]
    ps = traj.pipeline_state
    q = _np(ps.q[..., env._arm_q])
    a0, a1 = q[..., 0], q[..., 0] + q[..., 1]
    tip = np.stack([l0 * np.cos(a0) + l1 * np.cos(a1), l0 * np.sin(a0) + l1 * np.sin(a1), np.zeros_like(a0)], -1) + base
    obs = _np(traj.obs)
    np.testing.assert_allclose(obs[..., 0:2], np.cos(q), atol=1e-5)
    np.testing.assert_allclose(obs[..., 2:4], np.sin(q), atol=1e-5)
    np.testing.assert_allclose(obs[..., 4:7], tip, atol=SPRING_JOINT_SLACK)
    # the fingertip velocity relative to body1's origin is w x lever: perpendicular to the lever,
    # of size |w| |lever| (the reference's world-frame offset (0.11, 0, 0) fails this)
    link = env.sys.link_names.index(reacher.TIP_LINK)
    lever = obs[..., 4:7] - _np(ps.x.pos[..., link, :])
    rel = obs[..., 7:10] - _np(ps.xd.vel[..., link, :])
    w = _np(ps.xd.ang[..., link, :])
    np.testing.assert_allclose(np.sum(rel * lever, -1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(rel, axis=-1),
                               np.linalg.norm(np.cross(w, lever), axis=-1), rtol=1e-4, atol=1e-6)
    assert np.linalg.norm(rel, axis=-1).max() > 0.05  # the arm really turns


def test_pusher_state_matches_joints_and_links(made):
    env, _, traj = made("pusher_hard")
    ps = traj.pipeline_state
    mj = env.sys.mj_model
    q = _np(ps.q)
    obj_origin = goal_pipeline.body_pos(pusher.PUSHER_XML_PATH.read_text(), pusher.OBJECT_LINK)
    qx = q[..., mj.jnt_qposadr[mj.joint("obj_slidex").id]]
    qy = q[..., mj.jnt_qposadr[mj.joint("obj_slidey").id]]
    obj = obj_origin + np.stack([qx, qy, np.zeros_like(qx)], -1)
    obs = _np(traj.obs)
    np.testing.assert_allclose(obs[..., 10:13], obj, atol=1e-5)  # object centre = body origin (symmetric geoms)
    tip_link = env.sys.link_names.index(pusher.TIP_LINK)
    np.testing.assert_allclose(obs[..., 7:10], _np(ps.x.pos[..., tip_link, :]), atol=1e-5)  # wf capsule centred
    arm_q = [mj.jnt_qposadr[mj.joint(j).id] for j in pusher.ARM_JOINTS]
    arm_qd = [mj.jnt_dofadr[mj.joint(j).id] for j in pusher.ARM_JOINTS]
    np.testing.assert_array_equal(obs[..., 0:7], q[..., arm_q])
    np.testing.assert_array_equal(obs[..., 13:20], _np(ps.qd)[..., arm_qd])
    assert np.abs(obs[..., 0:7]).max() > 0.05  # the arm really moves under random torques


def test_cheetah_state_is_qpos_qvel_and_goal_is_torso_x(made):
    env, _, traj = made("cheetah")
    ps = traj.pipeline_state
    torso = env.sys.link_names.index("torso")
    obs = _np(traj.obs)
    mj = env.sys.mj_model
    # MJX's body poses are from the start of the last physics step: within one step of rootx
    x_dof = mj.jnt_dofadr[mj.joint(cheetah.X_JOINT).id]
    lag = np.abs(_np(ps.qd[..., x_dof])) * float(env.sys.opt.timestep) * 1.5 + 1e-5
    assert (np.abs(obs[..., 0] - _np(ps.x.pos[..., torso, 0])) <= lag).all()
    np.testing.assert_array_equal(obs[..., :9], _np(ps.q)[..., [mj.jnt_qposadr[mj.joint(j).id] for j in cheetah.JOINTS]])
    np.testing.assert_array_equal(obs[..., 9:18], _np(ps.qd)[..., [mj.jnt_dofadr[mj.joint(j).id] for j in cheetah.JOINTS]])


def test_cheetah_masses_are_the_references():
    """The reference model = brax's cheetah + a target of mass 1, all scaled to 14: same body masses."""
    root = ET.fromstring(cheetah.CHEETAH_XML_PATH.read_text())
    target = ET.SubElement(root.find("worldbody"), "body", name="target", pos="0 0 0.01")
    ET.SubElement(target, "joint", name="target_x", type="slide", axis="1 0 0", limited="true", range="-20 20",
                  armature="0", damping="0", stiffness="0")
    ET.SubElement(target, "geom", name="target", type="sphere", size=".9", mass="1", contype="0", conaffinity="0")
    ref = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))
    ours = mujoco.MjModel.from_xml_string(cheetah.cheetah_xml())
    names = [ours.body(i).name for i in range(1, ours.nbody)]
    np.testing.assert_allclose([ours.body(n).mass[0] for n in names], [ref.body(n).mass[0] for n in names], rtol=1e-6)
    np.testing.assert_allclose([ours.body(n).inertia for n in names], [ref.body(n).inertia for n in names], rtol=1e-6)
    assert sum(ours.body(n).mass[0] for n in names) < cheetah.REFERENCE_TOTAL_MASS - 0.5  # differs from brax's 14


# --------------------------------------------------------------------------- goal distributions
def _uniform_bins_ok(values, low, high, n_bins):
    counts, _ = np.histogram(values, bins=n_bins, range=(low, high))
    expected = len(values) / n_bins
    return np.all(np.abs(counts - expected) < SIGMAS * np.sqrt(expected)), counts


def test_reacher_goal_law(made):
    env, state0, _ = made("reacher")
    goal = _np(state0.info["goal"])
    _, origin, _ = reacher.reacher_model()
    offset = goal - origin
    np.testing.assert_allclose(offset[:, 2], 0.0, atol=1e-7)  # at the target body's height
    r = np.linalg.norm(offset[:, :2], axis=-1)
    assert r.max() <= reacher.GOAL_MAX_RADIUS + 1e-6 and r.max() > 0.98 * reacher.GOAL_MAX_RADIUS
    ok, counts = _uniform_bins_ok(r, 0.0, reacher.GOAL_MAX_RADIUS, 10)  # radius uniform (not area-uniform)
    assert ok, counts
    ok, counts = _uniform_bins_ok(np.arctan2(offset[:, 1], offset[:, 0]), -np.pi, np.pi, 12)
    assert ok, counts
    # arm start: joints within init +- 0.1 (cos/sin of the obs), velocities tiny
    q = _np(state0.pipeline_state.q)
    assert np.abs(q).max() <= reacher.RESET_Q_NOISE + 1e-6 and np.abs(q).max() > 0.09


@pytest.mark.parametrize("name", ["pusher_easy", "pusher_hard"])
def test_pusher_goal_and_object_boxes(name, made):
    env, state0, _ = made(name)
    _, goal_origin = pusher.pusher_model()
    kind = name.split("_")[1]
    box = np.asarray(pusher.GOAL_OFFSET_RANGES[kind])
    offset = _np(state0.info["goal"]) - goal_origin
    np.testing.assert_allclose(offset[:, 2], 0.0, atol=1e-6)
    width = box[:, 1] - box[:, 0]
    assert (offset[:, :2] >= box[:, 0] - 1e-6).all() and (offset[:, :2] <= box[:, 1] + 1e-6).all()
    assert (offset[:, :2].min(0) < box[:, 0] + 0.01 * width).all() and (offset[:, :2].max(0) > box[:, 1] - 0.01 * width).all()
    for axis in range(2):
        ok, counts = _uniform_bins_ok(offset[:, axis], box[axis, 0], box[axis, 1], 8)
        assert ok, (axis, counts)
    # object: uniform in its box unless closer than 0.17 to the goal, then scaled by 0.17 / distance
    obj_origin = goal_pipeline.body_pos(pusher.PUSHER_XML_PATH.read_text(), pusher.OBJECT_LINK)
    obj = _np(state0.obs[:, 10:13]) - obj_origin
    np.testing.assert_allclose(obj[:, 2], 0.0, atol=1e-6)
    obj_box = np.asarray(pusher.OBJECT_OFFSET_RANGE)
    inside = ((obj[:, :2] >= obj_box[:, 0] - 1e-6) & (obj[:, :2] <= obj_box[:, 1] + 1e-6)).all(-1)
    assert inside.mean() > 0.5  # outside only when pushed out by the 0.17 rule (test_pusher_min_distance_rule)
    # the reference's goal sits 0.048 below the object's centre: 3-D distance >= that gap
    assert np.isclose(goal_origin[2] - obj_origin[2], -0.048, atol=1e-6)
    assert (_np(state0.metrics["dist"]) >= 0.048 - 1e-6).all()


def test_pusher_min_distance_rule():
    obj, goal = jnp.array([0.1, 0.0]), jnp.array([0.0, 0.0])
    np.testing.assert_allclose(np.asarray(pusher.separate(obj, goal)), [0.17, 0.0], rtol=1e-6)  # scaled by 0.17 / 0.1
    far = jnp.array([0.3, 0.0])
    np.testing.assert_array_equal(np.asarray(pusher.separate(far, goal)), np.asarray(far))


def test_cheetah_goal_is_x_5(made):
    env, state0, _ = made("cheetah")
    np.testing.assert_array_equal(np.asarray(state0.info["goal"]), np.full((RESET_BATCH, 1), cheetah.GOAL_X, np.float32))
    x0 = _np(state0.obs[:, 0])
    assert np.abs(x0).max() <= cheetah.RESET_NOISE_SCALE + 1e-6  # starts near the origin, 5 m from the goal


# --------------------------------------------------------------------------- slow: long rollouts
LONG_ENVS = 64
LONG_STEPS = 1000


@pytest.mark.slow
@pytest.mark.parametrize("name", IDS)
def test_long_random_rollout_stays_finite(name):
    env = envs.make(name)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(5), LONG_ENVS))

    @jax.jit
    def run(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (LONG_ENVS, env.action_size), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            return s, jnp.isfinite(s.obs).all()

        return jax.lax.scan(body, state, jax.random.split(key, LONG_STEPS))

    final, finite = run(state, jax.random.PRNGKey(6))
    assert np.asarray(finite).all()
    assert np.isfinite(np.asarray(final.obs)).all()
