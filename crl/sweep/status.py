"""`crl sweep status SWEEP_DIR`: one line per run from its run directory and, where SLURM answers, `sacct`."""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from crl.preemption import PREEMPT_EXIT_CODE
from crl.report import DEFAULT_METRIC as HEADLINE_METRIC, read_metrics  # time at goal
from crl.sweep.runs import DONE, FAILED, RUNNING, read_status, read_sweep_file, run_dir

PENDING, REQUEUED, STOPPED = "pending", "requeued", "stopped"
STATES = (PENDING, RUNNING, REQUEUED, STOPPED, DONE, FAILED)  # the order of the summary line
SACCT_TIMEOUT_S = 30
# sacct's states (the first word of its State column) as a run's state; a job in none of these is still live
SACCT_STATES = {"PENDING": PENDING, "CONFIGURING": RUNNING, "RUNNING": RUNNING, "COMPLETING": RUNNING,
                "SUSPENDED": RUNNING, "RESIZING": RUNNING, "REQUEUED": REQUEUED, "REQUEUE_HOLD": REQUEUED,
                "REQUEUE_FED": REQUEUED, "COMPLETED": DONE, "FAILED": FAILED, "CANCELLED": FAILED,
                "TIMEOUT": FAILED, "OUT_OF_MEMORY": FAILED, "NODE_FAIL": FAILED, "BOOT_FAIL": FAILED,
                "DEADLINE": FAILED, "PREEMPTED": REQUEUED}
USAGE_ERROR = 2


@dataclasses.dataclass(frozen=True)
class RunStatus:
    run_id: str
    state: str
    job: str  # SLURM job id ('-' for local runs)
    epochs: int | None  # evaluation records written (epoch 0 included); None before the first
    metric: float | None  # the last HEADLINE_METRIC value, mean over packed seeds
    note: str = ""


def sacct_states(job_ids: list[str]) -> dict[str, tuple[str, int]] | None:
    """job id -> (its latest sacct State, times it was requeued); None where SLURM is not here or does not answer.

    `--duplicates` lists every attempt of a requeued job in order (the earlier ones REQUEUED); without it sacct
    shows the latest alone.
    """
    if not job_ids or shutil.which("sacct") is None:
        return None
    command = ["sacct", "--noheader", "--parsable2", "--allocations", "--duplicates", "--format=JobID,State",
               "--jobs", ",".join(job_ids)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SACCT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    attempts: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        job, sep, state = line.partition("|")
        if sep and state:
            attempts.setdefault(job, []).append(state.split()[0])
    return {job: (states[-1], len(states) - 1) for job, states in attempts.items()}


def _records(directory: Path) -> list[list[dict[str, Any]]]:
    """Each seed's metrics.jsonl records (one list per packed seed), read as `crl report` reads them."""
    files = sorted(directory.glob("seeds/*/metrics.jsonl")) or [directory / "metrics.jsonl"]
    return [read_metrics(path, problems=[]) for path in files if path.exists()]


def progress(directory: Path) -> tuple[int | None, float | None]:
    """(evaluation records written, last headline metric averaged over the packed seeds)."""
    seeds = [records for records in _records(directory) if records]
    if not seeds:
        return None, None
    finals = [next((r[HEADLINE_METRIC] for r in reversed(records) if HEADLINE_METRIC in r), None)
              for records in seeds]
    finals = [value for value in finals if value is not None]
    return min(len(records) for records in seeds), (sum(finals) / len(finals) if finals else None)


def run_state(status: dict[str, Any] | None, slurm: tuple[str, int] | None) -> tuple[str, str]:
    """(state, note) from the run's status.json and SLURM's word on its job (None if none was asked or known)."""
    local = PENDING if status is None else status["state"]
    if status is not None and local == FAILED and status.get("exit_code") == PREEMPT_EXIT_CODE:
        local = STOPPED
    if slurm is None:
        return local, ""
    sacct_state, restarts = slurm
    state = SACCT_STATES.get(sacct_state, RUNNING)
    if state == PENDING and (restarts > 0 or local == STOPPED):
        return REQUEUED, f"restart {restarts}" if restarts else ""
    if state in (PENDING, RUNNING, REQUEUED):
        return state, ""
    if state == DONE and local != DONE:  # the job ended well but the run did not (killed before it wrote)
        return (local if local in (STOPPED, FAILED) else FAILED), f"job {sacct_state}, run {local}"
    if state == FAILED and local == DONE:  # e.g. killed after the run had finished
        return DONE, f"job {sacct_state}"
    if state == FAILED:
        return FAILED, f"job {sacct_state}"
    return local, ""


def collect(sweep_dir: Path) -> tuple[list[RunStatus], bool]:
    """Every run of the sweep, in the spec's order, and whether SLURM was asked and answered."""
    record = read_sweep_file(sweep_dir)
    if not record:
        raise FileNotFoundError(f"{sweep_dir} has no sweep.yaml: not a sweep directory (crl sweep SPEC --out DIR "
                                f"writes one)")
    jobs = {rid: str(jid) for rid, jid in (record.get("jobs") or {}).items()}
    slurm = sacct_states(sorted(set(jobs.values()))) if jobs else None
    rows = []
    for entry in record["runs"]:
        rid = entry["id"]
        directory = run_dir(sweep_dir, rid)
        job = jobs.get(rid)
        state, note = run_state(read_status(directory), None if slurm is None or job is None else slurm.get(job))
        epochs, metric = progress(directory)
        rows.append(RunStatus(rid, state, job or "-", epochs, metric, note))
    return rows, slurm is not None


def _line(row: RunStatus, width: int) -> str:
    epochs = "-" if row.epochs is None else str(row.epochs)
    metric = "-" if row.metric is None else f"{row.metric:.3g}"
    note = f"  ({row.note})" if row.note else ""
    return f"{row.run_id:<{width}}  {row.state:<8}  {row.job:>10}  {epochs:>6}  {metric:>8}{note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="crl sweep status", description="One line per run of a sweep: state (pending, running, requeued, "
        "stopped, done, failed), SLURM job id, evaluation records written and the last time at goal "
        f"({HEADLINE_METRIC}), from the run directories and, where SLURM answers, sacct. Exit codes: 0 no run "
        "failed, 1 some run failed, 2 not a sweep directory.")
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR")
    args = parser.parse_args(argv)
    try:
        rows, asked_slurm = collect(Path(args.sweep_dir))
    except FileNotFoundError as err:
        print(f"crl sweep status: {err}", file=sys.stderr)
        return USAGE_ERROR
    width = max([len(row.run_id) for row in rows] + [len("run")])
    print(f"{'run':<{width}}  {'state':<8}  {'job':>10}  {'epochs':>6}  {'success':>8}")
    for row in rows:
        print(_line(row, width))
    counts = {state: sum(row.state == state for row in rows) for state in STATES}
    source = "run dirs + sacct" if asked_slurm else "run dirs"
    print(f"{len(rows)} runs: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n) + f" (from {source})")
    return 1 if counts[FAILED] else 0
