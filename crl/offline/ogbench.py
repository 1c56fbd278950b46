"""OGBench's locomotion mazes as evaluation environments for crl actors, scored by OGBench's own rule.

The `ogbench` package is an optional extra (`pip install -e '.[ogbench]'`); it is imported only when one of these
functions runs, so crl imports and works without it. Names are OGBench dataset names
('pointmaze-medium-navigate-v0'), optionally written with crl's prefix ('ogbench:pointmaze-medium-navigate-v0').
"""
from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from crl.config import ConfigError
from crl.envs.spec import EnvSpec

OGBENCH_PREFIX = "ogbench:"
BACKEND = "ogbench"
INSTALL_HINT = "pip install -e '.[ogbench]' (or pip install -r requirements-ogbench.lock)"

# Locomaze observations start with the robot's x, y (point: qpos; ant: qpos, qvel; humanoid: xy, joint angles, ...),
# and info['goal'] is the observation at the goal, so a goal in crl's sense is obs[0:2] for every family listed here.
ROBOT_XY = (0, 1)
GOAL_INDICES_BY_FAMILY = {"pointmaze": ROBOT_XY, "antmaze": ROBOT_XY, "humanoidmaze": ROBOT_XY}
# Dataset-name words of OGBench variants whose reset ignores task_id or whose goal is not an observation.
UNSUPPORTED_VARIANTS = ("singletask", "oraclerep")

SUCCESS_METRIC = "success"
METRIC_PREFIX = "eval/ogbench_"


class OGBenchNotInstalledError(ConfigError):
    """The `ogbench` extra is not installed; the message says how to install it."""


class UnsupportedOGBenchEnvError(ConfigError):
    """An OGBench name crl cannot evaluate on (unknown, or not a state-based locomotion maze)."""


def is_ogbench_name(name: str | None) -> bool:
    """Whether an env id names an OGBench dataset/env (crl's 'ogbench:' form)."""
    return bool(name) and name.startswith(OGBENCH_PREFIX)


def strip_prefix(name: str) -> str:
    """OGBench's own name for `name`, with or without crl's 'ogbench:' prefix."""
    return name[len(OGBENCH_PREFIX):] if is_ogbench_name(name) else name


def require_ogbench() -> types.ModuleType:
    """The `ogbench` package, or OGBenchNotInstalledError saying how to install the extra."""
    try:
        import ogbench
    except ImportError as error:
        raise OGBenchNotInstalledError(f"OGBench environments need the `ogbench` extra, which is not installed "
                                       f"({error}); install it with {INSTALL_HINT}") from error
    return ogbench


def family_goal_indices(name: str) -> tuple[int, ...]:
    """goal_indices of a supported OGBench name's family; UnsupportedOGBenchEnvError naming the supported ones."""
    ogbench_name = strip_prefix(name)
    words = ogbench_name.split("-")
    supported = ", ".join(GOAL_INDICES_BY_FAMILY)
    if words[0] not in GOAL_INDICES_BY_FAMILY:
        raise UnsupportedOGBenchEnvError(
            f"OGBench env '{ogbench_name}': family '{words[0]}' is not supported; crl evaluates on the state-based "
            f"locomotion mazes {supported} (e.g. 'ogbench:pointmaze-medium-navigate-v0'); manipulation, visual-* "
            f"and powderworld envs are not supported")
    variants = [word for word in words if word in UNSUPPORTED_VARIANTS]
    if variants:
        raise UnsupportedOGBenchEnvError(
            f"OGBench env '{ogbench_name}': the '{variants[0]}' variant is not supported; use the goal-conditioned "
            f"dataset name without it (e.g. '{words[0]}-medium-navigate-v0'); supported families: {supported}")
    return GOAL_INDICES_BY_FAMILY[words[0]]


def make_ogbench_env(name: str) -> Any:
    """The gymnasium env of an OGBench dataset name (a plain env id such as 'pointmaze-medium-v0' works too)."""
    family_goal_indices(name)
    ogbench = require_ogbench()
    import gymnasium

    ogbench_name = strip_prefix(name)
    try:
        if ogbench_name in gymnasium.registry:
            return gymnasium.make(ogbench_name)
        return ogbench.make_env_and_datasets(ogbench_name, env_only=True)
    except gymnasium.error.Error as error:
        raise UnsupportedOGBenchEnvError(f"OGBench env '{ogbench_name}': {error}; OGBench's dataset names look like "
                                         f"'pointmaze-medium-navigate-v0' or 'antmaze-large-stitch-v0'") from error


