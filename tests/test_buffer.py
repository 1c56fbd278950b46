"""Ring buffer, window sampling and future-goal relabelling (reference.md section 2)."""
import math

import crl  # noqa: F401  (before jax)
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from stats import chi2_ok

from crl import buffer as B



def _time_chunk(start, unroll, num_envs, obs_dim=2, action_dim=1, traj_id=None):
    """A chunk whose obs[..., 0] is the global time index and obs[..., 1] the env index."""
    t = np.arange(start, start + unroll, dtype=np.float32)[:, None] * np.ones((1, num_envs), np.float32)
    env = np.ones((unroll, 1), np.float32) * np.arange(num_envs, dtype=np.float32)[None, :]
    obs = np.stack([t, env] + [np.zeros_like(t)] * (obs_dim - 2), axis=-1)
    action = np.broadcast_to(t[..., None], (unroll, num_envs, action_dim)).copy()
    tid = t.astype(np.int32) if traj_id is None else traj_id
    return {"obs": jnp.asarray(obs), "action": jnp.asarray(action), "traj_id": jnp.asarray(tid)}


def _fill(capacity, num_envs, unroll, num_chunks):
    buf = B.init_buffer(capacity, num_envs, obs_dim=2, action_dim=1)
    ins = jax.jit(B.insert)
    for c in range(num_chunks):
        buf = ins(buf, _time_chunk(c * unroll, unroll, num_envs))
    return buf


def _truncated_geometric(discount, m):
    k = np.arange(1, m + 1)
    p = discount**k
    return p / p.sum()


# ------------------------------------------------------------------ insert / ring buffer


def test_init_shapes_and_dtypes():
    buf = B.init_buffer(7, 3, obs_dim=5, action_dim=2)
    assert buf.data["obs"].shape == (7, 3, 5) and buf.data["obs"].dtype == jnp.float32
    assert buf.data["action"].shape == (7, 3, 2) and buf.data["action"].dtype == jnp.float32
    assert buf.data["traj_id"].shape == (7, 3) and buf.data["traj_id"].dtype == jnp.int32
    assert int(buf.insert_pos) == 0 and int(buf.size) == 0
    assert buf.insert_pos.dtype == jnp.int32 and buf.size.dtype == jnp.int32


def test_insert_wraps_and_overwrites_oldest():
    capacity, num_envs, unroll = 10, 2, 4
    buf = _fill(capacity, num_envs, unroll, num_chunks=2)
    assert int(buf.size) == 8 and int(buf.insert_pos) == 8
    buf = _fill(capacity, num_envs, unroll, num_chunks=4)  # 16 steps written into 10 rows
    assert int(buf.size) == capacity and int(buf.insert_pos) == 16 % capacity
    times = np.asarray(buf.data["obs"][:, 0, 0])
    # rows 0..5 hold times 10..15 (overwritten), rows 6..9 hold times 6..9; times 0..5 are gone
    np.testing.assert_array_equal(times, [10, 11, 12, 13, 14, 15, 6, 7, 8, 9])
    np.testing.assert_array_equal(np.asarray(buf.data["traj_id"][:, 1]), times.astype(int))
    np.testing.assert_array_equal(np.asarray(buf.data["obs"][:, 1, 1]), np.ones(capacity))


def test_sample_windows_chronological_across_wrap():
    capacity, num_envs, unroll, window = 10, 64, 3, 6
    buf = _fill(capacity, num_envs, unroll, num_chunks=5)  # 15 steps: oldest stored time is 5
    w = jax.jit(B.sample_windows, static_argnums=2)(buf, jax.random.key(0), window)
    assert w["obs"].shape == (num_envs, window, 2)
    assert w["action"].shape == (num_envs, window, 1)
    assert w["traj_id"].shape == (num_envs, window) and w["traj_id"].dtype == jnp.int32
    t = np.asarray(w["obs"][..., 0])
    np.testing.assert_array_equal(np.diff(t, axis=1), np.ones((num_envs, window - 1)))
    assert t.min() >= 5 and t.max() <= 14
    np.testing.assert_array_equal(np.asarray(w["obs"][:, :, 1]), np.arange(num_envs)[:, None] * np.ones(window))
    np.testing.assert_array_equal(np.asarray(w["action"][..., 0]), t)
    # some window must straddle the physical wrap (stored times 9 -> 10 live in rows 9 -> 0)
    assert np.any((t[:, 0] <= 9) & (t[:, -1] >= 10))


