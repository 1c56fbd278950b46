"""Extra learners on a collector's batches (paper Fig. 8): `learners` entries parsed into names and overrides.

An entry is `"NAME: field=value field=value"` (or without `NAME:`, named after its overrides). Each learner is the
run's config with those fields changed: its own networks, algorithm and learning rates, trained on exactly the
batches the run's own agent (the collector) trains on. jax-free, so `crl report` reads it too.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from crl.config import ConfigError, TrainConfig, coerce_field

NAME_SEPARATOR = ":"
METRIC_PREFIX = "learner/"  # a learner's metrics are logged as learner/<name>/training/..., learner/<name>/eval/...
COLLECTOR = "collector"  # what `crl report` calls the run's own agent when it has learners
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# What a learner may change: its networks, algorithm and update rule. The data fields (env, batch, discount,
# steps) are the collector's, since the learner sees the collector's batches.
LEARNER_FIELDS = ("algorithm", "critic_depth", "critic_width", "actor_depth", "actor_width", "repr_dim", "activation",
                  "remat", "compute_dtype", "matmul_precision", "unroll_blocks", "actor_lr", "critic_lr", "alpha_lr",
                  "logsumexp_penalty", "energy", "contrastive_loss", "target_entropy_scale", "tau", "her_ratio",
                  "policy_delay", "target_noise", "target_noise_clip", "exploration_noise", "bc_weight")
EXAMPLE = "d16: critic_depth=16 actor_depth=16"


@dataclasses.dataclass(frozen=True)
class LearnerSpec:
    name: str
    overrides: dict[str, Any]


def parse_learner(text: str) -> LearnerSpec:
    """One `learners` entry; ConfigError naming the entry and the fix."""
    name, _, body = text.rpartition(NAME_SEPARATOR) if NAME_SEPARATOR in text else ("", "", text)
    overrides: dict[str, Any] = {}
    for item in body.replace(",", " ").split():
        field, equals, value = item.partition("=")
        if not equals or not value:
            raise ConfigError(f"learners entry {text!r}: '{item}' is not field=value; write e.g. \"{EXAMPLE}\"")
        if field not in LEARNER_FIELDS:
            raise ConfigError(f"learners entry {text!r}: a learner cannot change '{field}' (it trains on the "
                              f"collector's batches); it may change: {', '.join(LEARNER_FIELDS)}")
        overrides[field] = coerce_field(field, _scalar(value), source=f"learners entry {text!r}")
    if not overrides:
        raise ConfigError(f"learners entry {text!r} changes nothing, so it would only copy the collector; "
                          f"write e.g. \"{EXAMPLE}\"")
    name = name.strip() or "_".join(f"{k}{v}" for k, v in overrides.items())
    if not SAFE_NAME.match(name) or name == COLLECTOR:
        raise ConfigError(f"learners entry {text!r}: name '{name}' must be letters, digits, '_', '.' or '-' and not "
                          f"'{COLLECTOR}'")
    return LearnerSpec(name, overrides)


def _scalar(text: str) -> Any:
    """'16' -> 16, '3e-4' -> '3e-4' (coerce_field reads floats from text), 'true' -> True, else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return int(text) if text.lstrip("-").isdigit() else text


def parse_learners(entries: tuple[str, ...] | list[str]) -> list[LearnerSpec]:
    """Every entry, checked for unique names."""
    specs = [parse_learner(entry) for entry in entries]
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"learners: the name(s) {', '.join(repeated)} are used twice; give each learner its own "
                          f"`NAME:` prefix")
    return specs


def learner_config(cfg: TrainConfig, spec: LearnerSpec) -> TrainConfig:
    """The collector's config with the learner's overrides (and no learners of its own)."""
    return dataclasses.replace(cfg, **spec.overrides, learners=())
