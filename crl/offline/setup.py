"""`crl train --offline FILE.npz`: which env a dataset belongs to, and the dataset loaded against that env's spec."""
from __future__ import annotations

import dataclasses

from crl.config import ConfigError, TrainConfig

DEFAULT_ENV = TrainConfig().env


def dataset_env(cfg: TrainConfig, recorded: str | None) -> str:
    """The env id an offline run trains for: the sidecar's, else the config's env (if not the default) or eval_env.

    A config naming another env than the one the data were collected in is refused: the data would not fit it.
    """
    chosen = cfg.env if cfg.env != DEFAULT_ENV else None
    if recorded:
        if chosen and chosen != recorded:
            raise ConfigError(f"offline = {cfg.offline}: the dataset was collected in '{recorded}' (its sidecar), not "
                              f"env '{chosen}'; drop env (an offline run takes the dataset's env) and evaluate "
                              f"elsewhere with eval_env")
        return recorded
    if chosen or cfg.eval_env:
        return chosen or cfg.eval_env
    raise ConfigError(f"offline = {cfg.offline}: the dataset has no sidecar JSON naming its env; name it with "
                      f"--eval-env (e.g. --eval-env point_u_maze, or ogbench:pointmaze-medium-navigate-v0), or with "
                      f"--env when it is not the default env '{DEFAULT_ENV}'")


def offline_config(cfg: TrainConfig) -> TrainConfig:
    """cfg with `env` set to the dataset's env (read from its sidecar; the arrays are not read)."""
    from pathlib import Path

    from crl.offline.dataset import load_dataset, read_sidecar

    if not Path(cfg.offline).is_file():
        load_dataset(cfg.offline)  # raises the loader's error naming the missing file
    info = read_sidecar(cfg.offline)
    return dataclasses.replace(cfg, env=dataset_env(cfg, None if info is None else info.get("env")))


def load_for(cfg: TrainConfig, spec):
    """The offline dataset, validated against the env spec (rows of state_dim and action_size)."""
    from crl.offline.dataset import load_dataset

    return load_dataset(cfg.offline, state_dim=spec.state_dim, action_size=spec.action_size)


def env_spec(name: str):
    """The EnvSpec of a crl env id, or of an OGBench name ('ogbench:pointmaze-medium-navigate-v0', the extra)."""
    from crl import envs
    from crl.offline.ogbench import is_ogbench_name, ogbench_spec

    return ogbench_spec(name) if is_ogbench_name(name) else envs.spec(name)


def ogbench_names(cfg: TrainConfig) -> list[str]:
    """The config's OGBench env names (known to validate()); one as the training env needs an offline dataset."""
    from crl.offline.ogbench import OGBENCH_PREFIX, is_ogbench_name

    if is_ogbench_name(cfg.env) and not cfg.offline:
        raise ConfigError(f"env = '{cfg.env}': OGBench's environments step in Python, one at a time, so crl "
                          f"evaluates on them but does not collect in them; train offline on the OGBench dataset "
                          f"(--offline FILE.npz --eval-env {cfg.env}) or online in a crl env (`crl envs`), e.g. "
                          f"--env point_u_maze (names take the form {OGBENCH_PREFIX}<dataset name>)")
    return [name for name in (cfg.env, cfg.eval_env) if is_ogbench_name(name)]