def test_sample_window_starts_uniform():
    capacity, num_envs, window = 20, 4000, 5
    buf = _fill(capacity, num_envs, unroll=7, num_chunks=4)  # 28 steps, stored times 8..27
    w = B.sample_windows(buf, jax.random.key(1), window)
    starts = np.asarray(w["obs"][:, 0, 0]).astype(int) - 8
    num_starts = capacity - window + 1
    counts = np.bincount(starts, minlength=num_starts)
    assert len(counts) == num_starts, "a start beyond the last valid one was drawn"
    assert counts.min() > 0, "some valid start never drawn"
    ok, stat = chi2_ok(counts, np.full(num_starts, 1.0 / num_starts))
    assert ok, stat
    assert abs(starts.mean() - (num_starts - 1) / 2) < 0.3


def test_sample_windows_partial_buffer_uses_only_filled_rows():
    buf = _fill(capacity=50, num_envs=200, unroll=4, num_chunks=3)  # 12 of 50 rows filled
    t = np.asarray(B.sample_windows(buf, jax.random.key(2), 5)["obs"][..., 0])
    assert t.min() == 0 and t.max() == 11


def test_insert_is_a_scatter_not_a_copy():
    buf = B.init_buffer(16, 3, obs_dim=4, action_dim=2)
    chunk = _time_chunk(0, 5, 3, obs_dim=4, action_dim=2)
    jaxpr = str(jax.make_jaxpr(B.insert)(buf, chunk))
    assert "scatter" in jaxpr
    for whole_array_op in ("concatenate", "dynamic_slice", "roll", "pad"):
        assert whole_array_op not in jaxpr, whole_array_op
    # with donation the compiled program aliases the buffer in place and consumes the input
    insert = jax.jit(B.insert, donate_argnums=0)
    assert "input_output_alias" in insert.lower(buf, chunk).compile().as_text()
    old = buf.data["obs"]
    new = insert(buf, chunk)
    assert old.is_deleted()
    np.testing.assert_array_equal(np.asarray(new.data["obs"][:5, 0, 0]), np.arange(5))


def test_insert_rejects_bad_chunks():
    buf = B.init_buffer(4, 2, obs_dim=2, action_dim=1)
    with pytest.raises(ValueError, match="does not fit"):
        B.insert(buf, _time_chunk(0, 5, 2))
    with pytest.raises(ValueError, match="shape"):
        B.insert(buf, _time_chunk(0, 2, 3))


# ------------------------------------------------------------------ future-goal offsets


def _draw_offsets(traj_id, discount, num_draws, seed=0):
    keys = jax.random.split(jax.random.key(seed), num_draws)
    f = jax.jit(jax.vmap(B.future_goal_offsets, in_axes=(None, 0, None)))
    return np.asarray(f(jnp.asarray(traj_id, jnp.int32), keys, discount))


@pytest.mark.parametrize("discount", [0.9, 0.99])
def test_offsets_match_truncated_geometric(discount):
    length, num_draws = 64, 20000
    offsets = _draw_offsets(np.zeros(length), discount, num_draws)
    assert offsets.dtype == np.int32
    for t in (0, 20, length - 6, length - 3, length - 2):  # M = 63, 43, 5, 2, 1
        m = length - 1 - t
        counts = np.bincount(offsets[:, t], minlength=m + 1)
        assert len(counts) == m + 1, f"offset beyond the window end at t={t}"
        probs = np.concatenate([[0.0], _truncated_geometric(discount, m)])
        ok, stat = chi2_ok(counts, probs)
        assert ok, (t, stat)
        np.testing.assert_allclose(offsets[:, t].mean(), (np.arange(m + 1) * probs).sum(), rtol=0.03)
    np.testing.assert_array_equal(offsets[:, length - 1], 0)  # last step is its own goal


def test_offsets_long_window_reference_discount():
    """Window length and discount as in the paper (L = 1000, gamma = 0.99): mean offset exact."""
    length, discount = 1000, 0.99
    offsets = _draw_offsets(np.zeros(length), discount, 2000, seed=3)
    probs = _truncated_geometric(discount, length - 1)
    expected = (np.arange(1, length) * probs).sum()
    assert abs(offsets[:, 0].mean() - expected) < 5 * math.sqrt(
        ((np.arange(1, length) - expected) ** 2 * probs).sum() / 2000
    )
    assert offsets.min() >= 0 and (np.arange(length) + offsets).max() <= length - 1


