"""Does a plan fit a capacity, and which settings would make it fit (each with its resulting peak)."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

from crl.config import ConfigError, TrainConfig, validate
from crl.plan.devices import GPU_MEM_FRACTION, MEM_FRACTION_ENV, Device, peak_flops
from crl.plan.planner import Plan

TABLE_MARGIN = 1.10  # a table device fits when 1.1 x the CPU-compiled peak fits (GPU buffer assignment differs)
LOCAL_MARGIN = 1.0  # the local check uses the local compiler's own analysis
RAISED_MEM_FRACTION = 0.95  # what we suggest for XLA_PYTHON_CLIENT_MEM_FRACTION
ENVS_PROBE_DIVISOR = 2  # the num_envs fix interpolates between num_envs and num_envs / 2
# Config changes tried in order, each re-planned abstractly (only those the config does not already have).
CONFIG_FIXES: tuple[dict[str, object], ...] = (
    {"remat": True}, {"compute_dtype": "bfloat16"}, {"remat": True, "compute_dtype": "bfloat16"})


@dataclasses.dataclass(frozen=True)
class Fix:
    """A setting that brings the peak under the capacity, its resulting peak and how that figure was obtained."""

    setting: str
    peak_bytes: int
    how: str


def fits(peak: int, capacity: int, margin: float) -> bool:
    return peak * margin <= capacity


def _setting(changes: dict[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in changes.items())


class Fixer:
    """Finds fixes for one plan; re-plans (compiles) each changed config at most once, and only when asked."""

    def __init__(self, plan: Plan, replan: Callable[[TrainConfig], int]):
        self.plan, self.replan, self._peaks = plan, replan, {}

    def _peak(self, changes: dict[str, object]) -> int:
        key = tuple(sorted(changes.items()))
        if key not in self._peaks:
            self._peaks[key] = self.replan(dataclasses.replace(self.plan.cfg, **changes))
        return self._peaks[key]

    def _valid(self, **changes) -> bool:
        try:
            validate(dataclasses.replace(self.plan.cfg, **changes), episode_length=self.plan.episode_length)
        except ConfigError:
            return False
        return True

    def replay_fix(self, capacity: int, margin: float) -> Fix | None:
        """The largest max_replay_size that fits: the buffer is a program argument, linear in its rows."""
        cfg, plan = self.plan.cfg, self.plan
        per_row = plan.state.buffer / plan.mesh_size / cfg.max_replay_size
        rest = plan.peak_bytes - per_row * cfg.max_replay_size
        rows = math.floor((capacity / margin - rest) / per_row)
        if rows < cfg.min_replay_size or rows >= cfg.max_replay_size:
            return None
        return Fix(f"max_replay_size={rows}", int(rest + per_row * rows), "buffer bytes scaled by rows")

    def config_fixes(self, capacity: int, margin: float, first_only: bool) -> list[Fix]:
        found = []
        for changes in CONFIG_FIXES:
            if all(getattr(self.plan.cfg, k) == v for k, v in changes.items()):
                continue
            peak = self._peak(changes)
            if fits(peak, capacity, margin):
                found.append(Fix(_setting(changes), peak, "re-planned"))
                if first_only:
                    break
        return found

    def envs_fix(self, capacity: int, margin: float) -> Fix | None:
        """The most envs that fit, from the peak's line through num_envs and num_envs / 2 (both re-planned)."""
        cfg, step = self.plan.cfg, self.plan.mesh_size
        half = cfg.num_envs // ENVS_PROBE_DIVISOR // step * step
        if half < step or not self._valid(num_envs=half):
            return None
        slope = (self.plan.peak_bytes - self._peak({"num_envs": half})) / (cfg.num_envs - half)
        if slope <= 0:
            return None
        envs = math.floor((capacity / margin - self.plan.peak_bytes) / slope + cfg.num_envs) // step * step
        while envs >= step and not self._valid(num_envs=envs):
            envs -= step
        if envs < step or envs >= cfg.num_envs:
            return None
        return Fix(f"num_envs={envs}", int(self.plan.peak_bytes - slope * (cfg.num_envs - envs)),
                   "interpolated between re-plans at num_envs and num_envs/2")

    def fixes(self, capacity: int, margin: float, first_only: bool = False) -> list[Fix]:
        """Settings that fit, cheapest to find first; `first_only` stops at the first (no further compiles)."""
        found = []
        for find in (lambda: [self.replay_fix(capacity, margin)],
                     lambda: self.config_fixes(capacity, margin, first_only),
                     lambda: [self.envs_fix(capacity, margin)]):
            found += [fix for fix in find() if fix]
            if found and first_only:
                break
        return found


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One target device: fits or not, the run-time lower bound, and fixes when it does not fit."""

    device: str
    usable_bytes: int
    peak_bytes: int
    fits: bool
    bound_s: float | None
    fixes: list[Fix]


def judge(plan: Plan, device: Device, fixer: Fixer | None) -> Verdict:
    """Fit and lower bound for one device; fixes from `fixer` (None: do not search) when it does not fit."""
    usable = device.usable_bytes
    ok = fits(plan.peak_bytes, usable, TABLE_MARGIN)
    bound = None
    if plan.total_flops is not None:
        bound = plan.total_flops / (peak_flops(device, plan.cfg.compute_dtype, plan.cfg.matmul_precision)
                                    * plan.mesh_size)
    fixes = []
    if not ok and fixer:
        fixes = fixer.fixes(usable, TABLE_MARGIN)
        raised = int(device.memory_bytes * RAISED_MEM_FRACTION)
        if device.mem_fraction <= GPU_MEM_FRACTION and fits(plan.peak_bytes, raised, TABLE_MARGIN):
            fixes.insert(0, Fix(f"{MEM_FRACTION_ENV}={RAISED_MEM_FRACTION}", plan.peak_bytes,
                                "same peak, larger allocator pool"))
    return Verdict(device.name, usable, plan.peak_bytes, ok, bound, fixes)
