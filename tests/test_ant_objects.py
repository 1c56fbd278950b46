"""Ant object tasks (`ant_ball`, `ant_push`): spec, state layout by name, goals, contacts.

Default run (~50 s on 2 cold CPU cores): each model compiled once as one 100-step rollout of 4
envs, shared by the random-action rollouts and the contact experiments, plus small jits (reset,
a 2000-env reset for the goal distributions, pipeline_init). `pytest -m slow` adds ant_push on
spring and the 'circle' ball offset.
"""
import crl  # noqa: F401  (XLA flags before jax)

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from brax import math as brax_math
from rollouts import rollout_fn

import crl.envs as envs
from crl.envs import ant as ant_mod
from crl.envs import ant_objects as ao

N_ENVS = 4
N_STEPS = 100
N_DIST = 2000  # resets for the goal-distribution tests
FEET = ("left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom")
PENETRATION_TOL = 0.05  # m: soft contacts let a geom sink this far into a fixed box at most
ANT_DOF_Q, ANT_DOF_QD = 15, 14


def _make(name, **kwargs):
    """(env, jitted reset(keys), jitted run(state, actions (N_STEPS, n, 8)) -> stacked states)."""
    env = envs.make(name, **kwargs)
    return env, jax.jit(jax.vmap(env.reset)), rollout_fn(env)


@pytest.fixture(scope="module")
def ball():
    return _make("ant_ball")


@pytest.fixture(scope="module")
def push():
    return _make("ant_push")


def _keys(seed, n=N_ENVS):
    return jax.random.split(jax.random.PRNGKey(seed), n)


def _random_actions(seed, n=N_ENVS):
    return jax.random.uniform(jax.random.PRNGKey(seed), (N_STEPS, n, 8), minval=-1.0, maxval=1.0)


def _qpos_of(env, joints):
    mj = env.sys.mj_model
    return [int(mj.jnt_qposadr[mj.joint(j).id]) for j in joints]


def _body_xy(env, pipeline_state, body):
    return np.asarray(pipeline_state.x.pos[..., env.sys.link_names.index(body), :2])


def _launch(env, state, torso_xy, torso_vel, object_q=None):
    """States with the torso moved to `torso_xy` (n, 2), launched at `torso_vel` (n, 2); all else at rest."""
    ps = state.pipeline_state
    q = ps.q.at[:, 0:2].set(jnp.asarray(torso_xy, jnp.float32))
    if object_q is not None:
        q = q.at[:, env._extra_q].set(jnp.asarray(object_q, jnp.float32))
    qd = jnp.zeros_like(ps.qd).at[:, 0:2].set(jnp.asarray(torso_vel, jnp.float32))
    return state.replace(pipeline_state=jax.jit(jax.vmap(env.pipeline_init))(q, qd))


def _geom_world_pos(env, pipeline_state, geom):
    """World position (..., 3) of a named geom from its link's transform."""
    mj = env.sys.mj_model
    g = mj.geom(geom).id
    link = int(mj.geom_bodyid[g]) - 1  # brax links = MuJoCo bodies without the world
    pos, rot = pipeline_state.x.pos[..., link, :], pipeline_state.x.rot[..., link, :]
    local = jnp.asarray(mj.geom_pos[g])
    flat = jax.vmap(brax_math.rotate, (None, 0))(local, rot.reshape(-1, 4)).reshape(pos.shape)
    return np.asarray(pos + flat)


def _box_signed_distance(p, centre, half):
    """Signed distance from points p (..., 3) to an axis-aligned box (< 0 inside)."""
    d = np.abs(p - np.asarray(centre)) - np.asarray(half)
    outside = np.linalg.norm(np.maximum(d, 0.0), axis=-1)
    return np.where(d.max(-1) > 0, outside, d.max(-1))


def _check_rollout(env, states, achieved):
    """Layout, goal and metrics of stacked states; `achieved` read independently from the physics."""
    s = env.spec
    obs = np.asarray(states.obs)
    q, qd = np.asarray(states.pipeline_state.q), np.asarray(states.pipeline_state.qd)
    assert np.isfinite(obs).all() and np.isfinite(q).all() and np.isfinite(qd).all()
    assert obs.shape[-1] == s.obs_dim == 33
    np.testing.assert_array_equal(obs[..., :ANT_DOF_Q], q[..., :ANT_DOF_Q])  # ant qpos
    np.testing.assert_array_equal(obs[..., ANT_DOF_Q : ANT_DOF_Q + ANT_DOF_QD], qd[..., :ANT_DOF_QD])  # ant qvel
    np.testing.assert_allclose(obs[..., list(s.goal_indices)], achieved, atol=1e-5)
    np.testing.assert_array_equal(obs[..., s.state_dim :], np.asarray(states.info["goal"]))
    dist = np.linalg.norm(achieved - np.asarray(states.info["goal"]), axis=-1)
    np.testing.assert_allclose(np.asarray(states.metrics["dist"]), dist, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(states.reward), -np.asarray(states.metrics["dist"]))
    z = q[..., 2]
    low, high = ant_mod.HEALTHY_Z_RANGE
    np.testing.assert_array_equal(np.asarray(states.done), ((z < low) | (z > high)).astype(np.float32))