def _reference_matrix_probs(traj_id, discount):
    """The reference's L x L rule: P(j|t) ∝ gamma^(j-t) [j > t][same traj], else j = t."""
    traj_id = np.asarray(traj_id)
    length = len(traj_id)
    idx = np.arange(length)
    weight = (idx[None, :] > idx[:, None]) * discount ** (idx[None, :] - idx[:, None]).astype(float)
    weight = weight * (traj_id[None, :] == traj_id[:, None])
    none = weight.sum(1) == 0
    weight[none, idx[none]] = 1.0
    return weight / weight.sum(1, keepdims=True)


def test_offsets_match_reference_matrix_with_segments():
    traj_id = np.repeat([3, 4, 5, 6], [1, 6, 2, 7])  # L = 16: a singleton and short segments
    discount, num_draws = 0.8, 20000
    goal_step = np.arange(len(traj_id)) + _draw_offsets(traj_id, discount, num_draws, seed=4)
    probs = _reference_matrix_probs(traj_id, discount)
    for t in range(len(traj_id)):
        counts = np.bincount(goal_step[:, t], minlength=len(traj_id))
        ok, stat = chi2_ok(counts, probs[t])
        assert ok, (t, stat)


def test_goals_never_cross_trajectory_boundaries():
    rng = np.random.default_rng(0)
    length = 40
    patterns = []
    for _ in range(24):  # random nondecreasing traj ids with several short segments
        steps = rng.random(length) < rng.uniform(0.05, 0.5)
        steps[0] = False
        patterns.append(np.cumsum(steps) + rng.integers(0, 100))
    traj = jnp.asarray(np.stack(patterns), jnp.int32)
    keys = jax.random.split(jax.random.key(5), 24 * 50).reshape(24, 50)
    f = jax.jit(jax.vmap(jax.vmap(B.future_goal_offsets, in_axes=(None, 0, None)), in_axes=(0, 0, None)))
    offsets = np.asarray(f(traj, keys, 0.7))  # (patterns, draws, L)
    traj = np.asarray(traj)
    goal = np.arange(length) + offsets
    assert offsets.min() >= 0 and goal.max() <= length - 1, "offset beyond the window"
    same = np.take_along_axis(np.broadcast_to(traj[:, None], goal.shape), goal, axis=-1)
    np.testing.assert_array_equal(same, np.broadcast_to(traj[:, None], goal.shape))
    last_of_segment = np.concatenate([traj[:, 1:] != traj[:, :-1], np.ones((24, 1), bool)], axis=1)
    last_of_segment = np.broadcast_to(last_of_segment[:, None], offsets.shape)
    assert np.all(offsets[last_of_segment] == 0), "a segment's last step must be its own goal"
    assert np.all(offsets[~last_of_segment] >= 1), "a step with a future must get a strictly future goal"


def test_offsets_reject_bad_discount():
    with pytest.raises(ValueError, match="discount"):
        B.future_goal_offsets(jnp.zeros(4, jnp.int32), jax.random.key(0), 1.0)


# ------------------------------------------------------------------ relabel and batches


