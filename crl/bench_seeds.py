"""`crl bench seeds`: K seeds vmapped in one process against the same K seeds run one after another.

Both arms train the same config for the same epochs, side by side in one invocation (alternating per
depth). Reported: training time (the jitted epochs, evaluation excluded) and end-to-end wall time
(compile, prefill, evaluations and epochs), summed over the K sequential runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time

from crl._platform import enable_compilation_cache

DEFAULT_SEEDS = 4
DEFAULT_DEPTHS = (4, 16)
DEFAULT_EPOCHS = 3
DEFAULT_TRAIN_STEPS = 10
DEFAULT_CONFIG = "quickstart"  # a shipped preset: resolves from any working directory


def _timed_train(cfg) -> dict:
    """Train once; training seconds (sum of epoch times) and wall seconds (everything, compile included)."""
    from crl.train import train

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(dataclasses.replace(cfg, run_dir=tmp), print_fn=None)
        wall = time.perf_counter() - start
    return {"train_s": sum(r["time/epoch_s"] for r in result.history[1:]), "wall_s": wall,
            "compile_s": result.history[0]["time/compile_s"], "env_steps": result.trainer.plan.total_env_steps}


def measure(base, depth: int, num_seeds: int) -> dict:
    """One depth: K sequential single-seed runs, then one K-seed vmapped run."""
    cfg = dataclasses.replace(base, critic_depth=depth, actor_depth=depth, progress=False, tensorboard=False,
                              checkpoint_every=0, random_baseline=False)
    sequential = [_timed_train(dataclasses.replace(cfg, seed=seed)) for seed in range(num_seeds)]
    vmapped = _timed_train(dataclasses.replace(cfg, num_seeds=num_seeds))
    seq_train, seq_wall = sum(r["train_s"] for r in sequential), sum(r["wall_s"] for r in sequential)
    return {"depth": depth, "num_seeds": num_seeds, "sequential_train_s": seq_train, "sequential_wall_s": seq_wall,
            "vmapped_train_s": vmapped["train_s"], "vmapped_wall_s": vmapped["wall_s"],
            "train_speedup": seq_train / vmapped["train_s"], "wall_speedup": seq_wall / vmapped["wall_s"],
            "env_steps_per_s_sequential": num_seeds * sequential[0]["env_steps"] / seq_train,
            "env_steps_per_s_vmapped": num_seeds * vmapped["env_steps"] / vmapped["train_s"],
            "sequential_runs": sequential, "vmapped_run": vmapped}


def _table(rows: list[dict]) -> list[str]:
    table = ["| depth | seeds K | K sequential: train s | vmapped: train s | train speed-up | K sequential: wall s | "
             "vmapped: wall s | wall speed-up | env steps/s sequential | env steps/s vmapped |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['depth']} | {r['num_seeds']} | {r['sequential_train_s']:.1f} | {r['vmapped_train_s']:.1f} | "
                     f"{r['train_speedup']:.2f}x | {r['sequential_wall_s']:.1f} | {r['vmapped_wall_s']:.1f} | "
                     f"{r['wall_speedup']:.2f}x | {r['env_steps_per_s_sequential']:,.0f} | "
                     f"{r['env_steps_per_s_vmapped']:,.0f} |")
    return table


def bench_seeds(args: argparse.Namespace) -> int:
    from crl.bench import write_results
    from crl.config import ConfigError, load_yaml, plan_steps

    enable_compilation_cache()
    try:
        base = load_yaml(args.config)
    except ConfigError as err:
        raise SystemExit(f"crl bench seeds: {err}") from None
    from crl import envs

    plan = plan_steps(base, envs.spec(base.env).episode_length)
    steps = plan.prefill_env_steps + args.epochs * args.train_steps * plan.env_steps_per_train_step
    base = dataclasses.replace(base, num_epochs=args.epochs, total_env_steps=steps)
    notes = [f"Config {args.config} with {args.epochs} epochs of {args.train_steps} training steps; depth = critic "
             "and actor depth. train s = the jitted epochs (evaluation excluded), summed over the K sequential "
             "runs; wall s = each run end to end (compile, prefill, evaluations, epochs).",
             "Sequential runs after the first load their programs from JAX's persistent compilation cache "
             "(the programs do not depend on the seed), so their wall time has no compile cost to speak of.",
             "Both arms measured in one invocation, one depth after another, on the same machine."]
    rows = []
    for depth in args.depths:
        row = measure(base, depth, args.num_seeds)
        rows.append(row)
        print(f"depth {depth:>4}: {args.num_seeds} sequential {row['sequential_train_s']:.1f} s, vmapped "
              f"{row['vmapped_train_s']:.1f} s of training ({row['train_speedup']:.2f}x); wall "
              f"{row['sequential_wall_s']:.1f} s vs {row['vmapped_wall_s']:.1f} s", flush=True)
        write_results(args.out, f"{args.num_seeds} vmapped seeds against {args.num_seeds} sequential runs",
                      "crl " + " ".join(sys.argv[1:]), _table(rows), notes, rows, quiet=True)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


def add_parser(sub) -> None:
    from crl.bench import out_help  # crl.bench imports this module: import back only once both are loaded

    p = sub.add_parser("seeds", help="K vmapped seeds in one process against K sequential runs")
    p.add_argument("--config", default=DEFAULT_CONFIG, metavar="PRESET",
                   help="preset both arms train: a shipped preset's name or a YAML file (default: %(default)s)")
    p.add_argument("--num-seeds", type=int, default=DEFAULT_SEEDS, metavar="K",
                   help="seeds per arm (default: %(default)s)")
    p.add_argument("--depths", type=int, nargs="+", default=list(DEFAULT_DEPTHS),
                   help="critic and actor depths, one row each (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="epochs per run (default: %(default)s)")
    p.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS,
                   help="training steps per epoch (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="PATH.md", help=out_help("seeds"))
    p.set_defaults(run=bench_seeds)
