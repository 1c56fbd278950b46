"""MJX arm tasks (envs/arm.py, arm_scenes.py, assets/arm.xml): specs, states, goals, physics.

Default run: specs and goal laws of every id (no physics compile), ROLLOUT_STEPS-step rollouts
of arm_reach and arm_push_easy (each ~10-25 s to compile on a 2-core CPU), which also carry the
physics tests. The other ids' rollouts, the binpick bin-wall rollout (~70 s of binpick compile) and the
arm_reach learning run (~11 min) run with -m slow.
"""
import crl  # noqa: F401  (XLA flags before jax)

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import crl.envs as envs
from crl.envs import arm, arm_scenes
from crl.evaluate import make_evaluator, uniform_random_policy
from rollouts import rollout_fn
from stats import chi2_ok

IDS = tuple(arm.TASKS)
FAST_IDS = ("arm_reach", "arm_push_easy")
ROLLOUT_ENVS = 4
ROLLOUT_STEPS = 100
# id -> (state dim, goal indices, actions)
EXPECTED = {
    "arm_reach": (13, tuple(range(7, 10)), 4),
    "arm_push_easy": (17, (0, 1, 2), 5),
    "arm_push_hard": (17, (0, 1, 2), 5),
    "arm_binpick_easy": (17, (0, 1, 2), 5),
    "arm_binpick_hard": (17, (0, 1, 2), 5),
    "arm_grasp": (23, tuple(range(16, 23)), 5),
}
# id -> (goal centre, goal half-widths) and (cube start centre, cube half-width), reference 6 / 6.3
GOAL_REGIONS = {
    "arm_reach": ((0.0, 0.5, 0.3), (0.2, 0.2, 0.2)),
    "arm_push_easy": ((0.1, 0.6, 0.03), (0.1, 0.1, 0.0)),
    "arm_push_hard": ((0.25, 0.65, 0.03), (0.25, 0.25, 0.0)),
    "arm_binpick_easy": ((0.17, 0.6, 0.03), (0.09, 0.09, 0.0)),
    "arm_binpick_hard": ((0.3, 0.6, 0.03), (0.15, 0.15, 0.0)),
}
CUBE_REGIONS = {
    "arm_push_easy": ((-0.1, 0.6), 0.1), "arm_push_hard": ((-0.25, 0.65), 0.25),
    "arm_binpick_easy": ((-0.17, 0.6), 0.09), "arm_binpick_hard": ((-0.3, 0.6), 0.15),
    "arm_grasp": ((0.0, 0.6), 0.3),
}
SAMPLES = 8000
BINS = 10
FINGERTIP_OFFSET = np.array([0.0, 0.005, 0.07])  # fingertip site in its finger's frame (assets/arm.xml)
# scripted actions (found by a grid search over joint targets with MuJoCo): arm raised; gripper low at ~0.6 m
RAISED = (-1.0, -0.5, 0.5)
LOWERED = (0.25, -0.5, 0.5)
PUSH_FROM, PUSH_TO = 0.35, -0.2  # joint-1 actions: base angle pointing at x ~ -0.25 and x ~ +0.15 at y ~ 0.55
BIN_STEPS = 30  # control steps of the bin-wall test (binpick steps slowly on CPU); the cube stops within ~10
WALL_CONTACT_TOL = 2e-3  # m: resting contact penetration allowed against a wall
THROW_SPEED = 3.0  # m/s: a cube thrown at this speed would slide ~0.45 m on the table (friction 1)


def _np(x):
    return np.asarray(x)


def _params(ids):
    return [n if n in FAST_IDS else pytest.param(n, marks=pytest.mark.slow) for n in ids]


@pytest.fixture(scope="module")
def made():
    """Cached per id: (env, jitted reset of a batch, jitted run(state, actions) -> stacked states)."""
    cache = {}

    def get(name):
        if name not in cache:
            env = envs.make(name)
            cache[name] = (env, jax.jit(jax.vmap(env.reset)), rollout_fn(env))
        return cache[name]

    return get


def _reset(made, name, seed=0):
    env, reset, run = made(name)
    return env, reset(jax.random.split(jax.random.PRNGKey(seed), ROLLOUT_ENVS)), run


