"""Extra learners trained on exactly the collector's batches inside the same jitted epoch (paper Fig. 8).

Each learner is an Agent built from the run's config with its overrides (crl.learner_spec); it keeps its own
params and optimiser states in TrainingState.learners[name], starts from the collector's PARAMS key (so a learner
of the collector's architecture starts from the collector's params), uses the collector's SGD keys, and is
evaluated with its own actor on the collector's evaluation episodes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from crl.agents import Agent, build_agent
from crl.config import ConfigError, TrainConfig, validate
from crl.envs.spec import EnvSpec
from crl.learner_spec import METRIC_PREFIX, learner_config, parse_learners
from crl.plan.flops import batch_template


@dataclasses.dataclass(frozen=True)
class Learner:
    name: str
    cfg: TrainConfig
    agent: Agent


def _pool_shapes(agent: Agent, spec: EnvSpec) -> dict[str, tuple]:
    """{key: (shape, dtype)} of one batch of the agent's pool, from abstract shapes (nothing is computed)."""
    return {key: (value.shape, str(value.dtype)) for key, value in batch_template(agent, spec, batch_size=1).items()}


def build_learners(cfg: TrainConfig, spec: EnvSpec, collector: Agent) -> tuple[Learner, ...]:
    """The config's learners; ConfigError when one cannot learn from the collector's batches."""
    learners = []
    collector_pool = _pool_shapes(collector, spec) if cfg.learners else None
    for learner_spec in parse_learners(cfg.learners):
        learner_cfg = learner_config(cfg, learner_spec)
        validate(learner_cfg)
        agent = build_agent(spec, learner_cfg)
        pool = _pool_shapes(agent, spec)
        if pool != collector_pool:
            raise ConfigError(f"learner '{learner_spec.name}' ({learner_cfg.algorithm}) learns from batches with "
                              f"keys {sorted(pool)}, but the collector's ({cfg.algorithm}) batches have "
                              f"{sorted(collector_pool)}; a learner must use an algorithm of the same pool (crl, gcbc "
                              f"and gcsl share one; sac and td3 share another)")
        learners.append(Learner(learner_spec.name, learner_cfg, agent))
    return tuple(learners)


def train_learners(learners: tuple[Learner, ...], states: dict[str, Any], batches: Any,
                   sgd_keys: jax.Array) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every learner's SGD steps over the collector's batches and keys: (new states, {name: mean metrics})."""
    new_states, metrics = {}, {}
    for learner in learners:
        new_states[learner.name], steps = jax.lax.scan(learner.agent.sgd_step, states[learner.name],
                                                       (batches, sgd_keys))
        metrics[learner.name] = jax.tree.map(lambda x: x.mean(), steps)
    return new_states, metrics


def learner_metrics(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """A learner's metrics under its own name: learner/<name>/<metric>."""
    return {f"{METRIC_PREFIX}{name}/{key}": value for key, value in metrics.items()}


def learner_actors(state: Any) -> dict[str, Any]:
    """{name: actor params} of the learners in a TrainingState (empty without learners)."""
    return {name: learner.actor_params for name, learner in (state.learners or {}).items()}


def make_learner_evaluator(learners: tuple[Learner, ...], make_evaluate: Callable[[Agent], Callable]) -> Callable:
    """evaluate(actors: {name: params}, key) -> {name: eval metrics}: each learner's actor on the same episodes."""
    evaluators = {learner.name: make_evaluate(learner.agent) for learner in learners}
    return lambda actors, key: {name: evaluators[name](actors[name], key) for name in evaluators}
