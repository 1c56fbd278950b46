"""crl's cluster path against a real SLURM scheduler (launch/local_slurm/up.sh brings one up on this machine).

Marked `slurm`: in the default run, skipped with the reason printed where no SLURM answers; an error instead
where CRL_REQUIRE_SLURM=1 (CI sets it once its cluster is up).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from crl.sweep.slurm import ACTIVE_STATES
from slurm_cluster import slurm_problem
from test_scale import assert_same_metrics  # 2 processes = 1 within float reassociation
from tiny_run import TINY_RUN, comparable, read_metrics, tiny_config, write_tiny_yaml

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
MULTINODE_RECIPE = REPO / "launch" / "slurm_multinode.sbatch"
REQUIRE_VAR = "CRL_REQUIRE_SLURM"
TINY = {**TINY_RUN, "random_baseline": False, "checkpoint_every": 1}
# slurmctld checks time limits every 30 s and sends the warning at the first check from which it would be due
# before the next one: for a 2-minute job with a 60 s warning, 30-60 s after the job starts (and up to 30 s
# early). TINY's epochs, paced to over 1 s each by the test plugin (sleeping, so the cores stay with the other
# tests), make a run that is still training then and ends in a later job.
LONG_EPOCHS = 55
LONG = {"num_epochs": LONG_EPOCHS,
        "total_env_steps": LONG_EPOCHS * TINY_RUN["total_env_steps"] // TINY_RUN["num_epochs"]}
PACE = {"CRL_PLUGINS": "slurm_test_plugin", "CRL_TEST_EPOCH_PACE_S": "1.0"}
RESOURCES = {"time_min": 10, "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 2, "array_parallelism": 2}
SIGNAL_RESOURCES = {**RESOURCES, "time_min": 2, "signal_delay_s": 60, "max_timeouts": 5}
SWEEP_TIMEOUT_S = 420
POLL_S = 0.5
SETTLE_S = 60  # a finished run's job reaching its final sacct state


@pytest.fixture(scope="module")
def cluster():
    problem = slurm_problem()
    if problem is None:
        return
    message = f"no SLURM to test against: {problem}; start one with `sudo launch/local_slurm/up.sh`"
    if os.environ.get(REQUIRE_VAR) == "1":
        pytest.fail(f"{message} ({REQUIRE_VAR}=1: this machine's cluster was brought up and should answer)")
    pytest.skip(message)


@pytest.fixture
def submitted():
    """Job ids a test submitted; whatever is still queued or running when it ends is cancelled."""
    ids: list[str] = []
    yield ids
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


def job_env(**extra: str) -> dict[str, str]:
    """What a job inherits from its submitter (sbatch exports it): crl on PATH, tests/ importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("CRL_PLUGINS", "CRL_TEST_FAIL_RUN", "CRL_TEST_EPOCH_PACE_S")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return {**env, **extra}


def crl(*args: str, env: dict[str, str], wait: bool = True):
    command = [sys.executable, "-m", "crl.cli", *args]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=SWEEP_TIMEOUT_S)
    return proc.returncode, output


def wait_until(predicate, what: str, timeout_s: float = SWEEP_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def write_spec(folder: Path, slurm: dict, seeds: int = 1, **base_changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(yaml.safe_dump({**TINY, **base_changes}))
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "base": "tiny.yaml", "seeds": seeds, "slurm": slurm}))
    return path


def sweep_jobs(out: Path) -> dict[str, str]:
    path = out / "sweep.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("jobs", {}) if path.exists() else {}


def sacct_attempts(job_ids) -> dict[str, list[dict[str, str]]]:
    """job id -> every attempt (a requeued job has several, the earlier ones REQUEUED), oldest first."""
    fields = ("JobID", "State", "Start", "End")
    done = subprocess.run(["sacct", "-n", "-P", "-X", "--duplicates", f"--format={','.join(fields)}", "-j",
                           ",".join(job_ids)], capture_output=True, text=True, timeout=30, check=True)
    attempts: dict[str, list[dict[str, str]]] = {}
    for line in done.stdout.splitlines():
        row = dict(zip(fields, line.split("|")))
        attempts.setdefault(row["JobID"], []).append(row)
    return attempts


def final_states(job_ids) -> dict[str, str]:
    return {job: rows[-1]["State"].split()[0] for job, rows in sacct_attempts(job_ids).items()}


