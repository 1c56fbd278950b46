"""Trajectory replay buffer and future-state goal relabelling (reference.md section 2).

Everything here is a pure, jittable function over a `BufferState` pytree, so the buffer lives
inside the training state and the whole collect -> insert -> sample -> relabel -> shuffle path
compiles into one program.

Layout: every stored array is shaped (capacity, num_envs, ...): a per-environment time axis
used as a ring buffer. Keys: 'obs' (float32, state_dim + goal_dim: concat(state, commanded
goal)), 'action' (float32), 'traj_id' (int32; increments on every environment reset).
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

import flax.struct
import jax
import jax.numpy as jnp

OBS_KEY = "obs"
ACTION_KEY = "action"
TRAJ_ID_KEY = "traj_id"
BUFFER_KEYS = (OBS_KEY, ACTION_KEY, TRAJ_ID_KEY)

STATE_KEY = "state"
GOAL_KEY = "goal"

TIME_AXIS = 0  # axis of stored arrays (and inserted chunks) that indexes time
NO_FUTURE_OFFSET = 0  # offset used when no later step of the same trajectory is in the window
MIN_OFFSET = 1  # smallest offset of a real future goal


@flax.struct.dataclass
class BufferState:
    """Ring buffer over time, per environment; `data` arrays are shaped (capacity, num_envs, ...)."""

    data: dict[str, jax.Array]
    insert_pos: jax.Array  # int32 scalar: next time row to write
    size: jax.Array  # int32 scalar: rows filled so far, <= capacity

    @property
    def capacity(self) -> int:
        """Number of time rows (static)."""
        return self.data[OBS_KEY].shape[TIME_AXIS]

    @property
    def num_envs(self) -> int:
        """Number of environments (static)."""
        return self.data[OBS_KEY].shape[TIME_AXIS + 1]


def init_buffer(capacity: int, num_envs: int, obs_dim: int, action_dim: int) -> BufferState:
    """An empty buffer of `capacity` time rows for `num_envs` environments (zeros, size 0)."""
    if capacity <= 0 or num_envs <= 0:
        raise ValueError(f"capacity and num_envs must be positive, got {capacity}, {num_envs}")
    data = {
        OBS_KEY: jnp.zeros((capacity, num_envs, obs_dim), jnp.float32),
        ACTION_KEY: jnp.zeros((capacity, num_envs, action_dim), jnp.float32),
        TRAJ_ID_KEY: jnp.zeros((capacity, num_envs), jnp.int32),
    }
    return BufferState(data=data, insert_pos=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def insert(buf: BufferState, chunk: Mapping[str, jax.Array]) -> BufferState:
    """Write a chunk shaped (unroll_length, num_envs, ...) at the ring position, FIFO.

    Uses a scatter into rows (insert_pos + arange(U)) % capacity, never a copy of the whole
    buffer, so with the buffer donated XLA updates it in place.
    """
    if set(chunk) != set(buf.data):
        raise ValueError(f"chunk keys {sorted(chunk)} != buffer keys {sorted(buf.data)}")
    unroll_length = chunk[OBS_KEY].shape[TIME_AXIS]
    capacity = buf.capacity
    if unroll_length > capacity:
        raise ValueError(f"chunk of {unroll_length} steps does not fit a buffer of {capacity} rows")
    for name, stored in buf.data.items():
        if chunk[name].shape != (unroll_length,) + stored.shape[TIME_AXIS + 1:]:
            raise ValueError(
                f"chunk[{name!r}] has shape {chunk[name].shape}, expected "
                f"({unroll_length}, {', '.join(map(str, stored.shape[TIME_AXIS + 1:]))})"
            )
    rows = (buf.insert_pos + jnp.arange(unroll_length, dtype=jnp.int32)) % capacity
    data = {
        name: stored.at[rows].set(
            chunk[name].astype(stored.dtype), unique_indices=True, mode="promise_in_bounds"
        )
        for name, stored in buf.data.items()
    }
    insert_pos = ((buf.insert_pos + unroll_length) % capacity).astype(jnp.int32)
    size = jnp.minimum(buf.size + unroll_length, capacity).astype(jnp.int32)
    return buf.replace(data=data, insert_pos=insert_pos, size=size)


def sample_windows(buf: BufferState, key: jax.Array, window: int) -> dict[str, jax.Array]:
    """One window of `window` consecutive stored steps per env, chronological, uniform start.

    Returns arrays shaped (num_envs, window, ...). The caller must ensure `buf.size >= window`
    (training starts only after min_replay_size >= window steps per env).
    """
    capacity, num_envs = buf.capacity, buf.num_envs
    if not 0 < window <= capacity:
        raise ValueError(f"window {window} must be in [1, capacity={capacity}]")
    oldest = (buf.insert_pos - buf.size) % capacity
    num_starts = jnp.maximum(buf.size - window + 1, 1)  # valid chronological starts 0..size-window
    start = jax.random.randint(key, (num_envs,), 0, num_starts, dtype=jnp.int32)
    chrono = start[:, None] + jnp.arange(window, dtype=jnp.int32)[None, :]  # (num_envs, window)
    rows = (oldest + chrono) % capacity
    envs = jnp.arange(num_envs, dtype=jnp.int32)[:, None]
    return {name: stored[rows, envs] for name, stored in buf.data.items()}


def _segment_ends(traj_id: jax.Array) -> jax.Array:
    """For each t, the last index of the contiguous run of equal traj ids that contains t."""
    length = traj_id.shape[0]
    index = jnp.arange(length, dtype=jnp.int32)
    is_last = jnp.concatenate([traj_id[1:] != traj_id[:-1], jnp.ones((1,), bool)])
    return jax.lax.cummin(jnp.where(is_last, index, length - 1), reverse=True)


def future_goal_offsets(traj_id: jax.Array, key: jax.Array, discount: float | jax.Array) -> jax.Array:
    """Offsets k_t to a future step of the same trajectory, P(k) ∝ discount^k on {1..M_t}.

    Exact truncated-geometric draw by inverse CDF in O(L) memory (replaces the reference's
    L x L probability matrix); M_t = steps left in t's trajectory within the window, and
    k_t = 0 (the step is its own goal) where M_t == 0. Requires 0 < discount < 1.
    """
    if isinstance(discount, (int, float)) and not 0.0 < discount < 1.0:
        raise ValueError(f"discount must be in (0, 1), got {discount}")
    remaining, u = _steps_left_and_uniforms(traj_id, key)
    log_discount = jnp.log(jnp.asarray(discount, jnp.float32))
    # CDF(k) = (1 - d^k) / (1 - d^M)  =>  k = 1 + floor(log(1 - u (1 - d^M)) / log d).
    mass = -jnp.expm1(remaining.astype(jnp.float32) * log_discount)  # 1 - d^M, accurate for small M
    draw = MIN_OFFSET + jnp.floor(jnp.log1p(-u * mass) / log_discount).astype(jnp.int32)
    return _bounded_offsets(draw, remaining)


def uniform_future_offsets(traj_id: jax.Array, key: jax.Array) -> jax.Array:
    """Offsets k_t uniform on {1..M_t} (HER's 'future' strategy, GCSL's hindsight goals); 0 where M_t == 0."""
    remaining, u = _steps_left_and_uniforms(traj_id, key)
    draw = MIN_OFFSET + jnp.floor(u * remaining.astype(jnp.float32)).astype(jnp.int32)
    return _bounded_offsets(draw, remaining)


def _steps_left_and_uniforms(traj_id: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """M_t (steps left in t's trajectory within the window, >= 0) and one U[0, 1) draw per step."""
    length = traj_id.shape[0]
    remaining = _segment_ends(traj_id) - jnp.arange(length, dtype=jnp.int32)
    return remaining, jax.random.uniform(key, (length,), jnp.float32)


def _bounded_offsets(draw: jax.Array, remaining: jax.Array) -> jax.Array:
    """A drawn offset clipped into {1..M_t}, and NO_FUTURE_OFFSET where no later step is left."""
    draw = jnp.clip(draw, MIN_OFFSET, jnp.maximum(remaining, MIN_OFFSET))
    return jnp.where(remaining > 0, draw, NO_FUTURE_OFFSET).astype(jnp.int32)


def _relabel_one(obs, action, traj_id, key, discount, state_dim, goal_indices, offsets=None):
    """Relabel one env's window: (L, ...) -> L - 1 transitions (the last step is dropped)."""
    length = traj_id.shape[0]
    offset = future_goal_offsets(traj_id, key, discount) if offsets is None else offsets(traj_id, key)
    goal_step = jnp.arange(length, dtype=jnp.int32) + offset
    achieved = obs[:, goal_indices]  # achieved goal of every step in the window
    return {
        STATE_KEY: obs[:-1, :state_dim],
        ACTION_KEY: action[:-1],
        GOAL_KEY: achieved[goal_step[:-1]],
    }


def relabel(
    windows: Mapping[str, jax.Array],
    key: jax.Array,
    discount: float | jax.Array,
    state_dim: int,
    goal_indices: Sequence[int] | jax.Array,
    offsets=None,
) -> dict[str, jax.Array]:
    """Hindsight future-state goals for every env's window (from `sample_windows`).

    Returns 'state' (N, state_dim), 'action' (N, A), 'goal' (N, len(goal_indices)) with
    N = num_envs * (window - 1); goal = achieved goal of a discounted-random future step of the
    same trajectory (or of the step itself when none is left). `offsets(traj_id, key)` replaces the
    discounted law (e.g. `uniform_future_offsets`).
    """
    obs, action, traj_id = windows[OBS_KEY], windows[ACTION_KEY], windows[TRAJ_ID_KEY]
    num_envs, window = traj_id.shape
    if window < 2:
        raise ValueError(f"window must have at least 2 steps to yield a transition, got {window}")
    goal_indices = jnp.asarray(goal_indices, jnp.int32)
    keys = jax.random.split(key, num_envs)
    one = functools.partial(_relabel_one, discount=discount, state_dim=state_dim, goal_indices=goal_indices,
                            offsets=offsets)
    per_env = jax.vmap(one)(obs, action, traj_id, keys)
    return jax.tree.map(lambda x: x.reshape((num_envs * (window - 1),) + x.shape[2:]), per_env)


def shuffle_into_batches(
    transitions: Mapping[str, jax.Array], key: jax.Array, num_batches: int, batch_size: int
) -> dict[str, jax.Array]:
    """Randomly permute the transition pool and cut it into (num_batches, batch_size, ...).

    Keeps the first num_batches * batch_size transitions of the permutation; the rest are unused.
    """
    pool = {int(x.shape[0]) for x in jax.tree.leaves(transitions)}
    if len(pool) != 1:
        raise ValueError(f"transition arrays disagree on the pool size: {sorted(pool)}")
    (pool_size,) = pool
    needed = num_batches * batch_size
    if needed > pool_size:
        raise ValueError(
            f"{num_batches} batches of {batch_size} need {needed} transitions, the pool has "
            f"{pool_size} (num_envs * (window - 1)); use fewer batches or a smaller batch"
        )
    picked = jax.random.permutation(key, pool_size)[:needed]
    return jax.tree.map(lambda x: x[picked].reshape((num_batches, batch_size) + x.shape[1:]), dict(transitions))