def _const(env, action, steps=ROLLOUT_STEPS):
    return jnp.broadcast_to(jnp.asarray(action, jnp.float32), (steps, ROLLOUT_ENVS, env.action_size))


# ------------------------------------------------------------------------------------ specs, goals
@pytest.mark.parametrize("name", IDS)
def test_spec_matches_reference_table(name):
    s = envs.spec(name)
    state_dim, goal_indices, actions = EXPECTED[name]
    assert (s.backend, s.state_dim, s.goal_indices, s.action_size) == ("mjx", state_dim, goal_indices, actions)
    assert s.dt == pytest.approx(0.05) and s.episode_length == 1000
    assert s.metric_names == ("success", "success_easy", "success_hard", "dist")
    env = envs.make(name)
    assert float(env.dt) == pytest.approx(0.05) and env.sys.opt.timestep == pytest.approx(0.002)


def test_other_backends_are_refused_with_the_supported_one():
    with pytest.raises(ValueError, match=r"unsupported backend 'spring'.*\['mjx'\]"):
        envs.make("arm_push_easy", backend="spring")


@pytest.mark.parametrize("name", IDS)
def test_cube_starts_and_goals_only_inside_their_regions_and_uniform(name):
    """The initial (q, goal) law: every draw inside the region of reference 6.3, uniform over it (chi-square)."""
    env = envs.make(name)
    q, _, goal = jax.jit(jax.vmap(env._initial))(jax.random.split(jax.random.PRNGKey(5), SAMPLES))
    q, goal = _np(q), _np(goal)

    def check_uniform(values, centre, half):
        assert np.all(np.abs(values - centre) <= half + 1e-6), (values.min(), values.max())
        if half > 0:
            counts, _ = np.histogram(values, bins=BINS, range=(centre - half, centre + half))
            ok, stat = chi2_ok(counts, np.full(BINS, 1.0 / BINS))
            assert ok, stat

    if name in CUBE_REGIONS:
        (cx, cy), half = CUBE_REGIONS[name]
        cube = q[:, env._cube_q:env._cube_q + 3]
        check_uniform(cube[:, 0], cx, half)
        check_uniform(cube[:, 1], cy, half)
        np.testing.assert_allclose(cube[:, 2], arm.CUBE_HALF)  # resting on the table
    if name in GOAL_REGIONS:
        centre, half = GOAL_REGIONS[name]
        for axis in range(3):
            check_uniform(goal[:, axis], centre[axis], half[axis])
    else:  # grasp: fingertips either side of the cube along x, opening 0.075
        np.testing.assert_allclose(goal[:, 0:3] - cube, np.broadcast_to([0.0375, 0, 0], cube.shape), atol=1e-6)
        np.testing.assert_allclose(goal[:, 3:6] - cube, np.broadcast_to([-0.0375, 0, 0], cube.shape), atol=1e-6)
        np.testing.assert_allclose(goal[:, 6], 0.075)


def test_scene_data_builds_the_models():
    """Reach has no cube and no fingers; binpick bins collide with cube, hand and fingers; impratio 10 there."""
    reach = mujoco.MjModel.from_xml_string(arm_scenes.scene_xml(arm.TASKS["arm_reach"].scene))
    assert reach.nu == 7 and reach.nq == 7 and reach.nmocap == 1
    pairs = lambda m: {frozenset((m.geom(a).name, m.geom(b).name)) for a, b in zip(m.pair_geom1, m.pair_geom2)}  # noqa: E731
    assert pairs(reach) == {frozenset(("table", "hand"))}
    push = mujoco.MjModel.from_xml_string(arm_scenes.scene_xml(arm.TASKS["arm_push_easy"].scene))
    assert push.nu == 9 and push.neq == 1 and len(pairs(push)) == 8
    binpick = mujoco.MjModel.from_xml_string(arm_scenes.scene_xml(arm.TASKS["arm_binpick_hard"].scene))
    walls = [f"bin{b}_wall{k}" for b in range(2) for k in range(4)]
    expected = pairs(push) | {frozenset((w, g)) for w in walls for g in arm_scenes.BIN_WALL_PARTNERS}
    assert pairs(binpick) == expected and binpick.opt.impratio == 10.0 and push.opt.impratio == 1.0
    # bin geometry of reference 6.3 (binpick hard: walls 0.39 long at +-0.19 from the bin centre)
    wall = binpick.geom("bin1_wall3")
    np.testing.assert_allclose(wall.pos, [0.3 + 0.19, 0.6, 0.033], atol=1e-9)
    np.testing.assert_allclose(wall.size, [0.005, 0.185, 0.033], atol=1e-9)


