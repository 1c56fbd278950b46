"""`crl collect`: roll out a policy in a registered env, vectorised and jitted, and write an OGBench-layout dataset.

K envs run whole episodes together, one jitted program per round (reset, then episode_length steps under a
scan); a round gives K trajectories of episode_length + 1 rows each (states s_0..s_T, the last with a zero
action and terminal 1), cut after the step where an env's episode ends early. Round r's key is
`jax.random.fold_in(jax.random.PRNGKey(seed), r)`, split into the reset key and the action keys, so a
dataset is reproducible from its seed and a round's data does not depend on how many rounds follow.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from crl.config import ConfigError
from crl.offline.dataset import DATASET_SUFFIX, GOALS_KEY, save_dataset, sidecar_path

RANDOM_POLICY = "random"
MAX_DEFAULT_ENVS = 64  # default K = min(episodes, this)
ACTION_LOW, ACTION_HIGH = -1.0, 1.0
FORMAT = "ogbench"
BYTES_PER_MB = 1 << 20

Act = Callable[[Any, jax.Array, jax.Array], jax.Array]  # (params, obs (K, obs_dim), key) -> actions (K, A)


@dataclasses.dataclass(frozen=True)
class Collected:
    """Trajectories in OGBench's layout (rows concatenated, terminal 1 at each last row) and what made them."""

    observations: np.ndarray  # (N, state_dim) float32
    actions: np.ndarray  # (N, action_size) float32; zero at each trajectory's last row
    terminals: np.ndarray  # (N,) float32
    goals: np.ndarray  # (N, goal_dim) float32: the goal commanded at that row
    time_at_goal: np.ndarray  # (episodes,) the env's headline metric summed over each episode
    info: dict  # the sidecar's fields known before writing (no 'created' or 'command')


@dataclasses.dataclass(frozen=True)
class Policy:
    """What acts in the env: act(params, obs, key), its params, and its description for the sidecar."""

    act: Act
    params: Any
    name: str  # 'random' or the run dir
    checkpoint_epoch: int | None


def crl_version() -> str:
    import crl

    version = getattr(crl, "__version__", None)
    if version:
        return version
    from importlib.metadata import version as package_version

    return package_version("crl")


def random_policy(action_size: int) -> Policy:
    """Uniform actions in [-1, 1]."""
    act = lambda params, obs, key: jax.random.uniform(key, (obs.shape[0], action_size), jnp.float32,  # noqa: E731
                                                      ACTION_LOW, ACTION_HIGH)
    return Policy(act=act, params=None, name=RANDOM_POLICY, checkpoint_epoch=None)


def run_policy(run_dir: str, env_id: str, epoch: int | None = None, say: Callable[[str], None] = print) -> Policy:
    """A run's deterministic actor, tanh(mu); of a K-seed run, seed index 0's. ConfigError if the run's envs differ."""
    from crl.policy import load_run_config, restore_run

    cfg = load_run_config(run_dir)
    run_envs = {cfg.env, cfg.eval_env or cfg.env}
    if env_id not in run_envs:
        raise ConfigError(f"{run_dir} was trained on {cfg.env} (eval env {cfg.eval_env or cfg.env}), not {env_id}; "
                          f"collect in one of those, e.g. crl collect {cfg.env} --policy {run_dir} ...")
    trainer, restored = restore_run(run_dir, epoch)
    params = restored.state.actor_params
    if cfg.num_seeds > 1:
        say(f"crl collect: {run_dir} holds {cfg.num_seeds} vmapped seeds; acting with seed index 0 (seed {cfg.seed})")
        params = jax.tree.map(lambda x: x[0], params)
    deterministic = trainer.networks.deterministic_action
    return Policy(act=lambda params, obs, key: deterministic(params, obs), params=params, name=str(run_dir),
                  checkpoint_epoch=int(restored.epoch))


def with_noise(act: Act, noise: float) -> Act:
    """Gaussian noise of std `noise` on the action, clipped to [-1, 1] (OGBench's noisy expert)."""
    if noise == 0:
        return act

    def noisy(params, obs, key):
        act_key, noise_key = jax.random.split(key)
        action = act(params, obs, act_key)
        return jnp.clip(action + noise * jax.random.normal(noise_key, action.shape, action.dtype),
                        ACTION_LOW, ACTION_HIGH)

    return noisy


