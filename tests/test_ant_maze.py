"""Ant mazes (`ant_<layout>`): model, start/goal, timing, walls that stop the whole ant.

Default run: one id (ant_u_maze), one compiled 200-step rollout shared by the tests.
`pytest -m slow` also resets and steps every ant maze id (each is a distinct model: ~10-30 s
compile on a 2-core CPU).
"""
import crl  # noqa: F401  (XLA flags before jax)

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rollouts import reset_batch, rollout_fn

import crl.envs as envs
from crl.envs import ant as ant_mod
from crl.envs import ant_maze, maze

ANT_MAZE_IDS = [f"ant_{layout}" for layout in ant_maze.ANT_MAZE_LAYOUTS]
N_ENVS = 8
N_STEPS = 200
TORSO_RADIUS = 0.25  # brax ant.xml torso sphere


@pytest.fixture(scope="module")
def u_maze():
    """(env, jitted run(state, actions (N_STEPS, N_ENVS, 8)) -> stacked states)."""
    env = envs.make("ant_u_maze")
    return env, rollout_fn(env)


def _reset(env, seed, n=N_ENVS):
    return reset_batch(env, seed, n)


def _wall_depth(env, xy):
    """Signed depth of points xy (..., 2) inside the nearest wall box (> 0: inside a wall)."""
    centres, halves = env.layout.wall_boxes(env.cell_size)
    xy = np.asarray(xy)[..., None, :]
    depth = np.min(halves[:, :2] - np.abs(xy - centres[:, :2]), axis=-1)  # (..., n_boxes)
    return depth.max(axis=-1)


def test_registered_ids():
    names = envs.list_envs()
    for name in ANT_MAZE_IDS:
        assert name in names
    assert {"ant_u_maze", "ant_u4_maze", "ant_big_maze_eval", "ant_hardest_maze", "ant_u3_maze_single_eval"} <= set(names)
    assert len(ANT_MAZE_IDS) == 19


def test_model_walls_are_merged_boxes_with_body_contacts(u_maze):
    env, _ = u_maze
    mj = env.sys.mj_model
    names = [mj.geom(i).name for i in range(mj.ngeom)]
    walls = [i for i, n in enumerate(names) if n.startswith("wall_")]
    centres, halves = env.layout.wall_boxes(ant_maze.CELL_SIZE, merge=True)
    assert len(walls) == len(centres) < int(env.layout.walls.sum())  # merged: fewer boxes than wall cells
    np.testing.assert_allclose(mj.geom_pos[walls], centres)
    np.testing.assert_allclose(mj.geom_size[walls], halves)
    np.testing.assert_allclose(halves[:, 2], 0.25 * 4.0)  # 2 m high walls standing on the floor

    def collides(a, b):
        a, b = names.index(a), names.index(b)
        return bool(mj.geom_contype[a] & mj.geom_conaffinity[b] or mj.geom_contype[b] & mj.geom_conaffinity[a])

    for geom in ant_maze.WALL_COLLIDING_BODY_GEOMS + ("left_foot_geom", "fourth_foot_geom"):
        assert collides(geom, "wall_0"), geom
    assert collides("left_foot_geom", "floor") and not collides("torso_geom", "floor")  # ant dynamics as `ant`
    assert not collides("torso_geom", "left_foot_geom") and not collides("wall_0", "floor")


def test_reset_and_step_u_maze(u_maze):
    env, run = u_maze
    s = env.spec
    assert float(env.dt) == pytest.approx(0.05) and s.dt == pytest.approx(0.05)
    assert env.backend == "spring" and s.name == "ant_u_maze"
    assert s.state_dim == 29 and s.goal_indices == (0, 1) and s.action_size == 8 and s.obs_dim == 31
    assert s.episode_length == 1000 and s.success_radius == 0.5 and s.success_easy_radius == 2.0
    state0 = _reset(env, 0)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (N_STEPS, N_ENVS, 8), minval=-1.0, maxval=1.0)
    traj = run(state0, actions)
    for st in (state0, traj):
        obs, q = np.asarray(st.obs), np.asarray(st.pipeline_state.q)
        assert np.isfinite(obs).all() and np.isfinite(np.asarray(st.pipeline_state.qd)).all()
        np.testing.assert_array_equal(obs[..., list(s.goal_indices)], q[..., :2])  # achieved = torso xy
        np.testing.assert_array_equal(obs[..., s.state_dim :], np.asarray(st.info["goal"]))
        dist = np.linalg.norm(q[..., :2] - np.asarray(st.info["goal"]), axis=-1)
        np.testing.assert_allclose(np.asarray(st.metrics["dist"]), dist, rtol=1e-5, atol=1e-5)
    # torso starts at the R cell (1, 1) -> world (4, 4), upright
    np.testing.assert_allclose(np.asarray(state0.pipeline_state.q[:, :2]), 4.0, atol=0.1 + 1e-5)
    z0 = np.asarray(state0.pipeline_state.q[:, 2])
    assert ((z0 > ant_mod.HEALTHY_Z_RANGE[0]) & (z0 < ant_mod.HEALTHY_Z_RANGE[1])).all()
    # termination follows the torso height, as `ant`
    zs = np.asarray(traj.pipeline_state.q[..., 2])
    low, high = ant_mod.HEALTHY_Z_RANGE
    np.testing.assert_array_equal(np.asarray(traj.done), ((zs < low) | (zs > high)).astype(np.float32))
    # goal is fixed within the episode; random actions never put the torso into a wall
    np.testing.assert_array_equal(np.asarray(traj.info["goal"]), np.broadcast_to(state0.info["goal"], traj.info["goal"].shape))
    assert _wall_depth(env, traj.pipeline_state.q[..., :2]).max() < -(TORSO_RADIUS - 0.1)


