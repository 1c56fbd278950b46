"""Batched training / evaluation wrappers: episodes, auto-reset ('fresh' or 'cached') and trajectory ids.

Training stack (outermost first), built by `wrap_for_training`:

    TrajectoryIdWrapper
      AutoResetWrapper(reset_mode='fresh' | 'cached')
        brax EpisodeWrapper(episode_length, action_repeat=1)
          brax VmapWrapper(env)

`reset(rng)` takes ONE PRNG key (raw uint32 or typed) and splits it into `num_envs` keys.

Semantics of one batched `step(state, action)` for env b (all values per env):

* The inner env steps from `state`. If that transition ends the episode -- termination (the env
  set done) or truncation (`info['steps']` reached `episode_length`) -- the returned state has
  `done[b] = 1`, `info['truncation'][b] = 1` iff the end was the time limit and not a
  termination, `reward`/`metrics` of that terminal transition, but `obs`, `pipeline_state` and
  the env's own info entries (e.g. `info['goal']`) ALREADY belong to the first state of the next
  episode (the terminal observation is dropped, as in brax and the reference). `info['steps']`
  still holds the finished episode's length; it is zeroed at the start of the next step.
* `info['traj_id'][b]` (int32) starts at 0 and is incremented in exactly that returned state, so
  the new episode's first observation carries the new id. A transition recorded as
  (state.obs, action, state.info['traj_id']) BEFORE calling step keeps the id of the episode
  that obs belongs to: the terminal transition (the action that ended the episode) carries the
  old id, the first transition of the next episode the new id. Consecutive recorded obs share
  an id iff they are in the same episode. traj_id counts episodes per env (not unique across envs).
* reset_mode='cached' (reference behaviour, brax AutoResetWrapper): a done env is restored to its
  state from the very first `reset` (same start, same goal, forever). 'fresh': a done env gets
  `env.reset(key)` with a new key per env; each env's key lives in `info['reset_key']` and is
  split at each of its resets (env b's reset sequence depends only on its own key chain). The
  fresh reset runs under `lax.cond(any(done))`, so steps where no env is done skip it (when the
  step is vmapped further, e.g. over seeds, the cond becomes a select and always runs it).

`wrap_for_eval` gives EpisodeWrapper + vmap only (no auto reset, no traj ids): after an episode
ends the env keeps stepping with done = 1; evaluation masks with its own alive flags.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State, Wrapper
from brax.envs.wrappers.training import EpisodeWrapper, VmapWrapper

RESET_MODES = ("fresh", "cached")
TRAJ_ID_KEY = "traj_id"
RESET_KEY = "reset_key"
FIRST_PIPELINE_STATE_KEY = "first_pipeline_state"
FIRST_OBS_KEY = "first_obs"
FIRST_INFO_KEY = "first_info"
ACTION_REPEAT = 1


def raw_key(rng: jax.Array) -> jax.Array:
    """A raw uint32 key array from a raw or typed (jax.random.key) key; brax expects raw keys."""
    if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(rng)
    return rng


def _where_done(done: jax.Array, new, old):
    """Per-env select over pytrees whose leaves lead with the env axis: new where done, else old."""

    def select(x, y):
        d = jnp.reshape(done, done.shape + (1,) * (x.ndim - done.ndim))
        return jnp.where(d, x, y)

    return jax.tree.map(select, new, old)


class _SplitKeyWrapper(Wrapper):
    """reset(rng) with ONE key -> the inner batched reset with `num_envs` keys."""

    def __init__(self, env: Env, num_envs: int):
        super().__init__(env)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs

    def reset(self, rng: jax.Array) -> State:
        return self.env.reset(jax.random.split(raw_key(rng), self.num_envs))


class AutoResetWrapper(Wrapper):
    """Resets done envs inside `step`; mode 'fresh' (new env.reset) or 'cached' (first reset's state).

    Wraps a brax EpisodeWrapper around a batched (vmapped) env; fresh resets call the batched env
    under the EpisodeWrapper, so the episode bookkeeping is not reset there (brax semantics:
    `info['steps']` is zeroed at the start of the next step). See the module docstring.
    """

    def __init__(self, env: EpisodeWrapper, num_envs: int, reset_mode: str = "fresh"):
        super().__init__(env)
        if not isinstance(env, EpisodeWrapper):
            raise TypeError(f"AutoResetWrapper wraps a brax EpisodeWrapper, got {type(env).__name__}")
        if reset_mode not in RESET_MODES:
            raise ValueError(f"reset_mode must be one of {RESET_MODES}, got {reset_mode!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.reset_mode = reset_mode
        self._batched_reset = env.env.reset  # the vmapped env's reset (keys (num_envs, ...))

    def reset(self, rng: jax.Array) -> State:
        rng, carry_rng = jax.random.split(raw_key(rng))
        keys = jax.random.split(rng, self.num_envs)
        state = self.env.reset(keys)
        info = dict(state.info)
        if self.reset_mode == "fresh":
            info[RESET_KEY] = jax.random.split(carry_rng, self.num_envs)
        else:
            base_keys = jax.eval_shape(self._batched_reset, keys).info.keys()
            info[FIRST_PIPELINE_STATE_KEY] = state.pipeline_state
            info[FIRST_OBS_KEY] = state.obs
            info[FIRST_INFO_KEY] = {k: state.info[k] for k in base_keys}
        return state.replace(info=info)

    def step(self, state: State, action: jax.Array) -> State:
        info = dict(state.info)
        info["steps"] = jnp.where(state.done > 0, jnp.zeros_like(info["steps"]), info["steps"])
        state = state.replace(done=jnp.zeros_like(state.done), info=info)
        state = self.env.step(state, action)
        done = state.done > 0
        if self.reset_mode == "cached":
            info = dict(state.info)
            first = info[FIRST_INFO_KEY]
            info.update(_where_done(done, first, {k: info[k] for k in first}))
            return state.replace(
                pipeline_state=_where_done(done, info[FIRST_PIPELINE_STATE_KEY], state.pipeline_state),
                obs=_where_done(done, info[FIRST_OBS_KEY], state.obs),
                info=info,
            )

        def fresh_reset(state: State) -> State:
            keys = state.info[RESET_KEY]
            split = jax.vmap(jax.random.split)(keys)  # (num_envs, 2, key...)
            carry, use = split[:, 0], split[:, 1]
            new = self._batched_reset(use)
            info = dict(state.info)
            info.update(_where_done(done, dict(new.info), {k: info[k] for k in new.info}))
            info[RESET_KEY] = _where_done(done, carry, keys)
            return state.replace(
                pipeline_state=_where_done(done, new.pipeline_state, state.pipeline_state),
                obs=_where_done(done, new.obs, state.obs),
                info=info,
            )

        return jax.lax.cond(jnp.any(done), fresh_reset, lambda s: s, state)


class TrajectoryIdWrapper(Wrapper):
    """Keeps info['traj_id'] (int32 per env): 0 at reset, +1 in the state returned by a step whose
    transition ended the episode (done, i.e. termination or truncation). See the module docstring."""

    def reset(self, rng: jax.Array) -> State:
        state = self.env.reset(rng)
        info = dict(state.info)
        info[TRAJ_ID_KEY] = jnp.zeros(state.done.shape, jnp.int32)
        return state.replace(info=info)

    def step(self, state: State, action: jax.Array) -> State:
        traj_id = state.info[TRAJ_ID_KEY]
        state = self.env.step(state, action)
        info = dict(state.info)
        info[TRAJ_ID_KEY] = traj_id + (state.done > 0).astype(jnp.int32)
        return state.replace(info=info)


def _episode_length(env: Env, episode_length: int | None) -> int:
    if episode_length is None:
        episode_length = env.spec.episode_length
    if int(episode_length) < 1:
        raise ValueError(f"episode_length must be >= 1, got {episode_length}")
    return int(episode_length)


def wrap_for_training(
    env: Env, episode_length: int | None = None, reset_mode: str = "fresh", num_envs: int = 1
) -> Wrapper:
    """Batched training env: TrajectoryId(AutoReset(Episode(Vmap(env)))).

    episode_length None -> env.spec.episode_length. reset(rng) takes one key. The result exposes
    `num_envs`, `reset_mode`, `episode_length` and (delegated) the base env's `spec`.
    """
    episode_length = _episode_length(env, episode_length)
    wrapped = EpisodeWrapper(VmapWrapper(env), episode_length, ACTION_REPEAT)
    wrapped = AutoResetWrapper(wrapped, num_envs=num_envs, reset_mode=reset_mode)
    return TrajectoryIdWrapper(wrapped)


def wrap_for_eval(env: Env, episode_length: int | None = None, num_envs: int = 1) -> Wrapper:
    """Batched evaluation env: Episode(Vmap(env)), no auto reset; reset(rng) takes one key.

    After an episode ends (done = 1 at termination or at `episode_length` steps) the env keeps
    stepping and done stays 1 for the time limit; a terminated env's done follows the env.
    """
    episode_length = _episode_length(env, episode_length)
    wrapped = EpisodeWrapper(VmapWrapper(env), episode_length, ACTION_REPEAT)
    return _SplitKeyWrapper(wrapped, num_envs)