# --------------------------------------------------------------------------- spec and model
def test_registered_and_specs(ball, push):
    assert {"ant_ball", "ant_push"} <= set(envs.list_envs())
    for (env, _, _), name, goal_idx, backend in ((ball, "ant_ball", (29, 30), "spring"), (push, "ant_push", (0, 1), "mjx")):
        s = env.spec
        assert s.name == name and env.backend == s.backend == backend
        assert s.state_dim == 31 and s.goal_indices == goal_idx and s.action_size == 8 and s.obs_dim == 33
        assert float(env.dt) == pytest.approx(0.05) and s.dt == pytest.approx(0.05)
        assert s.success_radius == 0.5 and s.success_easy_radius == 2.0 and s.episode_length == 1000
        assert "target_x" not in [env.sys.mj_model.joint(j).name for j in range(env.sys.mj_model.njnt)]
    assert ao.AntPush.__init__.__kwdefaults__["backend"] == ao.DEFAULT_PUSH_BACKEND == "mjx"


def test_models_have_the_reference_geometry_and_contacts(ball, push):
    mj = ball[0].sys.mj_model
    names = [mj.geom(i).name for i in range(mj.ngeom)]

    def collides(mj, names, a, b):
        a, b = names.index(a), names.index(b)
        return bool(mj.geom_contype[a] & mj.geom_conaffinity[b] or mj.geom_contype[b] & mj.geom_conaffinity[a])

    for other in ("torso_geom", "floor") + FEET:
        assert collides(mj, names, "ball_geom", other), other
    assert not collides(mj, names, "torso_geom", "floor")  # the ant is `ant`'s
    assert mj.geom_size[names.index("ball_geom"), 0] == ao.BALL_RADIUS
    mj = push[0].sys.mj_model
    names = [mj.geom(i).name for i in range(mj.ngeom)]
    blocks = [g for g in names if g in ao.PUSH_FIXED_BLOCKS]
    assert len(blocks) == 7
    for g in blocks:
        np.testing.assert_allclose(mj.geom_pos[names.index(g)], ao.PUSH_FIXED_BLOCKS[g][0])
        np.testing.assert_allclose(mj.geom_size[names.index(g)], ao.PUSH_FIXED_BLOCKS[g][1])
        for other in ("torso_geom", ao.MOVABLE_GEOM) + FEET:
            assert collides(mj, names, g, other), (g, other)
    assert collides(mj, names, ao.MOVABLE_GEOM, "floor") and collides(mj, names, ao.MOVABLE_GEOM, "torso_geom")
    assert mj.body_mass[mj.body("movable").id] == pytest.approx(ao.MOVABLE_MASS)
    opt = push[0].sys.opt  # the reference's MJX solver settings, read from the MJCF <option>
    assert (int(opt.iterations), int(opt.ls_iterations), int(opt.solver)) == (4, 8, int(mujoco.mjtSolver.mjSOL_NEWTON))
    assert int(opt.disableflags) & int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
    assert float(opt.timestep) == pytest.approx(0.01) and push[0]._n_frames == 5


def test_bad_hooks_are_rejected():
    with pytest.raises(ValueError, match="no joint 'nope'"):
        ant_mod.GoalAnt(xml=ao.ball_xml(), extra_state_joints=("nope",))
    with pytest.raises(ValueError, match="slide or hinge"):
        ant_mod.GoalAnt(xml=ao.ball_xml(), extra_state_joints=("root",))
    with pytest.raises(ValueError, match="goal joint"):
        ant_mod.GoalAnt(xml=ao.ball_xml(), extra_state_joints=("ball_x",), goal_joints=("ball_y",))
    with pytest.raises(ValueError, match="ball_offset"):
        ao.ball_start("square")
    with pytest.raises(ValueError, match="backend"):
        ao.AntPush(backend="positional")


