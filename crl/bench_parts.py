"""`crl bench parts`: where one CRL SGD update's time goes, part by part, beside the matmul floor.

Each part is compiled and timed alone at the update's shapes (ant, width 256): the critic's loss and gradient,
the actor's, the contrastive head alone (B x B logits, logsumexp, their gradient w.r.t. phi and psi), and Adam over
the actor's and the critic's params. FLOPs come from XLA's cost analysis of the unrolled program (a scan body is
counted once), so each part also shows its time against the matmul floor measured in the same run.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

import jax

from crl.agents.base import apply_updates
from crl.bench import (ANT_SHAPES, FLOOR_WIDTH, add_update_options, matmul_floor_flops_per_s, median_call_seconds,
                       out_help, update_compiler_options, update_inputs, write_results)
from crl.config import TrainConfig
from crl.losses import critic_loss, make_losses, pairwise_energy
from crl.plan.flops import FLOPS_KEY

DEFAULT_DEPTHS = (4, 64)
HEAD_SEED = 1  # the head's random phi and psi
PARTS = ("update", "critic", "actor", "head", "adam")
PART_TEXT = {"update": "whole SGD update (actor, alpha, critic, Adam)", "critic": "critic loss + gradient",
             "actor": "actor loss + gradient (through the critic)", "head": "contrastive head: B x B logits, "
             "logsumexp, gradient w.r.t. phi and psi", "adam": "Adam on the actor's and the critic's params"}


def part_programs(depth: int, batch_size: int, unrolled: bool,
                  logits_form: str = TrainConfig.logits_form) -> dict[str, tuple[Callable, tuple]]:
    """{part: (function, arguments)} at `depth`, every argument built from fixed keys."""
    cfg = TrainConfig(critic_depth=depth, actor_depth=depth, batch_size=batch_size, unroll_blocks=unrolled,
                      logits_form=logits_form)
    agent, state, batch, key = update_inputs(cfg)
    losses = make_losses(agent.networks, cfg, ANT_SHAPES.action_size)
    phi, psi = jax.random.normal(jax.random.PRNGKey(HEAD_SEED), (2, batch_size, cfg.repr_dim))

    def head(phi, psi, goals):  # goals: the matmul form's exact ties, as in training
        return critic_loss(pairwise_energy(phi, psi, cfg.energy, cfg.logits_form, goals), cfg.contrastive_loss,
                           cfg.logsumexp_penalty)

    def adam(state):
        actor = apply_updates(agent.optimizers.actor, state.actor_params, state.actor_opt_state, state.actor_params)
        critic = apply_updates(agent.optimizers.critic, state.critic_params, state.critic_opt_state,
                               state.critic_params)
        return actor, critic

    return {
        "update": (agent.sgd_step, (state, (batch, key))),
        "critic": (jax.value_and_grad(losses.critic_loss_fn, has_aux=True), (state.critic_params, batch)),
        "actor": (jax.value_and_grad(losses.actor_loss_fn, has_aux=True),
                  (state.actor_params, state.critic_params, state.log_alpha, batch, key)),
        "head": (jax.value_and_grad(head, argnums=(0, 1), has_aux=True), (phi, psi, batch.goal)),
        "adam": (adam, (state,)),
    }


def unrolled_flops(fn: Callable, args: tuple) -> float:
    return float(jax.jit(fn).lower(*args).compile().cost_analysis()[FLOPS_KEY])


def bench_parts(args: argparse.Namespace) -> int:
    floor = matmul_floor_flops_per_s(args.batch, FLOOR_WIDTH, "float32", args.reps)
    print(f"matmul floor: {floor / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    for depth in args.depths:
        programs = part_programs(depth, args.batch, True, args.logits_form)
        flops = {part: unrolled_flops(fn, fargs) for part, (fn, fargs) in programs.items()}
        for unrolled in (False, True):
            if unrolled and depth > args.max_unrolled_depth:
                continue
            timed = programs if unrolled else part_programs(depth, args.batch, False, args.logits_form)
            for part, (fn, fargs) in timed.items():
                compiled = jax.jit(fn, compiler_options=update_compiler_options()).lower(*fargs).compile()
                seconds = median_call_seconds(compiled, fargs, args.reps)
                row = {"depth": depth, "mode": "unrolled" if unrolled else "scan", "part": part, "batch": args.batch,
                       "ms": 1e3 * seconds, "flops": flops[part], "floor_ms": 1e3 * flops[part] / floor}
                rows.append(row)
                print(f"depth {depth:>4} {row['mode']:>8} {part:>7}: {row['ms']:9.2f} ms, "
                      f"{row['flops'] / 1e9:7.3f} GFLOP, {row['ms'] / row['floor_ms']:5.2f}x floor", flush=True)
    table = ["| depth | mode | part | ms (median) | share of the update | GFLOP | floor ms | x floor |",
             "|---|---|---|---|---|---|---|---|"]
    whole = {(r["depth"], r["mode"]): r["ms"] for r in rows if r["part"] == "update"}
    for r in rows:
        table.append(f"| {r['depth']} | {r['mode']} | {r['part']} | {r['ms']:.2f} | "
                     f"{r['ms'] / whole[(r['depth'], r['mode'])]:.0%} | {r['flops'] / 1e9:.3f} | {r['floor_ms']:.2f} | "
                     f"{r['ms'] / r['floor_ms']:.2f}x |")
    notes = [f"Parts, each compiled and timed alone (median of {args.reps} after a warm-up), batch {args.batch}, "
             f"width 256, float32, logits_form {args.logits_form}, ant shapes: "
             + "; ".join(f"{p}: {PART_TEXT[p]}" for p in PARTS) + ".",
             "The parts overlap (the actor's gradient runs the critic encoders too) and the whole update fuses across "
             "them, so they need not sum to the update.",
             f"Matmul floor, measured in this run: {floor / 1e9:.1f} GFLOP/s ({args.batch}, {FLOOR_WIDTH}) @ "
             f"({FLOOR_WIDTH}, {FLOOR_WIDTH}); floor ms = a part's FLOPs (XLA's cost analysis of its unrolled "
             "program) at that rate."]
    write_results(args.out, "Where an SGD update's time goes", "crl " + " ".join(sys.argv[1:]), table, notes, rows)
    return 0


def add_parts_parser(sub) -> None:
    parts = sub.add_parser("parts", help="an SGD update's parts (critic, actor, head, Adam) against the matmul floor")
    add_update_options(parts, DEFAULT_DEPTHS)
    parts.add_argument("--out", default=None, metavar="PATH.md", help=out_help("parts"))
    parts.set_defaults(run=bench_parts)
