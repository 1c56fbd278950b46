"""A sweep's run directories: input.yaml, command.txt, status.json, and the `crl train` subprocess behind them."""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from crl.config import to_dict
from crl.preemption import PREEMPT_EXIT_CODE
from crl.sweep.spec import Run, Spec

RUNS_SUBDIR = "runs"
SWEEP_FILE = "sweep.yaml"
INPUT_FILE = "input.yaml"
COMMAND_FILE = "command.txt"
LOG_FILE = "train.log"
STATUS_FILE = "status.json"
RUNNING, DONE, FAILED = "running", "done", "failed"
POLL_S = 0.5  # how often a waiting runner checks its `crl train` child
STOPPED_REASON = "stopped by a signal after saving a checkpoint; relaunch the sweep to resume it"


def run_dir(sweep_dir: Path, run_id: str) -> Path:
    return sweep_dir / RUNS_SUBDIR / run_id


def train_command(directory: Path) -> list[str]:
    return [sys.executable, "-m", "crl.cli", "train", "--config", str(directory / INPUT_FILE),
            "--run-dir", str(directory)]


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_status(directory: Path) -> dict[str, Any] | None:
    path = directory / STATUS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def is_done(directory: Path) -> bool:
    status = read_status(directory)
    return bool(status) and status["state"] == DONE


def prepare(run: Run, directory: Path) -> None:
    """Write the run's full config (input.yaml) and the exact `crl train` command (command.txt)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = to_dict(dataclasses.replace(run.config, run_dir=str(directory)))
    (directory / INPUT_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    (directory / COMMAND_FILE).write_text(shlex.join(train_command(directory)) + "\n")


def config_changes(run: Run, directory: Path) -> list[str]:
    """'field: old -> new' where the run's saved input.yaml differs from what the spec gives now."""
    saved = yaml.safe_load((directory / INPUT_FILE).read_text()) if (directory / INPUT_FILE).exists() else {}
    new = to_dict(run.config)
    return [f"{name}: {saved.get(name)!r} -> {value!r}" for name, value in new.items()
            if name != "run_dir" and saved.get(name) != value]


def execute(directory: Path, env: dict[str, str] | None = None,
            on_start: Callable[[subprocess.Popen], None] | None = None,
            child_setup: Callable[[], None] | None = None, **extra: Any) -> int | None:
    """Run command.txt with its output appended to train.log; status.json follows it (extra keys added).

    Polls rather than wait(), so a signal handler in this process (slurm.TrainJob.checkpoint) can stop and
    reap the child. Returns its exit code (None if this process was interrupted while the child still ran).
    """
    previous = read_status(directory) or {}
    status = {"state": RUNNING, "exit_code": None, "started": _now(), "ended": None,
              "attempts": previous.get("attempts", 0) + 1, "log": LOG_FILE, **extra}
    _write_atomic(directory / STATUS_FILE, json.dumps(status, indent=1))
    command = shlex.split((directory / COMMAND_FILE).read_text())
    with open(directory / LOG_FILE, "a") as log:
        log.write(f"=== crl sweep: attempt {status['attempts']} at {status['started']}: {shlex.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=child_setup)
    if on_start is not None:
        on_start(proc)
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
    finally:
        code = proc.poll()
        status.update(state=DONE if code == 0 else FAILED, exit_code=code, ended=_now())
        if code == PREEMPT_EXIT_CODE:
            status["reason"] = STOPPED_REASON
        _write_atomic(directory / STATUS_FILE, json.dumps(status, indent=1))
    return code


def duration(seconds: float) -> str:
    """2m03s, or 1h02m03s."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _elapsed(status: dict[str, Any]) -> float:
    if not status.get("ended"):
        return 0.0
    started, ended = (datetime.datetime.fromisoformat(status[key]) for key in ("started", "ended"))
    return (ended - started).total_seconds()


def outcome(run_id: str, directory: Path) -> str:
    """`done ID in 2m03s` or `FAILED ID: exit 1 after 0m05s, log: PATH`, from the run's status.json."""
    status = read_status(directory) or {"state": "not started"}
    if status["state"] == DONE:
        return f"done {run_id} in {duration(_elapsed(status))}"
    if status["state"] == RUNNING:
        return f"FAILED {run_id}: no exit recorded (its runner was killed), log: {directory / LOG_FILE}"
    if status["state"] != FAILED:
        return f"FAILED {run_id}: never started (see the job's own log)"
    reason = f" ({status['reason']})" if status.get("reason") else ""
    return (f"FAILED {run_id}: exit {status['exit_code']} after {duration(_elapsed(status))}{reason}, "
            f"log: {directory / LOG_FILE}")


def split_done(runs: list[Run], sweep_dir: Path) -> list[Run]:
    """The runs still to do; prints a `skip` line for each run that status.json says is done."""
    todo = []
    for run in runs:
        directory = run_dir(sweep_dir, run.id)
        if not is_done(directory):
            todo.append(run)
            continue
        changes = config_changes(run, directory)
        note = (f"; its input.yaml differs from the spec now ({', '.join(changes)}): delete {directory} to re-run it"
                if changes else "")
        print(f"skip {run.id}: done before{note}")
    return todo


def summarise(runs: list[Run], sweep_dir: Path, skipped: int, elapsed_s: float) -> int:
    """Print done / failed / not started / skipped counts and the failed runs' logs; 0 if all are done, else 1."""
    states = {run.id: (read_status(run_dir(sweep_dir, run.id)) or {}).get("state") for run in runs}
    failed = [rid for rid, state in states.items() if state not in (DONE, None)]
    not_started = sum(state is None for state in states.values())
    unstarted = f", {not_started} not started" if not_started else ""
    print(f"crl sweep: {len(runs) - len(failed) - not_started} done, {len(failed)} failed{unstarted}, {skipped} "
          f"skipped (done before) in {duration(elapsed_s)}; results in {sweep_dir}")
    for rid in failed:
        print(f"  {outcome(rid, run_dir(sweep_dir, rid))}")
    if failed or not_started:
        print("relaunch the same command to run the rest (done runs are skipped, the others resume from their "
              "checkpoints)")
    return 1 if failed or not_started else 0


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the spec's text) as YAML literal blocks."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def write_sweep_file(spec: Spec, runs: list[Run], sweep_dir: Path, runner: str, seeds_per_run: int,
                     fixed: dict[str, Any], jobs: dict[str, str] | None = None) -> Path:
    """SWEEP_DIR/sweep.yaml: the spec (path and text), the varying fields and every run's id and overrides."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "name": spec.name,
        "spec": str(spec.path.resolve()),
        "spec_text": spec.text,
        "base": str(spec.base.resolve()) if spec.base else None,
        "overrides": {**spec.overrides, **fixed},
        "axes": spec.varying_fields,
        "seeds_per_run": seeds_per_run,
        "runner": runner,
        "written": _now(),
        "runs": [{"id": run.id, "overrides": run.overrides, "base": str(run.base.resolve()),
                  "dir": str(Path(RUNS_SUBDIR) / run.id)} for run in runs],
    }
    if jobs:
        record["jobs"] = jobs
    path = sweep_dir / SWEEP_FILE
    _write_atomic(path, yaml.dump(record, Dumper=_Dumper, sort_keys=False))
    return path


def read_sweep_file(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / SWEEP_FILE
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
