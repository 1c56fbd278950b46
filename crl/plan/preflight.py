"""`crl train`'s memory check: compile the programs from abstract shapes, then refuse (accelerator) or warn (CPU)
before the training state is allocated. The compiled programs are returned, so training compiles nothing twice."""
from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Callable

import jax

from crl.config import ConfigError
from crl.plan.advice import LOCAL_MARGIN, Fixer, fits
from crl.plan.planner import measured_plan, replan_peak
from crl.plan.report import gib
from crl.programs import Programs

CPU = "cpu"
BYTES_LIMIT = "bytes_limit"  # key of jax's Device.memory_stats(): what the allocator may hand out


@dataclasses.dataclass(frozen=True)
class Capacity:
    platform: str
    bytes: int


def local_capacity() -> Capacity:
    """The first local device's memory: the allocator limit on an accelerator, physical RAM on CPU."""
    device = jax.local_devices()[0]
    if device.platform == CPU:
        return Capacity(CPU, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return Capacity(device.platform, int(device.memory_stats()[BYTES_LIMIT]))


def check_memory(trainer, programs: Programs, abstract: Any, say: Callable[[str], None],
                 probe: Callable[[], Capacity] | None = None) -> Programs:
    """Compiled programs for `trainer` if their peak fits the local device; ConfigError (naming a fix) if not."""
    compiled, plan = measured_plan(trainer, programs, abstract)
    capacity = (probe or local_capacity)()
    epoch = plan.programs["epoch"]
    figures = (f"predicted peak {gib(plan.peak_bytes)} (epoch program: {gib(epoch.argument)} state + "
               f"{gib(epoch.temp)} temporaries) vs {gib(capacity.bytes)} on {capacity.platform}")
    if fits(plan.peak_bytes, capacity.bytes, LOCAL_MARGIN):
        say(f"crl: memory: {figures}")
        return compiled
    if capacity.platform == CPU:
        warnings.warn(f"crl train: this run may not fit in memory: {figures}; see `crl plan`", stacklevel=2)
        return compiled
    fixes = Fixer(plan, replan_peak).fixes(capacity.bytes, LOCAL_MARGIN, first_only=True)
    fix = (f"set {fixes[0].setting} (peak {gib(fixes[0].peak_bytes)})" if fixes else
           "no single setting fits: lower critic_depth / batch_size, or add devices (num_devices)")
    raise ConfigError(f"the run does not fit this {capacity.platform}: {figures}. To fit, {fix}; "
                      f"`crl plan` lists every option")