def ended(job: str) -> str | None:
    """The job's final sacct state once it has one, else None."""
    state = final_states([job]).get(job)
    return None if state in (None, *ACTIVE_STATES) else state


def settled_attempts(job_ids) -> dict[str, list[dict[str, str]]]:
    """sacct_attempts once every job has its final state: a run's own status can read done while SLURM still lists
    its job as running (the job's process exiting, accounting catching up)."""
    job_ids = list(job_ids)
    wait_until(lambda: all(ended(job) for job in job_ids), "sacct's final states of the jobs", timeout_s=SETTLE_S)
    return sacct_attempts(job_ids)


def max_running_at_once(rows: list[dict[str, str]]) -> int:
    spans = [(datetime.datetime.fromisoformat(r["Start"]), datetime.datetime.fromisoformat(r["End"])) for r in rows]
    return max(sum(start <= t < end for start, end in spans) for t, _ in spans)


def run_status(out: Path, run_id: str) -> dict:
    return yaml.safe_load((out / "runs" / run_id / "status.json").read_text())


def status_lines(out: Path) -> tuple[int, dict[str, list[str]]]:
    """`crl sweep status`'s exit code and each run's columns (state, job, epochs, metric, ...)."""
    done = crl("sweep", "status", str(out), env=job_env())
    rows = {}
    for line in done.stdout.splitlines()[1:-1]:
        parts = line.split()
        rows[parts[0]] = parts[1:]
    return done.returncode, rows


