"""Stitching ids (reference 6.2): corridor paths, distance classes of equal mass, ids and errors."""
import crl  # noqa: F401  (XLA flags before jax)

import jax
import numpy as np
import pytest
from stats import chi2_ok

import crl.envs as envs
from crl.envs import ant_maze, maze, stitching

N_DRAWS = 20_000


def _path_index(layout, cell_size, xy):
    """Index along the corridor path of the cell containing each xy (n, 2)."""
    path = stitching.corridor_path(layout)
    index = {c: k for k, c in enumerate(path)}
    cells = np.floor(np.asarray(xy) / cell_size + 0.5).astype(int)
    return np.array([index[tuple(c)] for c in cells])


def test_corridor_paths_follow_the_maze():
    u = maze.get_layout("u_maze")
    assert stitching.corridor_path(u) == ((1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1))
    assert len(stitching.corridor_path(maze.get_layout("u4_maze"))) == 11
    # reference.md 6.2 says 15 for u5; its layout (6.1) has 17 corridor cells: 1 + 6 + 3 + 6 + 1
    assert len(stitching.corridor_path(maze.get_layout("u5_maze"))) == 17
    with pytest.raises(ValueError, match="not a single corridor"):
        stitching.corridor_path(maze.get_layout("big_maze"))
    # u_maze_eval's goals are 4, 5 and 6 cells from the start: never a 1f2f3f training pair
    path = stitching.corridor_path(u)
    assert sorted(path.index(g) for g in maze.get_layout("u_maze_eval").goals) == [4, 5, 6]


@pytest.mark.parametrize("cfg, message", [("", "not a sequence"), ("1x", "not a sequence"), ("1f2", "not a sequence"),
                                          ("0f", ">= 1"), ("1f1f", "once"), ("7f", "does not fit")])
def test_bad_configs_are_named(cfg, message):
    with pytest.raises(ValueError, match=message):
        stitching.stitching_pairs(maze.get_layout("u_maze"), cfg)


def test_pairs_and_weights_exact():
    starts, goals, offsets, weights = stitching.stitching_pairs(maze.get_layout("u_maze"), "1f2f3f")
    assert len(offsets) == 6 + 5 + 4 and set(offsets) == {1, 2, 3}
    for k in (1, 2, 3):
        np.testing.assert_allclose(weights[offsets == k].sum(), 1 / 3)
    _, _, back, w = stitching.stitching_pairs(maze.get_layout("u_maze"), "2b")
    assert set(back) == {-2} and len(back) == 5 and np.isclose(w.sum(), 1.0)


@pytest.mark.parametrize("layout, cfg", [("u_maze", "1f2f3f"), ("u5_maze", "1f4f9b")])
def test_point_stitching_draws_only_configured_distances_with_equal_mass(layout, cfg):
    env = envs.make(f"point_{layout}_gen_{cfg}")
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), N_DRAWS))
    lay = maze.get_layout(layout)
    start = np.asarray(state.obs[:, :2])
    goal = np.asarray(state.info["goal"])
    # start and goal are exact cell centres (no start noise for stitching)
    np.testing.assert_allclose(start, np.round(start / env.cell_size) * env.cell_size, atol=1e-6)
    np.testing.assert_allclose(goal, np.round(goal / env.cell_size) * env.cell_size, atol=1e-6)
    offset = _path_index(lay, env.cell_size, goal) - _path_index(lay, env.cell_size, start)
    classes = stitching.parse_config(cfg)
    signed = [c.cells if c.direction == "f" else -c.cells for c in classes]
    assert set(np.unique(offset)) == set(signed)
    ok, stat = chi2_ok([np.sum(offset == k) for k in signed], np.full(len(signed), 1 / len(signed)))
    assert ok, stat
    # within a class, every start of the class is equally likely
    s_idx = _path_index(lay, env.cell_size, start)
    first = signed[0]
    counts = np.bincount(s_idx[offset == first], minlength=len(stitching.corridor_path(lay)))
    starts = np.nonzero(counts)[0]
    assert len(starts) == len(stitching.corridor_path(lay)) - abs(first)
    ok, stat = chi2_ok(counts[starts], np.full(len(starts), 1 / len(starts)))
    assert ok, stat


def test_ant_stitching_ids_share_the_maze_model():
    env = envs.make("ant_u_maze_gen_1f2f3f")
    assert env.spec.name == "ant_u_maze_gen_1f2f3f" and env.spec.dt == pytest.approx(0.05)
    assert env.layout.name == "u_maze"
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(1), 4096))
    start, goal = np.asarray(state.pipeline_state.q[:, :2]), np.asarray(state.info["goal"])
    offset = (_path_index(env.layout, ant_maze.CELL_SIZE, goal)
              - _path_index(env.layout, ant_maze.CELL_SIZE, start))
    assert set(np.unique(offset)) == {1, 2, 3}
    # the torso starts at the start cell centre up to the ant's reset noise
    centres = np.round(start / ant_maze.CELL_SIZE) * ant_maze.CELL_SIZE
    assert np.abs(start - centres).max() <= 0.1 + 1e-5


def test_family_ids_resolve_and_bad_ids_say_why():
    assert "ant_<layout>_gen_<cfg>" in envs.list_patterns()
    assert {"ant_u_maze_gen_1f2f3f", "point_u4_maze_gen_1f2f3f"} <= set(envs.list_envs())
    assert envs.make("point_u2_maze_gen_2b3f").spec.name == "point_u2_maze_gen_2b3f"  # resolved by pattern
    with pytest.raises(ValueError, match="big_maze.*not a single corridor"):
        envs.make("point_big_maze_gen_1f")
    with pytest.raises(ValueError, match="unknown maze layout 'nope_maze'"):
        envs.make("point_nope_maze_gen_1f")
    with pytest.raises(envs.UnknownEnvError, match="Families: .*point_<layout>_gen_<cfg>"):
        envs.make("point_u_maze_gen_1q")
