"""Command line: `crl train`, `crl envs`, `crl bench`."""
from __future__ import annotations

import argparse
import sys

import crl  # noqa: F401  (sets XLA flags before jax loads)
from crl import _platform

TRAIN_HELP = """Train a CRL agent. `--config FILE.yaml` loads a preset (see configs/); every field can then be
overridden, e.g. `crl train --config configs/quickstart.yaml --critic-depth 16 --seed 3`.
`--resume RUN_DIR` continues a run from its newest valid checkpoint with the run's own config (a run dir
that already holds checkpoints is resumed automatically). Exit codes: 0 done, 2 bad config,
3 non-finite values, 75 stopped by a signal after saving a checkpoint (requeue and resume)."""


def _train(argv: list[str]) -> int:
    import tyro

    from crl.config import ConfigError, TrainConfig, load_yaml

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--resume", default=None, metavar="RUN_DIR")
    known, rest = pre.parse_known_args(argv)
    try:
        if known.resume:
            default = run_config(known.resume)
        else:
            default = load_yaml(known.config) if known.config else TrainConfig()
    except ConfigError as err:
        print(f"crl train: {err}", file=sys.stderr)
        return 2
    cfg = tyro.cli(TrainConfig, default=default, args=rest,
                   prog="crl train [--config FILE.yaml | --resume RUN_DIR]", description=TRAIN_HELP)
    _platform.enable_compilation_cache()
    from crl.preemption import PREEMPT_EXIT_CODE, Preempted
    from crl.train import NonFiniteError, train

    try:
        train(cfg)
    except ConfigError as err:
        print(f"crl train: invalid config: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:
        print(f"crl train: {err}", file=sys.stderr)
        return 3
    except Preempted as err:
        print(f"crl train: {err}", file=sys.stderr)
        return PREEMPT_EXIT_CODE
    return 0


def run_config(run_dir: str):
    """The resolved config of an existing run (RUN_DIR/config.yaml), pointed at that run directory."""
    from pathlib import Path

    import yaml

    from crl.config import ConfigError, from_dict

    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"--resume {run_dir}: no config.yaml there; is it a crl run directory?")
    values = dict(yaml.safe_load(path.read_text())["config"])
    values["run_dir"] = str(run_dir)
    return from_dict(values, source=str(path))


def _envs(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="crl envs", description="List registered environments and their specs.")
    parser.parse_args(argv)
    from crl import envs

    header = ("id", "backend", "state", "goal", "action", "dt", "success r", "episode")
    rows = []
    for name in envs.list_envs():
        spec = envs.spec(name)
        rows.append((name, spec.backend, spec.state_dim, spec.goal_dim, spec.action_size, f"{spec.dt:g}",
                     f"{spec.success_radius:g}", spec.episode_length))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    return 0


def _bench(argv: list[str]) -> int:
    from crl import bench  # enables the compile cache only where compile time is not what is measured

    return bench.main(argv)


COMMANDS = {"train": _train, "envs": _envs, "bench": _bench}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        known = ", ".join(COMMANDS)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"crl: unknown command '{argv[0]}'; commands: {known}", file=sys.stderr)
            return 2
        print(f"usage: crl {{{'|'.join(COMMANDS)}}} [options]   (crl COMMAND --help for each)")
        return 0
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
