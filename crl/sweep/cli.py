"""`crl sweep SPEC.yaml`: expand a sweep spec and run it locally or on SLURM (docs/sweeps.md)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from crl.config import ConfigError
from crl.sweep.runs import is_done, read_sweep_file, run_dir, split_done, train_command, write_sweep_file
from crl.sweep.check import check_runs
from crl.sweep import lock
from crl.sweep.spec import Run, SlurmResources, Spec, expand, load_spec, typed_values

SWEEPS_ROOT = Path("runs") / "sweeps"
SLURM_CLUSTERS = ("slurm", "local")  # submitit executors: a SLURM cluster, or local processes (tests, a workstation)
DESCRIPTION = """Run a sweep of `crl train` runs described by SPEC.yaml (presets in configs/sweeps/, format in
docs/sweeps.md). Each run gets its own run dir SWEEP_DIR/runs/<run id> with input.yaml, command.txt, train.log and
status.json; every run's config is checked as `crl train` would before any run starts; relaunching the same command
skips the runs that are done and resumes the others from their checkpoints. Exit codes: 0 every run done, 1 some run
failed, 2 bad spec or arguments (or a run that cannot start, or another launch holding SWEEP_DIR), 130
interrupted. `crl sweep status SWEEP_DIR` lists the runs' states.
Example: crl sweep point_depth_cpu --jobs 2 --dry-run"""
STATUS_COMMAND = "status"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crl sweep", description=DESCRIPTION)
    parser.add_argument("spec", metavar="SPEC.yaml", help="the sweep spec: a path, or a shipped spec's name "
                        "(e.g. point_depth_cpu for configs/sweeps/point_depth_cpu.yaml)")
    parser.add_argument("--runner", choices=("local", "slurm"), default="local",
                        help="local: subprocesses on this machine (default); slurm: a submitit array job")
    parser.add_argument("--out", metavar="SWEEP_DIR", help=f"sweep directory (default: {SWEEPS_ROOT}/<spec name>)")
    parser.add_argument("--num-seeds", type=int, default=1, metavar="K",
                        help="pack K consecutive seeds of `seeds:` into one run (vmapped; run id seeds-0-2)")
    parser.add_argument("--only", metavar="REGEX", help="launch only the runs whose id matches (re.search)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="FIELD=VALUE",
                        help="extra fixed TrainConfig fields for every run, e.g. --set total_env_steps=20000")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and their commands; launch nothing")
    local = parser.add_argument_group("local runner")
    local.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="runs at a time (default: one per --devices entry, else 1)")
    local.add_argument("--devices", default="", metavar="0,1,...",
                       help="CUDA_VISIBLE_DEVICES given round-robin to the job slots (default: inherit)")
    slurm = parser.add_argument_group("slurm runner (defaults from the spec's `slurm:` block)")
    slurm.add_argument("--slurm-cluster", choices=SLURM_CLUSTERS, default="slurm",
                       help="submitit executor: slurm (default), or local processes to try the path without SLURM")
    slurm.add_argument("--wait", action="store_true", help="wait for the jobs and report each run as it ends")
    for field in dataclasses.fields(SlurmResources):
        default = field.default
        slurm.add_argument(f"--{field.name.replace('_', '-')}", dest=f"slurm_{field.name}", default=None,
                           type=str if default is None else type(default), metavar=field.name.upper(),
                           help=field.metadata["help"])
    return parser


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """['total_env_steps=20000'] -> {'total_env_steps': 20000} (values read as YAML)."""
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set total_env_steps=20000")
        values[name.strip().replace("-", "_")] = yaml.safe_load(text)
    return values


def _select(runs: list[Run], pattern: str | None) -> list[Run]:
    if pattern is None:
        return runs
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"--only {pattern!r} is not a regular expression: {err}") from None
    chosen = [run for run in runs if regex.search(run.id)]
    if not chosen:
        raise ConfigError(f"--only {pattern!r} matches none of the {len(runs)} run ids (e.g. {runs[0].id}); "
                          f"see them with --dry-run")
    return chosen


def _resources(spec: Spec, args: argparse.Namespace) -> SlurmResources:
    given = {field.name: getattr(args, f"slurm_{field.name}") for field in dataclasses.fields(SlurmResources)}
    return dataclasses.replace(spec.slurm, **{name: value for name, value in given.items() if value is not None})


def _dry_run(spec: Spec, runs: list[Run], chosen: list[Run], sweep_dir: Path) -> int:
    fields = ", ".join(spec.varying_fields) or "none"
    print(f"sweep {spec.name}: {len(chosen)} of {len(runs)} runs (axes: {fields}) -> {sweep_dir}")
    for run in chosen:
        directory = run_dir(sweep_dir, run.id)
        values = " ".join(f"{name}={value}" for name, value in run.overrides.items())
        print(f"{run.id}{' (done, skipped)' if is_done(directory) else ''}: {values}")
        print(f"  {shlex.join(train_command(directory))}")
    return 0


def _run_local(runs: list[Run], all_runs: list[Run], spec: Spec, sweep_dir: Path,
               args: argparse.Namespace, fixed: dict[str, Any]) -> int:
    from crl.sweep.local import run_local

    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    jobs = args.jobs if args.jobs is not None else max(len(devices), 1)
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be >= 1")
    write_sweep_file(spec, all_runs, sweep_dir, "local", args.num_seeds, fixed)
    todo = split_done(runs, sweep_dir)
    where = f" on devices {','.join(devices)}" if devices else ""
    print(f"crl sweep: {len(runs)} runs -> {sweep_dir}: {len(runs) - len(todo)} done before, {len(todo)} to run, "
          f"{jobs} at a time{where}", flush=True)
    return run_local(todo, sweep_dir, jobs, devices, skipped=len(runs) - len(todo))


def _run_slurm(runs: list[Run], all_runs: list[Run], spec: Spec, sweep_dir: Path,
               args: argparse.Namespace, fixed: dict[str, Any]) -> int:
    from crl.sweep import slurm

    resources = _resources(spec, args)
    previous = {rid: jid for rid, jid in read_sweep_file(sweep_dir).get("jobs", {}).items()
                if rid in {run.id for run in runs}}
    active = slurm.still_active(previous, sweep_dir / slurm.SUBMITIT_DIR, args.slurm_cluster)
    for rid, state in active.items():
        print(f"skip {rid}: its job {previous[rid]} is still {state}")
    todo = [run for run in split_done(runs, sweep_dir) if run.id not in active]
    write_sweep_file(spec, all_runs, sweep_dir, "slurm", args.num_seeds, fixed, jobs=previous)
    if not todo:
        print(f"crl sweep: nothing to submit; {len(runs) - len(active)} runs done, {len(active)} still in SLURM")
        return 0
    try:
        jobs = slurm.submit(todo, sweep_dir, resources, args.slurm_cluster, name=f"crl-{spec.name}")
    except RuntimeError as err:  # submitit: no sbatch/srun on this machine
        raise ConfigError(f"{err}; submit from a SLURM login node, or use --runner local "
                          f"(--slurm-cluster local tries the submitit path without SLURM)") from None
    job_ids = {**previous, **{run.id: job.job_id for run, job in zip(todo, jobs)}}
    write_sweep_file(spec, all_runs, sweep_dir, "slurm", args.num_seeds, fixed, jobs=job_ids)
    print(f"crl sweep: submitted {len(todo)} run(s) to {args.slurm_cluster} (job ids in {sweep_dir}/sweep.yaml, "
          f"first {jobs[0].job_id}); training logs: {sweep_dir}/runs/<run id>/train.log, job logs: "
          f"{sweep_dir}/{slurm.SUBMITIT_DIR}/", flush=True)
    if not args.wait:
        print("relaunch the same command to resubmit the runs that end unfinished (done ones are skipped)")
        return 0
    return slurm.wait(todo, jobs, sweep_dir, args.slurm_cluster, skipped=len(runs) - len(todo))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [STATUS_COMMAND]:
        from crl.sweep.status import main as status_main

        return status_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        fixed = typed_values(parse_assignments(args.set), "--set")
        spec = load_spec(args.spec, args.num_seeds)
        all_runs = expand(spec, fixed)
        runs = _select(all_runs, args.only)
        check_runs(runs, str(spec.path))  # before anything is written or launched (dry runs too)
        sweep_dir = Path(args.out) if args.out else SWEEPS_ROOT / spec.name
        if args.dry_run:
            return _dry_run(spec, all_runs, runs, sweep_dir)
        launch = _run_local if args.runner == "local" else _run_slurm
        with lock.hold(sweep_dir, shlex.join(["crl", "sweep", *argv])):
            return launch(runs, all_runs, spec, sweep_dir, args, fixed)
    except ConfigError as err:
        print(f"crl sweep: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `crl sweep ... --dry-run | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