def round_key(seed: int, round_index: int) -> jax.Array:
    """The key of round `round_index`: folded into the seed's key, independent of the number of rounds."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), round_index)


def make_rollout(eval_env, act: Act, episode_length: int, headline_metric: str) -> Callable:
    """rollout(params, key) -> obs (T+1, K, obs_dim), actions (T, K, A), lengths (K,), time at goal (K,).

    lengths[k] = steps taken before env k's episode ended (T when it never ends early); obs[lengths[k]] is its
    last state. Pure and jittable; the env keeps stepping after done (wrap_for_eval), those steps are cut later.
    """

    def rollout(params, key):
        reset_key, act_key = jax.random.split(key)
        state = eval_env.reset(reset_key)
        alive = jnp.ones(state.done.shape, jnp.float32)

        def step(carry, step_key):
            state, alive = carry
            action = act(params, state.obs, step_key)
            next_state = eval_env.step(state, action)
            at_goal = jnp.where(alive > 0, next_state.metrics[headline_metric], 0.0)
            next_alive = jnp.where(next_state.done > 0, 0.0, alive)
            return (next_state, next_alive), (state.obs, action, alive, at_goal)

        (last, _), (obs, actions, alive_steps, at_goal) = jax.lax.scan(
            step, (state, alive), jax.random.split(act_key, episode_length))
        obs = jnp.concatenate([obs, last.obs[None]], axis=0)
        return obs, actions, alive_steps.sum(axis=0).astype(jnp.int32), at_goal.sum(axis=0)

    return rollout


def trajectories_from_rollout(obs: np.ndarray, actions: np.ndarray, lengths: np.ndarray,
                              state_dim: int) -> dict[str, np.ndarray]:
    """One round's arrays (time-major, as make_rollout returns them) -> OGBench rows, env k's trajectory k-th.

    Env k contributes rows t = 0..lengths[k]: state obs[t, k, :state_dim], goal obs[t, k, state_dim:], action
    actions[t, k] (zero at t = lengths[k], its last row, which has terminal 1).
    """
    steps_plus_one, num_envs = obs.shape[:2]
    t = np.arange(steps_plus_one)[None, :]  # (1, T+1)
    keep = t <= lengths[:, None]  # (K, T+1), env-major so rows come out trajectory by trajectory
    obs_rows = np.swapaxes(obs, 0, 1)[keep]
    padded = np.concatenate([actions, np.zeros((1,) + actions.shape[1:], actions.dtype)], axis=0)
    acting = np.swapaxes(padded, 0, 1) * (t < lengths[:, None])[..., None]
    return {"observations": obs_rows[:, :state_dim], "actions": acting[keep], GOALS_KEY: obs_rows[:, state_dim:],
            "terminals": (t == lengths[:, None])[keep].astype(np.float32)}


def collect(env_id: str, policy: str = RANDOM_POLICY, episodes: int = 1, checkpoint: int | None = None,
            noise: float = 0.0, num_envs: int | None = None, seed: int = 0,
            say: Callable[[str], None] = print) -> Collected:
    """Roll out `policy` ('random' or a run dir) for `episodes` whole episodes in env `env_id`, in rounds of K envs.

    Raises ConfigError (exit 2 in the CLI) for an unknown env, a bad count, or a run of another env.
    """
    from crl import envs

    check_request(env_id, policy, episodes, checkpoint, noise, num_envs)
    spec = envs.spec(env_id)
    num_envs = min(episodes, num_envs or MAX_DEFAULT_ENVS)
    chosen = random_policy(spec.action_size) if policy == RANDOM_POLICY else run_policy(policy, env_id, checkpoint,
                                                                                          say)
    eval_env = envs.wrap_for_eval(envs.make(env_id), spec.episode_length, num_envs)
    rollout = jax.jit(make_rollout(eval_env, with_noise(chosen.act, noise), spec.episode_length,
                                   spec.headline_metric))
    rounds = math.ceil(episodes / num_envs)
    parts, time_at_goal = [], []
    for r in range(rounds):
        start = time.perf_counter()
        obs, actions, lengths, at_goal = jax.device_get(rollout(chosen.params, round_key(seed, r)))
        keep = min(num_envs, episodes - r * num_envs)  # the last round may hold more envs than episodes left
        parts.append(trajectories_from_rollout(obs[:, :keep], actions[:, :keep], lengths[:keep], spec.state_dim))
        time_at_goal.append(at_goal[:keep])
        if rounds > 1:
            done = min(episodes, (r + 1) * num_envs)
            say(f"crl collect: round {r + 1}/{rounds}: {done}/{episodes} episodes, time at goal "
                f"{np.mean(at_goal[:keep]):.2f}, {time.perf_counter() - start:.1f} s")
    rows = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    info = {"format": FORMAT, "env": env_id, "spec": dataclasses.asdict(spec), "policy": chosen.name,
            "checkpoint_epoch": chosen.checkpoint_epoch, "noise": float(noise), "episodes": int(episodes),
            "seed": int(seed), "num_transitions": int(rows["terminals"].shape[0]), "crl_version": crl_version()}
    return Collected(time_at_goal=np.concatenate(time_at_goal), info=info, **rows)


def check_request(env_id: str, policy: str, episodes: int, checkpoint: int | None, noise: float,
                  num_envs: int | None) -> None:
    """ConfigError naming the first bad argument: unknown env, counts below 1, negative noise, missing run dir."""
    from crl import envs

    try:
        envs.check_name(env_id)
    except (KeyError, ValueError) as err:
        raise ConfigError(str(err)) from err
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if num_envs is not None and num_envs < 1:
        raise ConfigError(f"--num-envs must be >= 1, got {num_envs}")
    if noise < 0 or not math.isfinite(noise):
        raise ConfigError(f"--noise is a standard deviation: >= 0, got {noise}")
    if policy == RANDOM_POLICY and checkpoint is not None:
        raise ConfigError(f"--checkpoint {checkpoint} picks a run's checkpoint; with --policy random there is none "
                          "(give --policy RUN_DIR)")
    if policy != RANDOM_POLICY and not Path(policy).is_dir():
        raise ConfigError(f"--policy {policy}: no such run directory; give 'random' or a run dir written by crl train")


def write_collected(collected: Collected, out: str | Path, command: str) -> Path:
    """Save the trajectories (goals as an extra key) and the sidecar (with creation time and command)."""
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = {**collected.info, "created": created, "command": command}
    return save_dataset(out, collected.observations, collected.actions, collected.terminals, info,
                        extras={GOALS_KEY: collected.goals})


def summary(collected: Collected, path: Path) -> str:
    """What was written and how good the data is (the env's time at goal, averaged over episodes)."""
    info = collected.info
    size_mb = path.stat().st_size / BYTES_PER_MB
    policy = info["policy"] + ("" if info["checkpoint_epoch"] is None else f" (epoch {info['checkpoint_epoch']})")
    return (f"crl collect: wrote {path} ({size_mb:.2f} MB) and {sidecar_path(path).name}\n"
            f"  env {info['env']}, policy {policy}, noise {info['noise']:g}, seed {info['seed']}\n"
            f"  episodes {info['episodes']:,}, transitions {info['num_transitions']:,} (rows, last state of each "
            f"episode included)\n"
            f"  time at goal {np.mean(collected.time_at_goal):.2f} of {info['spec']['episode_length']} steps "
            f"(mean over episodes; episodes that reached the goal: {np.mean(collected.time_at_goal > 0):.0%})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crl collect", description=(
        "Roll out a policy in a registered env (K envs vectorised, one jitted program per round of whole episodes) "
        "and write the trajectories as an OGBench-layout .npz (observations, actions, terminals, goals) with a "
        "JSON sidecar. Exit 2 on bad input."))
    p.add_argument("env", help="a registered env id (`crl envs` lists them)")
    p.add_argument("--policy", required=True, metavar="random|RUN_DIR",
                   help="'random' (uniform in [-1, 1]) or a run dir of `crl train` (its deterministic actor; seed "
                        "index 0 of a multi-seed run)")
    p.add_argument("--checkpoint", type=int, default=None, metavar="EPOCH",
                   help="with a run dir: the checkpoint's epoch (default: the newest valid)")
    p.add_argument("--noise", type=float, default=0.0, metavar="S",
                   help="std of Gaussian noise added to each action, then clipped to [-1, 1] (default: %(default)s)")
    p.add_argument("--episodes", type=int, required=True, metavar="N", help="whole episodes to collect")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="dataset file; FILE.json is written beside it")
    p.add_argument("--num-envs", type=int, default=None, metavar="K",
                   help=f"envs stepped together (default: min(N, {MAX_DEFAULT_ENVS}))")
    p.add_argument("--seed", type=int, default=0,
                   help="round r's key is fold_in(PRNGKey(seed), r) (default: %(default)s)")
    return p


def main(argv: list[str]) -> int:
    from crl import _platform
    from crl.checkpoint import CheckpointRestoreError, NoValidCheckpointError

    args = parser().parse_args(argv)
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731  progress on stderr, the summary on stdout
    try:
        if Path(args.out).suffix != DATASET_SUFFIX:
            raise ConfigError(f"--out {args.out}: a dataset file ends in {DATASET_SUFFIX}, e.g. "
                              f"{Path(args.out).with_suffix(DATASET_SUFFIX)}")
        check_request(args.env, args.policy, args.episodes, args.checkpoint, args.noise, args.num_envs)
        _platform.enable_compilation_cache()
        collected = collect(args.env, args.policy, args.episodes, args.checkpoint, args.noise, args.num_envs,
                            args.seed, say)
        path = write_collected(collected, args.out, shlex.join(["crl", "collect", *argv]))
    except (ConfigError, NoValidCheckpointError, CheckpointRestoreError) as err:
        print(f"crl collect: {err}", file=sys.stderr)
        return 2
    print(summary(collected, path))
    return 0