# --------------------------------------------------------------------------- rollouts
def test_ball_rollout_layout_and_goal(ball):
    env, reset, run = ball
    state0 = reset(_keys(0))
    traj = run(state0, _random_actions(1))
    ball_q = _qpos_of(env, ao.BALL_JOINTS)
    for st in (state0, traj):
        achieved = _body_xy(env, st.pipeline_state, "ball")  # the ball body's world xy
        np.testing.assert_allclose(np.asarray(st.pipeline_state.q)[..., ball_q], achieved, atol=1e-5)
        _check_rollout(env, st, achieved)
    np.testing.assert_array_equal(np.asarray(traj.info["goal"]), np.broadcast_to(state0.info["goal"], traj.info["goal"].shape))


def test_push_rollout_layout_and_goal(push):
    env, reset, run = push
    state0 = reset(_keys(0))
    traj = run(state0, _random_actions(1))
    root_q = _qpos_of(env, (ant_mod.ROOT_JOINT,))[0]
    block_q = _qpos_of(env, ao.MOVABLE_JOINTS[:2])
    for st in (state0, traj):
        q = np.asarray(st.pipeline_state.q)
        _check_rollout(env, st, q[..., root_q : root_q + 2])
        np.testing.assert_array_equal(np.asarray(st.obs)[..., 29:31], q[..., block_q])
    # MJX's body poses are those of the step's start (forward runs before integration), so compare
    # them with the state only at reset: torso xy and the movable block's world xy
    np.testing.assert_allclose(np.asarray(state0.obs)[:, :2], _body_xy(env, state0.pipeline_state, "torso"), atol=1e-5)
    np.testing.assert_allclose(np.asarray(state0.obs)[:, 29:31], _body_xy(env, state0.pipeline_state, "movable"), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(traj.info["goal"]), np.broadcast_to(state0.info["goal"], traj.info["goal"].shape))


# --------------------------------------------------------------------------- reset distributions
def _draws(env, seed, n=N_DIST):
    """(goal, object start) of n draws from the samplers reset uses (physics-free: no large-batch reset compile)."""

    def draw(key):
        k_task, k_object = jax.random.split(key)
        _, goal = env._task_sampler(k_task)
        return goal, env._object_sampler(k_object, goal)

    return jax.jit(jax.vmap(draw))(_keys(seed, n))


def _check_ball_start(goal, ball_xy):
    """Ball start = 0.2 x target + (cos b, sin a) (the reference's formula)."""
    offset = np.asarray(ball_xy) - ao.BALL_TARGET_FRACTION * np.asarray(goal)
    np.testing.assert_allclose(offset[:, 1], goal[:, 1] / ao.BALL_GOAL_RADIUS, atol=1e-5)
    assert np.abs(offset[:, 0]).max() <= 1.0 + 1e-5
    return offset


def test_ball_goal_on_circle_and_ball_start(ball):
    env, reset, _ = ball
    goal, ball_xy = (np.asarray(x) for x in _draws(env, 2))
    np.testing.assert_allclose(np.linalg.norm(goal, axis=1), ao.BALL_GOAL_RADIUS, rtol=1e-5)
    angle = np.arctan2(goal[:, 1], goal[:, 0])
    counts, _ = np.histogram(angle, bins=8, range=(-np.pi, np.pi))
    expected = N_DIST / 8
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 24.3, counts  # chi-square, 7 dof, p = 0.001
    offset = _check_ball_start(goal, ball_xy)
    assert offset[:, 0].min() < -0.99 and offset[:, 0].max() > 0.99
    # b is drawn independently of the target's angle (cos b uncorrelated with cos a; 4.5 sigma at N_DIST)
    assert abs(np.corrcoef(offset[:, 0], goal[:, 0])[0, 1]) < 0.1
    # reset puts the drawn ball into the physics, at rest
    state = reset(_keys(2))
    _check_ball_start(np.asarray(state.info["goal"]), state.obs[:, 29:31])
    np.testing.assert_array_equal(np.asarray(state.pipeline_state.qd)[:, env._object_qd], 0.0)


def test_push_goal_regions(push):
    env, reset, _ = push
    goal = np.asarray(jax.jit(jax.vmap(lambda k: env._task_sampler(k)[1]))(_keys(3, N_DIST)))
    corner = np.where(goal[:, :1] > goal[:, 1:], ao.PUSH_GOAL_CORNERS[0], ao.PUSH_GOAL_CORNERS[1])
    noise = goal - corner
    assert noise.min() >= 0.0 and noise.max() <= ao.PUSH_GOAL_NOISE
    assert noise.min() < 0.01 and noise.max() > ao.PUSH_GOAL_NOISE - 0.01  # the whole square is covered
    n_right = int((corner[:, 0] == ao.PUSH_GOAL_CORNERS[0, 0]).sum())
    assert abs(n_right - N_DIST / 2) < 4 * np.sqrt(N_DIST / 4), n_right  # each region with probability 1/2
    state = reset(_keys(3))
    block = np.asarray(state.obs[:, 29:31])
    np.testing.assert_allclose(block, np.broadcast_to(ao.MOVABLE_START[:2], block.shape), atol=0.1 + 1e-5)
    np.testing.assert_allclose(np.asarray(state.obs[:, :2]), 0.0, atol=0.1 + 1e-5)  # the ant starts at the origin


