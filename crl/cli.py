"""Command line: `crl train|eval|envs|bench|sweep|report|viz|render|plot|plan`."""
from __future__ import annotations

import argparse
import sys

import crl  # noqa: F401  (sets XLA flags before jax loads)
from crl import _platform
from crl.cli_options import options_parser, parse_options

TRAIN_HELP = ("Train a CRL agent. Start from a preset (`--config`) or the defaults, then override any field below, "
              "e.g. `crl train --config quickstart --critic-depth 16 --seed 3`. `--resume RUN_DIR` "
              "continues a run from its newest valid checkpoint with the run's own config; field flags override it "
              "(`--config` with `--resume` is an error). A run dir that already holds checkpoints is resumed "
              "automatically. With `--distributed` the data mesh spans every process's devices and process 0 writes "
              "the logs. Exit codes: 0 done, 2 bad config or no restorable checkpoint, 3 non-finite values, 75 stopped "
              "by a signal after saving a checkpoint (requeue and resume).")


def _train_launch_parser() -> argparse.ArgumentParser:
    """The options read before the config fields (where the config comes from, how processes join)."""
    parser, launch = options_parser("crl train", "launch options")
    launch.add_argument("--resume", default=None, metavar="RUN_DIR",
                        help="continue RUN_DIR from its newest valid checkpoint with its own config.yaml; not with "
                             "--config (default: %(default)s)")
    launch.add_argument("--distributed", action="store_true",
                        help="join a multi-host run through jax.distributed; under SLURM the processes are detected, "
                             "elsewhere also give the three options below (default: %(default)s)")
    launch.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                        help="with --distributed outside SLURM: process 0's address (default: %(default)s)")
    launch.add_argument("--num-processes", type=int, default=None, metavar="N",
                        help="with --distributed outside SLURM: how many processes join (default: %(default)s)")
    launch.add_argument("--process-id", type=int, default=None, metavar="I",
                        help="with --distributed outside SLURM: this process's rank, 0 to N-1 (default: %(default)s)")
    return parser