def test_start_and_goal_distribution_u_maze(u_maze):
    """Goals uniform over the G cell centres, from the task sampler that reset draws from (physics-free);
    reset's placement of the start (R centre + U(-0.1, 0.1) noise) on a small batch."""
    env, _ = u_maze
    n = 3000
    start, goals = jax.jit(jax.vmap(env._task_sampler))(jax.random.split(jax.random.PRNGKey(2), n))
    start_centre = env.layout.start_centers(ant_maze.CELL_SIZE)[0]
    np.testing.assert_array_equal(start, np.broadcast_to(start_centre, (n, 2)))
    cells = np.asarray(goals) / ant_maze.CELL_SIZE
    np.testing.assert_array_equal(cells, np.round(cells))  # exact cell centres
    cells = np.round(cells).astype(int)
    assert {tuple(c) for c in cells} == set(env.layout.goals)  # only G cells, and all of them
    counts = np.array([np.all(cells == g, axis=1).sum() for g in env.layout.goals])
    expected = n / len(env.layout.goals)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts  # uniform
    state = _reset(env, 2)
    offset = np.asarray(state.pipeline_state.q[:, :2]) - start_centre
    assert np.abs(offset).max() <= 0.1 + 1e-5
    assert np.abs(offset).max() > 0.05  # the U(-0.1, 0.1) noise is there (16 draws all below 0.05: p = 2^-16)
    np.testing.assert_array_equal(np.asarray(state.obs[:, :2]), np.asarray(state.pipeline_state.q[:, :2]))
    goal_cells = np.round(np.asarray(state.info["goal"]) / ant_maze.CELL_SIZE).astype(int)
    assert {tuple(c) for c in goal_cells} <= set(env.layout.goals)


def test_walls_stop_the_torso(u_maze):
    """Launch the ant at 10 m/s in 8 directions from R (walls on 3 sides, 1.75 m away) for 200 steps
    with constant actions: the torso centre never gets closer to a wall than its radius minus 0.1."""
    env, run = u_maze
    state = _reset(env, 3)
    angles = np.arange(N_ENVS) * (2 * np.pi / N_ENVS)
    velocity = 10.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    qd = state.pipeline_state.qd.at[:, 0:2].set(jnp.asarray(velocity, jnp.float32))
    state = state.replace(pipeline_state=jax.jit(jax.vmap(env.pipeline_init))(state.pipeline_state.q, qd))
    actions = jnp.broadcast_to(jnp.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]), (N_STEPS, N_ENVS, 8))
    traj = run(state, actions)
    q = np.asarray(traj.pipeline_state.q)
    assert np.isfinite(q).all()
    depth = _wall_depth(env, q[..., :2])  # (N_STEPS, N_ENVS)
    assert depth.max() < -(TORSO_RADIUS - 0.1), depth.max(axis=0)
    # the launches into the +x wall (2, 1..2), the -y wall (column 0) and the -x wall (row 0) hit
    # them: the torso comes within 0.2 m of contact (centre <= radius + 0.2 from the wall)
    closest = depth.max(axis=0)
    for k in (0, 4, 6):  # +x, -x, -y
        assert closest[k] > -(TORSO_RADIUS + 0.2), (k, closest)
    # the hip joints (end points of the colliding hip capsules) stay outside the walls too
    hips = [k for k, name in enumerate(env.sys.link_names) if name.startswith("aux_")]
    assert len(hips) == 4
    hip_xy = np.asarray(traj.pipeline_state.x.pos)[:, :, hips, :2]
    assert _wall_depth(env, hip_xy).max() < 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ANT_MAZE_IDS)
def test_every_ant_maze_resets_and_steps(name):
    env = envs.make(name)
    layout = maze.get_layout(name[len("ant_") :])
    n, steps = 4, 20
    state = _reset(env, 0, 256)
    goals = np.round(np.asarray(state.info["goal"]) / ant_maze.CELL_SIZE).astype(int)
    got = {tuple(g) for g in goals}
    assert got <= set(layout.goals)  # eval layouts: only their G cells
    if len(layout.goals) <= 10:
        assert got == set(layout.goals)  # and all of them (256 draws)
    np.testing.assert_allclose(np.asarray(state.pipeline_state.q[:, :2]),
                               np.broadcast_to(layout.start_centers(ant_maze.CELL_SIZE)[0], (256, 2)), atol=0.1 + 1e-5)
    state = jax.tree_util.tree_map(lambda x: x[:n], state)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (steps, n, 8), minval=-1.0, maxval=1.0)
    traj = rollout_fn(env)(state, actions)
    assert np.isfinite(np.asarray(traj.obs)).all()
    assert float(env.dt) == pytest.approx(0.05) and env.spec.name == name
