"""`crl plan` output: a text report for people and a JSON document for scripts."""
from __future__ import annotations

import dataclasses
from typing import Any

from crl.plan.advice import TABLE_MARGIN, Verdict
from crl.plan.devices import GIB, MIB
from crl.plan.memory import COMPILED_PROGRAMS
from crl.plan.planner import Plan
from crl.run import format_duration

FLOPS_METHOD = ("XLA cost analysis of one SGD update compiled alone with unrolled blocks at 1 and 2 residual "
                "blocks per network, extrapolated linearly to the config's depth (a scan body would be counted "
                "once); remat's recomputed forward passes are included. Per epoch and run = per update x SGD "
                "updates; env stepping and acting are not counted, so the time is a lower bound")
PEAK_METHOD = ("peak = the largest of prefill and epoch (arguments + outputs - donated + temporaries) and "
               "the state + evaluate's outputs and temporaries; from XLA's memory analysis on the {backend} "
               "backend. Table devices fit when {margin:g} x peak <= usable memory")


def gib(num_bytes: float) -> str:
    return f"{num_bytes / GIB:.2f} GiB" if num_bytes >= GIB else f"{num_bytes / MIB:.1f} MiB"


def _flops(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def to_json(plan: Plan, verdicts: list[Verdict]) -> dict[str, Any]:
    """Every figure of the plan, bytes as integers, FLOPs as floats, times in seconds."""
    cfg = plan.cfg
    return {
        "config": {k: getattr(cfg, k) for k in ("env", "critic_depth", "critic_width", "actor_depth", "actor_width",
                                                "batch_size", "num_envs", "max_replay_size", "num_seeds",
                                                "remat", "compute_dtype", "matmul_precision")},
        "backend": plan.backend, "mesh_size": plan.mesh_size, "compile_s": plan.compile_s,
        "state_bytes": {**dataclasses.asdict(plan.state), "total": plan.state.total},
        "programs": {name: {**dataclasses.asdict(mem), "peak": mem.peak} for name, mem in plan.programs.items()},
        "peak_bytes": plan.peak_bytes,
        "steps": {"env_steps": plan.steps.total_env_steps, "prefill_env_steps": plan.steps.prefill_env_steps,
                  "env_steps_per_epoch": plan.steps.env_steps_per_epoch, "sgd_steps": plan.sgd_steps,
                  "sgd_steps_per_epoch": plan.sgd_steps_per_epoch},
        "flops": {"per_sgd_update": plan.flops_per_update, "per_epoch": plan.flops_per_epoch,
                  "total": plan.total_flops, "method": FLOPS_METHOD},
        "devices": [dataclasses.asdict(v) for v in verdicts],
        "peak_method": PEAK_METHOD.format(backend=plan.backend, margin=TABLE_MARGIN),
    }


def to_text(plan: Plan, verdicts: list[Verdict]) -> str:
    cfg, steps, state = plan.cfg, plan.steps, plan.state
    lines = [
        f"crl plan: env {cfg.env}, critic D{cfg.critic_depth}xW{cfg.critic_width}, actor D{cfg.actor_depth}x"
        f"W{cfg.actor_width}, batch {cfg.batch_size}, {cfg.num_envs} envs, {cfg.compute_dtype}, remat {cfg.remat}"
        f" ({plan.backend} backend, {plan.mesh_size} device(s); programs compiled in {plan.compile_s:.1f} s)",
        f"steps: {steps.total_env_steps:,} env steps (prefill {steps.prefill_env_steps:,}); {plan.sgd_steps:,} SGD "
        f"updates ({plan.sgd_steps_per_epoch:,} per epoch x {cfg.num_epochs} epochs)",
        f"state: params {gib(state.params)}, optimiser {gib(state.optimiser)}, replay buffer {gib(state.buffer)}, "
        f"env state {gib(state.env_state)}, other {gib(state.other)}; total {gib(state.total)}",
        f"{'program':<10}{'arguments':>12}{'outputs':>12}{'donated':>12}{'temporaries':>13}{'peak':>12}",
    ]
    for name in COMPILED_PROGRAMS:
        mem = plan.programs[name]
        lines.append(f"{name:<10}{gib(mem.argument):>12}{gib(mem.output):>12}{gib(mem.alias):>12}"
                     f"{gib(mem.temp):>13}{gib(mem.peak):>12}")
    lines.append(f"predicted peak of training: {gib(plan.peak_bytes)} per device")
    lines.append(f"FLOPs: {_flops(plan.flops_per_update)} per SGD update, {_flops(plan.flops_per_epoch)} per epoch, "
                 f"{_flops(plan.total_flops)} in the run")
    for v in verdicts:
        bound = "" if v.bound_s is None else f"; run time >= {format_duration(v.bound_s)} (bound from peak FLOP/s)"
        lines.append(f"{v.device}: {'fits' if v.fits else 'does NOT fit'} ({gib(v.peak_bytes)} of "
                     f"{gib(v.usable_bytes)} usable){bound}")
        lines += [f"    fits with {fix.setting}: peak {gib(fix.peak_bytes)} ({fix.how})" for fix in v.fixes]
        if not v.fits and not v.fixes:
            lines.append("    no single setting found that fits (or --no-fixes was given)")
    lines.append(f"method: {PEAK_METHOD.format(backend=plan.backend, margin=TABLE_MARGIN)}. FLOPs: {FLOPS_METHOD}.")
    return "\n".join(lines)