def _train(argv: list[str]) -> int:
    import tyro

    from crl.config import ConfigError, TrainConfig, load_yaml

    known, rest, wants_help = parse_options(_train_launch_parser(), argv)
    if known.config and known.resume:
        print(f"crl train: --config and --resume together: a resumed run keeps the config it was started with "
              f"({known.resume}/config.yaml); drop --config and give changes as field flags, e.g. "
              f"crl train --resume {known.resume} --num-epochs 200", file=sys.stderr)
        return 2
    try:
        if known.distributed and not wants_help:
            from crl.distributed import initialize

            initialize(known.coordinator, known.num_processes, known.process_id)
        if known.resume:
            from crl.policy import load_run_config

            default = load_run_config(known.resume)
        else:
            default = load_yaml(known.config) if known.config else TrainConfig()
    except ConfigError as err:
        print(f"crl train: {err}", file=sys.stderr)
        return 2
    cfg = tyro.cli(TrainConfig, default=default, args=rest,
                   prog="crl train [--config PRESET | --resume RUN_DIR]", description=TRAIN_HELP)
    _platform.enable_compilation_cache()
    from crl.checkpoint import CheckpointRestoreError, NoValidCheckpointError
    from crl.preemption import PREEMPT_EXIT_CODE, Preempted
    from crl.train import NonFiniteError, train

    try:
        train(cfg)
    except ConfigError as err:
        print(f"crl train: invalid config: {err}", file=sys.stderr)
        return 2
    except (NoValidCheckpointError, CheckpointRestoreError) as err:
        print(f"crl train: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:
        print(f"crl train: {err}", file=sys.stderr)
        return 3
    except Preempted as err:
        print(f"crl train: {err}", file=sys.stderr)
        return PREEMPT_EXIT_CODE
    return 0


ENVS_HEADER = ("id", "backend", "state", "goal", "action", "dt", "success r", "episode")


def _catalog_rows() -> list[tuple]:
    """One row per built-in id, read from the written-down catalog (no jax, no simulator: instant)."""
    from crl.env_catalog import SPECS

    return [(name, s["backend"], s["state_dim"], len(s["goal_indices"]), s["action_size"], f"{s['dt']:g}",
             f"{s['success_radius']:g}", s["episode_length"]) for name, s in sorted(SPECS.items())]


def _envs(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="crl envs", description="List the built-in environments and their specs "
                                     "(state, goal and action sizes, time step, success radius, episode length).")
    parser.parse_args(argv)
    from crl.env_catalog import FAMILIES

    rows = _catalog_rows()
    widths = [max(len(str(r[i])) for r in [ENVS_HEADER, *rows]) for i in range(len(ENVS_HEADER))]
    for row in [ENVS_HEADER, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    for family in FAMILIES:
        print(f"family {family}: other layouts and stitching configs resolve by this pattern on `crl train --env`, "
              "e.g. the _gen_ ids above")
    return 0


def _eval_parser() -> argparse.ArgumentParser:
    """`crl eval`'s options, each with its default."""
    parser = argparse.ArgumentParser(prog="crl eval", description="Evaluate a run's saved actor (deterministic "
                                     "policy, fresh resets) and print the metrics as JSON.")
    parser.add_argument("run_dir", help="a run directory written by `crl train` (holds config.yaml and checkpoints/)")
    parser.add_argument("--checkpoint", type=int, default=None, metavar="EPOCH",
                        help="epoch of the checkpoint to evaluate (default: the newest valid)")
    parser.add_argument("--eval-env", default=None, metavar="ID",
                        help="environment id to evaluate on (default: the run's eval env)")
    parser.add_argument("--num-eval-envs", type=int, default=None, metavar="N",
                        help="parallel evaluation episodes (default: the run's num_eval_envs)")
    parser.add_argument("--seed", type=int, default=None,
                        help="evaluation key (default: the run's own key for that epoch, which reproduces its log)")
    parser.add_argument("--export-actor", default=None, metavar="DIR",
                        help="also write the actor params alone (msgpack + json) to DIR for inference "
                             "(default: not written)")
    parser.add_argument("--actor-seed", type=int, default=None, metavar="SEED",
                        help="with --export-actor on a multi-seed run: which of its seeds' actor "
                             "(default: the run's first seed)")
    return parser


def _eval(argv: list[str]) -> int:
    args = _eval_parser().parse_args(argv)
    _platform.enable_compilation_cache()
    import json

    from crl.checkpoint import CheckpointRestoreError, NoValidCheckpointError
    from crl.config import ConfigError
    from crl.policy import evaluate_checkpoint, export_actor

    overrides = {k: v for k, v in (("eval_env", args.eval_env), ("num_eval_envs", args.num_eval_envs)) if v}
    try:
        metrics = evaluate_checkpoint(args.run_dir, args.checkpoint, args.seed, **overrides)
        if args.export_actor:
            print(f"crl eval: actor written to {export_actor(args.run_dir, args.export_actor, args.checkpoint, args.actor_seed)}",
                  file=sys.stderr)
    except (ConfigError, NoValidCheckpointError, CheckpointRestoreError) as err:
        print(f"crl eval: {err}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=1))
    return 0


def _bench(argv: list[str]) -> int:
    from crl import bench  # enables the compile cache only where compile time is not what is measured

    return bench.main(argv)


def _sweep(argv: list[str]) -> int:
    from crl.sweep import main  # launches runs as subprocesses or SLURM jobs; jax is not needed here

    return main(argv)


def _report(argv: list[str]) -> int:
    from crl.report import main  # reads metrics.jsonl files; no jax

    return main(argv)


def _viz(argv: list[str]) -> int:
    from crl.viz.cli import viz_main

    return viz_main(argv)


def _render(argv: list[str]) -> int:
    from crl.viz.cli import render_main

    return render_main(argv)


def _plan(argv: list[str]) -> int:
    from crl.plan.cli import plan_main  # compiles the programs from abstract shapes; allocates no training state

    return plan_main(argv)


def _plot(argv: list[str]) -> int:
    from crl.viz.cli import plot_main  # reads metrics.jsonl files; no jax

    return plot_main(argv)


def _collect(argv: list[str]) -> int:
    from crl.offline.collect import main  # rolls out a policy and writes an OGBench-layout dataset

    return main(argv)


COMMANDS = {"train": _train, "eval": _eval, "envs": _envs, "bench": _bench, "sweep": _sweep, "report": _report,
            "viz": _viz, "render": _render, "plot": _plot, "plan": _plan, "collect": _collect}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        known = ", ".join(COMMANDS)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"crl: unknown command '{argv[0]}'; commands: {known}", file=sys.stderr)
            return 2
        print(f"usage: crl {{{'|'.join(COMMANDS)}}} [options]   (crl COMMAND --help for each)")
        return 0
    from crl.plugins import PluginError, load_plugins

    try:
        load_plugins()  # user algorithms and envs registered before any name is looked up
    except PluginError as err:
        print(f"crl: {err}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