def _host_body_pos(mj, qpos, body):
    """World position of `body` for every qpos row, by MuJoCo's C kinematics on the host."""
    data = mujoco.MjData(mj)
    out = []
    for q in qpos.reshape(-1, mj.nq):
        data.qpos[:] = q
        mujoco.mj_kinematics(mj, data)
        out.append(data.xpos[mj.body(body).id].copy())
    return np.array(out).reshape(qpos.shape[:-1] + (3,))


# ------------------------------------------------------------------------------- rollouts, per id
@pytest.mark.parametrize("name", _params(IDS))
def test_every_arm_id_resets_steps_and_reports_its_achieved_goal(name, made):
    """100 random steps: finite; goal part of obs = commanded goal; obs[goal_indices] = the body read directly."""
    env, state0, run = _reset(made, name)
    actions = jax.random.uniform(jax.random.PRNGKey(2), (ROLLOUT_STEPS, ROLLOUT_ENVS, env.action_size), minval=-1, maxval=1)
    traj = run(state0, actions)
    s = env.spec
    mj = env.sys.mj_model
    for st in (state0, traj):
        obs, ps = _np(st.obs), st.pipeline_state
        assert np.all(np.isfinite(obs)) and obs.shape[-1] == s.obs_dim
        np.testing.assert_array_equal(obs[..., s.state_dim:], _np(st.info["goal"]))
        achieved = obs[..., list(s.goal_indices)]
        if name == "arm_reach":
            direct = _np(ps.xpos)[..., mj.body("link7").id, :]
        elif name == "arm_grasp":
            tips = [_np(ps.xpos)[..., mj.body(f).id, :] + np.einsum("...ij,j->...i", _np(ps.xmat)[..., mj.body(f).id, :, :],
                                                                     FINGERTIP_OFFSET) for f in arm.FINGER_LINKS]
            direct = np.concatenate([*tips, np.linalg.norm(tips[0] - tips[1], axis=-1, keepdims=True)], axis=-1)
        else:  # MuJoCo's own kinematics of the state's qpos (pipeline xpos lags q by one physics substep)
            direct = _host_body_pos(mj, _np(ps.q), "cube")
        np.testing.assert_allclose(achieved, direct, atol=1e-5)
        for m in s.metric_names:
            assert st.metrics[m].dtype == jnp.float32 and st.metrics[m].shape == obs.shape[:-1]
        marker = _np(ps.mocap_pos)[..., 0, :]
        np.testing.assert_allclose(marker, _np(jax.vmap(env.task.objective.marker)(st.info["goal"].reshape(-1, st.info["goal"].shape[-1]))).reshape(marker.shape), atol=1e-6)
    # metrics against an independent computation from the observation
    obs, goal = _np(traj.obs)[..., list(s.goal_indices)], _np(traj.info["goal"])
    if name == "arm_grasp":
        dist = np.linalg.norm((obs[..., 0:3] + obs[..., 3:6]) / 2 - (goal[..., 0:3] + goal[..., 3:6]) / 2, axis=-1)
        opening = np.abs(obs[..., 6] - goal[..., 6])
        expect = {"success": (dist < 0.05) & (opening < 0.02), "success_easy": (dist < 0.15) & (opening < 0.05),
                  "success_hard": (dist < 0.02) & (opening < 0.005)}
        np.testing.assert_allclose(goal, _np(jax.vmap(arm.grasp_goal)(traj.obs[..., :3].reshape(-1, 3))).reshape(goal.shape),
                                   atol=1e-6)  # the goal follows the cube
    else:
        dist = np.linalg.norm(obs - goal, axis=-1)
        expect = {"success": dist < 0.1, "success_easy": dist < 0.3, "success_hard": dist < 0.03}
        np.testing.assert_array_equal(goal, np.broadcast_to(_np(state0.info["goal"]), goal.shape))
    np.testing.assert_allclose(_np(traj.metrics["dist"]), dist, rtol=1e-5, atol=1e-6)
    for k, v in expect.items():
        np.testing.assert_array_equal(_np(traj.metrics[k]), v.astype(np.float32), err_msg=k)