# --------------------------------------------------------------------------- contacts
def test_ant_pushes_the_ball(ball):
    """Ball 1.2 m from the torso; the torso launched at 4 m/s toward it in 3 envs and away in 1."""
    env, reset, run = ball
    directions = np.array([[1.0, 0.0], [0.0, -1.0], [-np.sqrt(0.5), np.sqrt(0.5)], [-1.0, 0.0]])
    ball_xy = 1.2 * np.array([[1.0, 0.0], [0.0, -1.0], [-np.sqrt(0.5), np.sqrt(0.5)], [1.0, 0.0]])
    state = _launch(env, reset(_keys(4)), np.zeros((N_ENVS, 2)), 4.0 * directions, ball_xy)
    traj = run(state, jnp.zeros((N_STEPS, N_ENVS, 8)))
    moved = np.asarray(traj.obs[-1, :, 29:31]) - ball_xy
    along = (moved * directions).sum(axis=1)
    assert np.isfinite(np.asarray(traj.obs)).all()
    assert (along[:3] > 0.1).all(), moved  # pushed along the launch direction
    assert np.abs(moved[3]).max() < 1e-3, moved  # the ant running away leaves it where it was


def test_movable_block_is_pushed_and_fixed_blocks_stop_the_ant(push):
    """Torso launched at M (+x), into D (-x) and into G (-y); env 3 stays at rest (control)."""
    env, reset, run = push
    starts = np.array([[3.3, 8.0], [-2.5, 8.0], [0.0, -2.3], [1.0, 6.0]])
    velocity = np.array([[3.0, 0.0], [-6.0, 0.0], [0.0, -6.0], [0.0, 0.0]])  # env 3: at rest (control)
    block0 = np.broadcast_to(ao.MOVABLE_START[:2], (N_ENVS, 2))
    state = _launch(env, reset(_keys(5)), starts, velocity)
    traj = run(state, jnp.zeros((N_STEPS, N_ENVS, 8)))
    ps = traj.pipeline_state
    assert np.isfinite(np.asarray(ps.q)).all()
    block = np.asarray(traj.obs[..., 29:31])
    start_block = np.asarray(state.obs[:, 29:31])
    np.testing.assert_allclose(start_block, block0, atol=0.1 + 1e-5)
    assert block[-1, 0, 0] - start_block[0, 0] > 0.5, block[-1]  # the ant shoves M along +x
    assert np.abs(block[:, 3] - start_block[3]).max() < 0.05  # untouched, M stays (it settles on the floor)
    # no foot or torso sinks into a fixed block beyond the tolerance
    mj = env.sys.mj_model
    worst = -np.inf
    for geom in FEET + ("torso_geom",):
        p = _geom_world_pos(env, ps, geom)
        radius = mj.geom_size[mj.geom(geom).id, 0]
        for centre, half in ao.PUSH_FIXED_BLOCKS.values():
            worst = max(worst, float((radius - _box_signed_distance(p, centre, half)).max()))
    assert worst < PENETRATION_TOL, worst
    # and the launches into D and G did reach them (feet within 5 cm of contact)
    for k, (geom_block, axis) in ((1, ("block_D", 0)), (2, ("block_G", 1))):
        centre, half = ao.PUSH_FIXED_BLOCKS[geom_block]
        gaps = [(_box_signed_distance(_geom_world_pos(env, ps, f)[:, k], centre, half) - 0.08).min() for f in FEET]
        assert min(gaps) < 0.05, (k, gaps)


# --------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_push_on_spring_resets_and_steps():
    env, reset, run = _make("ant_push", backend="spring")
    assert env.backend == "spring" and float(env.dt) == pytest.approx(0.05)
    state0 = reset(_keys(0))
    traj = run(state0, _random_actions(1))
    _check_rollout(env, traj, _body_xy(env, traj.pipeline_state, "torso"))


@pytest.mark.slow
def test_ball_circle_offset():
    env = envs.make("ant_ball", ball_offset="circle")
    state = jax.jit(jax.vmap(env.reset))(_keys(6, 500))
    offset = np.asarray(state.obs[:, 29:31]) - ao.BALL_TARGET_FRACTION * np.asarray(state.info["goal"])
    np.testing.assert_allclose(np.linalg.norm(offset, axis=1), 1.0, rtol=1e-5)
