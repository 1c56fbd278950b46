"""Evaluation on the host, for OGBench's gym environments: programs the trainer calls like its compiled ones.

OGBench's mazes are gymnasium envs (one MuJoCo simulation stepped from Python), so they cannot run inside a jitted
program; each evaluation loops over the run's seeds and OGBench's task goals in Python, with the actor jitted.
"""
from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable

import jax
import numpy as np

from crl.agents import Agent
from crl.offline.ogbench import make_ogbench_evaluator

NO_DEVICE_MEMORY = types.SimpleNamespace(argument_size_in_bytes=0, output_size_in_bytes=0, alias_size_in_bytes=0,
                                         temp_size_in_bytes=0)


@dataclasses.dataclass
class HostProgram:
    """A host function standing where a compiled program stands: lowering and compiling return it unchanged,
    and it holds no device memory of its own (crl plan counts the actor it reads as part of the state)."""

    fn: Callable

    def lower(self, *args: Any, **kwargs: Any) -> "HostProgram":
        return self

    def compile(self) -> "HostProgram":
        return self

    def memory_analysis(self) -> types.SimpleNamespace:
        return NO_DEVICE_MEMORY

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def seed_slice(tree: Any, index: int) -> Any:
    return jax.tree.map(lambda x: x[index], tree)


def seeds_on_host(evaluators: list[Callable[[Any], dict[str, float]]]) -> Callable[[Any, int], dict[str, Any]]:
    """evaluate(actor, epoch) for one seed's actor, or for K seeds' stacked actors (metrics then get a seed axis).

    The same seeded episodes are replayed every epoch (OGBench's rule draws starts from a seeded generator)."""
    if len(evaluators) == 1:
        return lambda actor, epoch: evaluators[0](actor)

    def evaluate(actor: Any, epoch: int) -> dict[str, Any]:
        results = [evaluate_one(seed_slice(actor, i)) for i, evaluate_one in enumerate(evaluators)]
        return {key: np.array([result[key] for result in results]) for key in results[0]}

    return evaluate


def ogbench_programs(name: str, agent: Agent, learners: tuple, seeds: list[int], episodes_per_task: int):
    """(evaluate, evaluate_learners or None, random_baseline) as host programs for OGBench env `name`."""
    def evaluators(of: Agent) -> list[Callable]:
        return [make_ogbench_evaluator(name, of.networks.deterministic_action, episodes_per_task, seed=seed)
                for seed in seeds]

    evaluate = HostProgram(seeds_on_host(evaluators(agent)))
    by_learner = {learner.name: seeds_on_host(evaluators(learner.agent)) for learner in learners}
    evaluate_learners = HostProgram(lambda actors, epoch: {name: fn(actors[name], epoch)
                                                           for name, fn in by_learner.items()}) if learners else None
    no_baseline = HostProgram(dict)  # OGBench reports success rates as they are; no random policy is run
    return evaluate, evaluate_learners, no_baseline