def test_relabel_goals_from_same_trajectory_future():
    num_envs, length, state_dim = 6, 12, 3
    rng = np.random.default_rng(1)
    traj = np.cumsum(rng.random((num_envs, length)) < 0.25, axis=1).astype(np.int32)
    time = np.broadcast_to(np.arange(length, dtype=np.float32), (num_envs, length))
    # state = (time, traj_id, env); commanded goal (2 dims) = junk that must not be used
    env = np.broadcast_to(np.arange(num_envs, dtype=np.float32)[:, None], (num_envs, length))
    junk = np.full((num_envs, length, 2), -99.0, np.float32)
    obs = np.concatenate([np.stack([time, traj.astype(np.float32), env], -1), junk], -1)
    action = (time * 10)[..., None]
    windows = {"obs": jnp.asarray(obs), "action": jnp.asarray(action), "traj_id": jnp.asarray(traj)}
    goal_indices = (0, 1)  # achieved goal = (time, traj_id) of the future state
    relabel = jax.jit(B.relabel, static_argnums=(3, 4))
    out = relabel(windows, jax.random.key(6), 0.9, state_dim, goal_indices)
    n = num_envs * (length - 1)
    assert out["state"].shape == (n, state_dim) and out["state"].dtype == jnp.float32
    assert out["action"].shape == (n, 1) and out["goal"].shape == (n, len(goal_indices))
    state, goal, act = (np.asarray(out[k]) for k in ("state", "goal", "action"))
    np.testing.assert_array_equal(state, obs[:, :-1, :state_dim].reshape(n, state_dim))
    np.testing.assert_array_equal(act[:, 0], state[:, 0] * 10)  # action paired with its own state
    assert np.all(goal[:, 1] == state[:, 1]), "goal from another trajectory"
    assert np.all(goal[:, 0] >= state[:, 0]) and np.all(goal[:, 0] <= length - 1)
    # strictly future unless the step ends its segment inside the window
    ends = np.concatenate([traj[:, 1:] != traj[:, :-1], np.ones((num_envs, 1), bool)], 1)[:, :-1].reshape(n)
    np.testing.assert_array_equal(goal[:, 0] > state[:, 0], ~ends)
    # envs use independent keys: the goal pattern differs between identical env windows
    same = {k: jnp.broadcast_to(v[:1], v.shape) for k, v in windows.items()}
    g = np.asarray(relabel(same, jax.random.key(7), 0.99, state_dim, goal_indices)["goal"][:, 0])
    assert len({tuple(r) for r in g.reshape(num_envs, length - 1)}) > 1


def test_shuffle_into_batches_is_a_permutation():
    pool = 103
    transitions = {
        "state": jnp.arange(pool, dtype=jnp.float32)[:, None] * jnp.ones((1, 3)),
        "action": jnp.arange(pool, dtype=jnp.float32)[:, None],
        "goal": jnp.arange(pool, dtype=jnp.float32)[:, None] * jnp.ones((1, 2)),
    }
    shuffle = jax.jit(B.shuffle_into_batches, static_argnums=(2, 3))
    out = shuffle(transitions, jax.random.key(8), 4, 25)
    assert out["state"].shape == (4, 25, 3) and out["action"].shape == (4, 25, 1)
    assert out["goal"].shape == (4, 25, 2)
    ids = np.asarray(out["state"][..., 0]).astype(int).ravel()
    assert len(set(ids)) == 100 and set(ids) <= set(range(pool))
    np.testing.assert_array_equal(np.asarray(out["action"][..., 0]).astype(int).ravel(), ids)  # rows stay aligned
    np.testing.assert_array_equal(np.asarray(out["goal"][..., 1]).astype(int).ravel(), ids)
    assert not np.array_equal(ids, np.arange(100)), "not shuffled"
    other = np.asarray(shuffle(transitions, jax.random.key(9), 4, 25)["state"][..., 0]).ravel()
    assert not np.array_equal(other, ids)
    with pytest.raises(ValueError, match="pool has 103"):
        B.shuffle_into_batches(transitions, jax.random.key(0), 5, 25)


def test_full_path_jits_as_one_program():
    """insert -> sample -> relabel -> shuffle composes under one jit (as inside the epoch scan)."""
    capacity, num_envs, unroll, window = 8, 4, 3, 5

    @jax.jit
    def step(buf, chunk, key):
        buf = B.insert(buf, chunk)
        k1, k2, k3 = jax.random.split(key, 3)
        trans = B.relabel(B.sample_windows(buf, k1, window), k2, 0.99, 1, (0,))
        return buf, B.shuffle_into_batches(trans, k3, 2, 8)

    buf = B.init_buffer(capacity, num_envs, obs_dim=2, action_dim=1)
    for c in range(3):
        one_traj = np.zeros((unroll, num_envs), np.int32)
        chunk = _time_chunk(c * unroll, unroll, num_envs, traj_id=one_traj)
        buf, batches = step(buf, chunk, jax.random.key(c))
    assert batches["state"].shape == (2, 8, 1) and batches["goal"].shape == (2, 8, 1)
    assert np.all(np.asarray(batches["goal"]) > np.asarray(batches["state"]))  # one trajectory