def test_array_sweep_throttled_crash_isolated_relaunch_resubmits_only_the_failed_run(cluster, submitted, tmp_path):
    spec = write_spec(tmp_path, RESOURCES, seeds=3)
    out = tmp_path / "sweep"
    launch = ["sweep", str(spec), "--runner", "slurm", "--out", str(out)]
    first = crl(*launch, "--wait", env=job_env(CRL_PLUGINS="slurm_test_plugin", CRL_TEST_FAIL_RUN="seed-1"),
                wait=False)
    jobs = wait_until(lambda: sweep_jobs(out), "the array job's ids in sweep.yaml")
    submitted.extend(jobs.values())
    array_id = jobs["seed-0"].split("_")[0]
    shown = subprocess.run(["scontrol", "show", "job", array_id], capture_output=True, text=True, timeout=30).stdout
    assert "ArrayTaskThrottle=2" in shown, shown  # SLURM holds the sweep's array_parallelism

    # A second launch into the same sweep directory while the first holds it refuses and changes nothing.
    second = crl(*launch, env=job_env())
    assert first.poll() is None, "the first launch ended before the second could be tried"
    assert second.returncode == 2 and "in use by another `crl sweep`" in second.stderr, second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert sweep_jobs(out) == jobs

    code, output = finish(first)
    assert code == 1 and "FAILED seed-1" in output, output
    runs = {rid: run_status(out, rid) for rid in jobs}
    assert {rid: s["state"] for rid, s in runs.items()} == {"seed-0": "done", "seed-1": "failed", "seed-2": "done"}
    assert {rid: s["job_id"] for rid, s in runs.items()} == jobs
    assert "injected failure" in (out / "runs" / "seed-1" / "train.log").read_text()
    attempts = settled_attempts(jobs.values())
    assert {rid: attempts[job][-1]["State"] for rid, job in jobs.items()} == {
        "seed-0": "COMPLETED", "seed-1": "FAILED", "seed-2": "COMPLETED"}
    assert max_running_at_once([rows[-1] for rows in attempts.values()]) <= 2

    code, rows = status_lines(out)
    assert code == 1, rows
    assert {rid: row[:2] for rid, row in rows.items()} == {rid: [runs[rid]["state"], job] for rid, job in jobs.items()}
    assert rows["seed-0"][2] == str(TINY["num_epochs"] + 1)  # evaluation records: epoch 0 and each epoch

    # Relaunched without the failure: only seed-1 is submitted again, as a new job; the done runs are kept.
    again = crl(*launch, "--wait", env=job_env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skip seed-0: done before" in again.stdout and "skip seed-2: done before" in again.stdout
    jobs_after = sweep_jobs(out)
    submitted.extend(jobs_after.values())
    assert {rid: jobs_after[rid] for rid in ("seed-0", "seed-2")} == {rid: jobs[rid] for rid in ("seed-0", "seed-2")}
    assert jobs_after["seed-1"] != jobs["seed-1"]
    settled_attempts([jobs_after["seed-1"]])
    assert final_states([jobs_after["seed-1"]]) == {jobs_after["seed-1"]: "COMPLETED"}
    assert run_status(out, "seed-1")["attempts"] == 2
    code, rows = status_lines(out)
    assert code == 0 and {row[0] for row in rows.values()} == {"done"}, rows

    report = crl("report", str(out), env=job_env())
    assert report.returncode == 0, report.stderr
    assert "| 3 |" in (out / "report.md").read_text()  # one cell over the 3 seeds


def test_pre_timeout_signal_and_scontrol_requeue_resume_to_the_uninterrupted_run(cluster, submitted, tmp_path):
    from crl.config import load_yaml
    from crl.train import train

    launches = {name: crl("sweep", str(write_spec(tmp_path / name, resources, **LONG)), "--runner", "slurm",
                          "--out", str(tmp_path / name / "out"), "--wait", env=job_env(**PACE), wait=False)
                for name, resources in (("signal", SIGNAL_RESOURCES), ("requeue", RESOURCES))}
    outs = {name: tmp_path / name / "out" for name in launches}
    jobs = {name: wait_until(lambda: sweep_jobs(out).get("seed-0"), f"{name}'s job id") for name, out in outs.items()}
    submitted.extend(jobs.values())

    # Preempted by hand: `scontrol requeue` once the run has checkpointed a few epochs.
    requeue_metrics = outs["requeue"] / "runs" / "seed-0" / "metrics.jsonl"
    wait_until(lambda: requeue_metrics.exists() and len(requeue_metrics.read_text().splitlines()) >= 3,
               "the requeue run's third epoch")
    subprocess.run(["scontrol", "requeue", jobs["requeue"]], check=True, timeout=30)
    wait_until(lambda: status_lines(outs["requeue"])[1].get("seed-0", [""])[0] == "requeued",
               "`crl sweep status` to show the run requeued", timeout_s=60)

    # The uninterrupted run, in this process while SLURM works.
    config = load_yaml(outs["signal"] / "runs" / "seed-0" / "input.yaml")
    reference = train(dataclasses.replace(config, run_dir=str(tmp_path / "reference")), print_fn=None).history

    for name, launch in launches.items():
        code, output = finish(launch)
        assert code == 0 and "done seed-0" in output, f"{name}: {output}"
        run_dir = outs[name] / "runs" / "seed-0"
        states = [row["State"].split()[0] for row in settled_attempts([jobs[name]])[jobs[name]]]
        assert states[-1] == "COMPLETED" and len(states) >= 2 and set(states[:-1]) == {"REQUEUED"}, (name, states)
        assert run_status(outs[name], "seed-0")["attempts"] == len(states)
        assert comparable(read_metrics(run_dir / "metrics.jsonl")) == comparable(reference), name
        assert "stopped by SIGTERM" in (run_dir / "train.log").read_text()
    job_logs = "".join(p.read_text() for p in (outs["signal"] / "slurm").glob("*_log.*"))
    assert "Caught signal SIGUSR2" in job_logs and "Requeued job" in job_logs  # submitit's pre-timeout path


def test_multinode_recipe_runs_two_srun_tasks_through_slurm_detected_jax_distributed(cluster, submitted, tmp_path):
    from crl.train import train

    config = write_tiny_yaml(tmp_path / "tiny.yaml", seed=0, num_devices=0, progress=True)
    run_dir = tmp_path / "run"
    submit = subprocess.run(
        ["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1",
         "--mem=2G", "--time=10", f"--output={tmp_path}/%x-%j.out", str(MULTINODE_RECIPE), str(config)],
        env=job_env(RUN_DIR=str(run_dir)), capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert submit.returncode == 0, submit.stderr
    job = submit.stdout.strip().split(";")[0]
    submitted.append(job)
    reference = train(tiny_config(seed=0, run_dir=str(tmp_path / "reference")), print_fn=None).history
    state = wait_until(lambda: ended(job), "the multinode job to end")
    output = "".join(p.read_text() for p in tmp_path.glob("crl-multinode-*.out"))
    assert state == "COMPLETED", output[-3000:]
    assert "data mesh of 2 devices over 2 process(es)" in output  # both srun tasks joined, detected from SLURM
    assert_same_metrics(read_metrics(run_dir / "metrics.jsonl"), reference)
