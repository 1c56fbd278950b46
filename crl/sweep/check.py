"""Pre-launch checks: every run of a sweep validated as `crl train` would, before any run starts.

Built-in env ids are looked up in crl/env_catalog.py (plain data), so checking a sweep over them loads no jax
and builds no env; other ids (id families such as stitching, user-registered envs) go through the registry.
"""
from __future__ import annotations

from crl import env_catalog
from crl.config import BUILTIN_ALGORITHMS, ConfigError, TrainConfig, validate
from crl.learner_spec import learner_config, parse_learners
from crl.offline.setup import offline_config
from crl.sweep.spec import Run


def _env_ids(cfg: TrainConfig) -> set[str]:
    return {cfg.env, cfg.eval_env} - {None}


def _known_envs(cfg: TrainConfig) -> list[str]:
    """The ids validate() accepts: the catalog's when it holds the config's ids, else the registry's."""
    if _env_ids(cfg) <= set(env_catalog.SPECS):
        return list(env_catalog.SPECS)
    from crl.train import known_envs  # imports jax and the simulators: only for ids outside the catalog

    return known_envs(cfg)


def _episode_length(env: str) -> int:
    """The env's episode length: from the catalog, else from the registry (builds the env once, compiles nothing)."""
    if env in env_catalog.SPECS:
        return env_catalog.SPECS[env]["episode_length"]
    from crl.offline.setup import env_spec  # the registry's, or OGBench's (the extra)

    return env_spec(env).episode_length


def _check_algorithm(name: str) -> None:
    """A built-in name passes without jax; any other goes to the registry (which names the known ones)."""
    if name not in BUILTIN_ALGORITHMS:
        from crl.agents import get_algorithm  # imports jax: only for names outside the built-ins

        get_algorithm(name)


def run_problem(cfg: TrainConfig) -> str | None:
    """Why `crl train` would refuse this config (field, value and fix), or None when it can start."""
    try:
        _check_algorithm(cfg.algorithm)
        if cfg.offline:  # the dataset's env, from its sidecar (a missing file is named here, before launch)
            cfg = offline_config(cfg)
        for learner in parse_learners(cfg.learners):
            _check_algorithm(learner.overrides.get("algorithm", cfg.algorithm))
            validate(learner_config(cfg, learner))
        known = _known_envs(cfg)
        validate(cfg, known_envs=known)  # field-level checks and env ids, before the spec lookup needs the id
        validate(cfg, known_envs=known, episode_length=_episode_length(cfg.env))
    except ConfigError as err:
        return str(err)
    return None


def check_runs(runs: list[Run], where: str) -> None:
    """Raise one ConfigError naming every run that cannot start and why; nothing is launched then."""
    problems = [(run.id, problem) for run in runs if (problem := run_problem(run.config)) is not None]
    if problems:
        lines = "\n".join(f"  run {run_id}: {problem}" for run_id, problem in problems)
        raise ConfigError(f"{where}: {len(problems)} of {len(runs)} runs would fail before training, so none was "
                          f"launched; fix the spec or the --set values:\n{lines}")
