"""A run's plan: state bytes, compiled-program memory, peak, step counts and FLOPs, all from abstract shapes."""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax

from crl.config import StepPlan, TrainConfig
from crl.learner_spec import learner_config, parse_learners
from crl.plan.flops import sgd_update_flops
from crl.plan.memory import ProgramMemory, StateBytes, abstract_state, memories, peak_bytes, state_bytes
from crl.programs import Programs, make_programs


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a config costs: bytes (per device for programs and peak), steps and FLOPs (all seeds)."""

    cfg: TrainConfig
    steps: StepPlan
    episode_length: int
    mesh_size: int
    backend: str
    state: StateBytes
    programs: dict[str, ProgramMemory]
    peak_bytes: int
    compile_s: float
    flops_per_update: float | None = None  # one SGD update (collector and learners), summed over the run's seeds

    @property
    def sgd_steps_per_epoch(self) -> int:
        return self.steps.train_steps_per_epoch * self.cfg.sgd_steps_per_train_step

    @property
    def sgd_steps(self) -> int:
        return self.sgd_steps_per_epoch * self.cfg.num_epochs

    @property
    def flops_per_epoch(self) -> float | None:
        return None if self.flops_per_update is None else self.flops_per_update * self.sgd_steps_per_epoch

    @property
    def total_flops(self) -> float | None:
        return None if self.flops_per_update is None else self.flops_per_update * self.sgd_steps


def measured_plan(trainer, programs: Programs, abstract: Any) -> tuple[Programs, Plan]:
    """Compile the programs from `abstract` (their state's shapes and shardings: nothing allocated); return them
    and the plan (no FLOPs)."""
    t0 = time.perf_counter()
    compiled = programs.compile(abstract)
    measured = memories(compiled)
    return compiled, Plan(cfg=trainer.cfg, steps=trainer.plan, episode_length=trainer.spec.episode_length,
                          mesh_size=trainer.mesh.size, backend=jax.default_backend(), state=state_bytes(abstract),
                          programs=measured, peak_bytes=peak_bytes(measured), compile_s=time.perf_counter() - t0)


def make_plan(cfg: TrainConfig, with_flops: bool = True) -> Plan:
    """Plan `cfg` on the local backend without allocating its training state."""
    from crl.train import make_trainer  # crl.train imports this package for its memory check

    trainer = make_trainer(cfg)
    programs = make_programs(trainer)
    _, plan = measured_plan(trainer, programs, abstract_state(programs))
    if with_flops:
        learners = [learner_config(cfg, spec) for spec in parse_learners(cfg.learners)]  # they train on every batch too
        flops = sgd_update_flops(cfg) + sum(sgd_update_flops(learner) for learner in learners)
        plan = dataclasses.replace(plan, flops_per_update=flops * cfg.num_seeds)
    return plan


def replan_peak(cfg: TrainConfig) -> int:
    """Peak bytes of a changed config (memory only: no FLOP count)."""
    return make_plan(cfg, with_flops=False).peak_bytes