# ---------------------------------------------------------------------------------------- physics
def test_fingers_close_and_open_on_command(made):
    env, state0, run = _reset(made, "arm_push_easy")
    dist = env.spec.state_dim - 1  # finger distance feature
    assert np.allclose(_np(state0.obs)[:, dist], 0.08, atol=1e-4)  # start: 0.04 + 0.04 open
    close = run(state0, _const(env, (0, *RAISED, 1.0)))
    assert np.all(_np(close.obs)[-1, :, dist] < 0.005), _np(close.obs)[-1, :, dist]
    reopen = run(jax.tree.map(lambda x: x[-1], close), _const(env, (0, *RAISED, -1.0)))
    assert np.all(_np(reopen.obs)[-1, :, dist] > 0.155), _np(reopen.obs)[-1, :, dist]


def test_untouched_cube_rests_on_the_table(made):
    env, state0, run = _reset(made, "arm_push_easy")
    traj = run(state0, _const(env, (0, *RAISED, 1.0)))
    cube0, cube = _np(state0.obs)[:, :3], _np(traj.obs)[..., :3]
    assert np.abs(cube[..., 2] - arm.CUBE_HALF).max() < 1e-3  # no sinking (< 1 mm)
    assert np.abs(cube[..., :2] - cube0[:, :2]).max() < 1e-3  # no drifting


def _push_script(env):
    raise_, lower = (PUSH_FROM, *RAISED, 1.0), (PUSH_FROM, *LOWERED, 1.0)
    sweep = [(a1, *LOWERED, 1.0) for a1 in np.linspace(PUSH_FROM, PUSH_TO, 40)]
    steps = [raise_] * 20 + [lower] * 20 + sweep + [(PUSH_TO, *RAISED, 1.0)] * 20
    return jnp.broadcast_to(jnp.asarray(steps, jnp.float32)[:, None, :], (ROLLOUT_STEPS, ROLLOUT_ENVS, env.action_size))


def test_scripted_sweep_pushes_the_cube_along_the_table(made):
    """Lower the closed gripper beside the cube and sweep joint 1: the cube slides ~0.2 m in +x; the same
    sweep with the arm raised leaves it in place."""
    env, state0, run = _reset(made, "arm_push_easy")
    state0 = _cube_at_start(env, state0)  # (-0.1, 0.6), where the sweep passes
    cube0 = _np(state0.pipeline_state.q)[:, env._cube_q:env._cube_q + 3]
    pushed = _np(run(state0, _push_script(env)).obs)[-1, :, :3]
    assert np.all(pushed[:, 0] - cube0[:, 0] > 0.1), pushed[:, 0] - cube0[:, 0]
    assert np.all(np.abs(pushed[:, 2] - arm.CUBE_HALF) < 5e-3)  # slid, not lifted or sunk
    raised = np.asarray(_push_script(env)).copy()
    raised[:, :, 1:4] = RAISED
    untouched = _np(run(state0, jnp.asarray(raised)).obs)[-1, :, :3]
    np.testing.assert_allclose(untouched, cube0, atol=1e-3)


def _cube_at_start(env, state0, speed=0.0):
    """state0 with every cube at its start region's (or bin's) centre, sliding at `speed` m/s along +x."""
    q = state0.pipeline_state.q.at[:, env._cube_q:env._cube_q + 2].set(jnp.asarray(env.task.cube_start))
    qd = jnp.zeros_like(state0.pipeline_state.qd).at[:, env._cube_q].set(speed)  # free joint dofs: vx first
    return state0.replace(pipeline_state=_pipeline_init(env)(q, qd))


_PIPELINE_INITS = {}