def spec_from_env(name: str, env: Any) -> EnvSpec:
    """crl's EnvSpec of a built OGBench locomaze env: sizes and time limit from gymnasium, radius from the maze."""
    maze = env.unwrapped
    (state_dim,) = env.observation_space.shape
    (action_size,) = env.action_space.shape
    return EnvSpec(name=OGBENCH_PREFIX + strip_prefix(name), backend=BACKEND, state_dim=state_dim,
                   goal_indices=family_goal_indices(name), action_size=action_size,
                   episode_length=env.spec.max_episode_steps, dt=float(maze.dt),
                   success_radius=float(maze._goal_tol), metric_names=(SUCCESS_METRIC,),
                   headline_metric=SUCCESS_METRIC)


def ogbench_spec(name: str) -> EnvSpec:
    """crl's EnvSpec of an OGBench dataset name ('ogbench:pointmaze-medium-navigate-v0' or without the prefix)."""
    env = make_ogbench_env(name)
    try:
        return spec_from_env(name, env)
    finally:
        env.close()


@contextlib.contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (OGBench's mazes draw start and goal noise from it), restoring it afterwards."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def run_episode(env: Any, policy: Callable[[np.ndarray], np.ndarray], task_id: int,
                goal_indices: tuple[int, ...], seed: int | None) -> tuple[float, int]:
    """One episode of OGBench task `task_id`: (success of its last step, its length), as OGBench's evaluate does."""
    observation, info = env.reset(seed=seed, options=dict(task_id=task_id, render_goal=False))
    goal = np.asarray(info["goal"])[list(goal_indices)]
    low, high = env.action_space.low, env.action_space.high
    steps, done = 0, False
    while not done:
        action = np.clip(policy(np.concatenate([observation, goal])), low, high)
        observation, _, terminated, truncated, info = env.step(action)
        steps, done = steps + 1, terminated or truncated
    return float(info["success"]), steps


def task_ids_of(env: Any, task_ids: Sequence[int] | None) -> tuple[int, ...]:
    """The evaluation task ids: all of the env's (1..num_tasks) by default; an id out of range is a ConfigError."""
    num_tasks = env.unwrapped.num_tasks
    chosen = tuple(range(1, num_tasks + 1)) if task_ids is None else tuple(int(k) for k in task_ids)
    wrong = [k for k in chosen if not 1 <= k <= num_tasks]
    if wrong or not chosen:
        raise ConfigError(f"OGBench task ids {list(chosen)}: each must be in 1..{num_tasks} (this env's tasks)")
    return chosen


def summarise(successes: dict[int, list[float]], lengths: list[int]) -> dict[str, float]:
    """OGBench's scores: success rate per task (mean over its episodes), overall = mean over tasks; mean length."""
    per_task = {task: float(np.mean(values)) for task, values in successes.items()}
    metrics = {f"{METRIC_PREFIX}success": float(np.mean(list(per_task.values())))}
    metrics.update({f"{METRIC_PREFIX}task{task}_success": rate for task, rate in per_task.items()})
    metrics[f"{METRIC_PREFIX}episode_length"] = float(np.mean(lengths))
    return metrics


def make_ogbench_evaluator(name: str, deterministic_action: Callable[[Any, Any], Any], episodes_per_task: int = 1,
                           task_ids: Sequence[int] | None = None,
                           seed: int = 0) -> Callable[[Any], dict[str, float]]:
    """evaluate(actor_params) -> OGBench success metrics of the deterministic actor on the env's task goals.

    Every call replays the same seeded episodes (env resets and numpy's global generator seeded from `seed`), so
    two calls with the same params give the same numbers. Observations to the actor are concat(ob, goal[goal_indices]).
    """
    if episodes_per_task < 1:
        raise ConfigError(f"episodes_per_task = {episodes_per_task}: must be at least 1")
    import jax

    env = make_ogbench_env(name)
    spec = spec_from_env(name, env)
    tasks = task_ids_of(env, task_ids)
    act = jax.jit(deterministic_action)

    def evaluate(actor_params: Any) -> dict[str, float]:
        def policy(obs: np.ndarray) -> np.ndarray:
            return np.asarray(act(actor_params, obs.astype(np.float32)[None]))[0]

        successes: dict[int, list[float]] = {task: [] for task in tasks}
        lengths: list[int] = []
        reset_seed = seed  # seeds the env's generator once; later resets continue its stream
        with seeded_global_numpy(seed):
            env.action_space.seed(seed)
            for task in tasks:
                for _ in range(episodes_per_task):
                    success, length = run_episode(env, policy, task, spec.goal_indices, reset_seed)
                    successes[task].append(success)
                    lengths.append(length)
                    reset_seed = None
        return summarise(successes, lengths)

    return evaluate
