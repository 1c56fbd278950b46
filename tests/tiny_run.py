"""A point-maze config that trains in seconds on CPU, shared by the sweep and scale-out tests."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

TINY_RUN = dict(env="point_u_maze", eval_env="point_u_maze", total_env_steps=20_000, num_epochs=2, num_envs=16,
                unroll_length=25, max_replay_size=200, min_replay_size=100, batch_size=64,
                sgd_steps_per_train_step=4, num_eval_envs=16, critic_depth=4, critic_width=32, actor_depth=4,
                actor_width=32, repr_dim=16, tensorboard=False, progress=False)
VOLATILE_PREFIXES = ("time/", "wall_s", "training/sps", "training/sgd_steps_per_s")  # wall-clock fields: never equal across runs


def tiny_config(**changes):
    from crl.config import TrainConfig

    return dataclasses.replace(TrainConfig(**TINY_RUN), **changes)


def write_tiny_yaml(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({**TINY_RUN, **changes}))
    return path


def read_metrics(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def comparable(records: list[dict[str, float]]) -> list[dict[str, float]]:
    """Records without wall-clock fields, for comparing two runs that should compute the same thing."""
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE_PREFIXES)} for r in records]