def _pipeline_init(env):
    """jit(vmap(env.pipeline_init)), built once per env id: run eagerly, MJX's kinematics take ~1 min on CPU."""
    if env.spec.name not in _PIPELINE_INITS:
        _PIPELINE_INITS[env.spec.name] = jax.jit(jax.vmap(env.pipeline_init))
    return _PIPELINE_INITS[env.spec.name]


@pytest.mark.slow  # the default run's only binpick compile (~70 s on 2 cores)
def test_cube_cannot_pass_through_a_bin_wall(made):
    """A cube thrown at a bin wall stays inside the bin; the same throw on the open table travels past it."""
    env, state0, run = _reset(made, "arm_binpick_easy")
    bin0 = env.task.scene.bins[0]
    inner_face = bin0.centre[0] + bin0.length / 2 - arm_scenes.BIN_THICKNESS
    traj = run(_cube_at_start(env, state0, THROW_SPEED), _const(env, (0, *RAISED, 1.0), steps=BIN_STEPS))
    cube_x = _np(traj.obs)[..., 0]
    # at 3 m/s the contact is soft for one control step (~16 mm of transient penetration), then the wall
    # pushes the cube back: its centre never reaches the wall and it ends touching the inner face
    assert cube_x.max() < inner_face, (cube_x.max(), inner_face)
    assert np.all(cube_x[-1] + arm.CUBE_HALF < inner_face + WALL_CONTACT_TOL), (cube_x[-1], inner_face)
    open_env, open0, open_run = _reset(made, "arm_push_easy")
    free = open_run(_cube_at_start(open_env, open0, THROW_SPEED), _const(open_env, (0, *RAISED, 1.0)))
    slid = _np(free.obs)[-1, :, 0] - open_env.task.cube_start[0]
    assert np.all(slid > bin0.length), slid  # would have crossed the wall by far


# ----------------------------------------------------------------------- metrics flow, any directory
def test_arm_metrics_flow_through_evaluation():
    """success_hard (declared only by the arm tasks) reaches the evaluator's output with no metric list anywhere."""
    env = envs.make("arm_reach")
    evaluate = make_evaluator(envs.wrap_for_eval(env, episode_length=5), env.spec,
                              uniform_random_policy(env.action_size), episode_length=5)
    out = jax.jit(evaluate)(None, jax.random.PRNGKey(0))
    for name in env.spec.metric_names:
        assert f"eval/episode_{name}" in out and np.isfinite(float(out[f"eval/episode_{name}"]))
    assert float(out["eval/episode_success_hard"]) <= float(out["eval/episode_success"]) <= float(
        out["eval/episode_success_easy"])


def test_arm_env_loads_from_another_directory(tmp_path):
    """The model comes from the package, not the working directory (stepping it is the tests above)."""
    code = textwrap.dedent("""
        import crl
        import crl.envs as envs
        env = envs.make("arm_reach")
        assert env.sys.mj_model.nbody > 1 and env.sys.mj_model.ngeom > 1
        print("ok", (env.observation_size,))
    """)
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok (16,)" in out.stdout


# ------------------------------------------------------------------------------------------ learning
REACH_CONFIG = "configs/arm_reach_cpu.yaml"
REACH_GAIN_FACTOR = 3.0  # the trained policy's time at goal must exceed 3x the random policy's


@pytest.mark.slow
def test_arm_reach_learns_above_random_on_cpu(tmp_path):
    """configs/arm_reach_cpu.yaml (~10 min on 2 cores): time at goal of the last evaluations beats random
    clearly, and success_hard is logged per evaluation in metrics.jsonl."""
    import json
    from pathlib import Path

    from crl.config import load_yaml
    from crl.train import train

    cfg = load_yaml(Path(__file__).resolve().parents[1] / REACH_CONFIG)
    cfg.run_dir, cfg.progress, cfg.tensorboard = str(tmp_path / "run"), False, False
    result = train(cfg)
    random_success = result.history[0]["eval/random_episode_success"]
    best_late = max(r["eval/episode_success"] for r in result.history[-3:])
    curve = [round(r["eval/episode_success"], 1) for r in result.history]
    assert best_late > REACH_GAIN_FACTOR * random_success + 1.0, (random_success, curve)
    records = [json.loads(line) for line in (Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert all("eval/episode_success_hard" in r for r in records)
