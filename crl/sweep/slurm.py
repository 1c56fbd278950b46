"""`crl sweep --runner slurm`: one submitit array task per run; a timed-out or preempted run is requeued."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import submitit

from crl.preemption import PREEMPT_EXIT_CODE
from crl.sweep.runs import LOG_FILE, POLL_S, execute, is_done, outcome, prepare, run_dir, summarise
from crl.sweep.spec import Run, SlurmResources

SUBMITIT_DIR = "slurm"  # SWEEP_DIR/slurm/: submitit pickles and each job's stdout/stderr (<job id>_0_log.out)
REQUEUE_MARGIN_S = 30  # of the pre-timeout warning, kept for submitit to requeue after the run has stopped
MIN_STOP_GRACE_S = 10
WAIT_POLL_S = 10.0  # how often --wait asks SLURM about the jobs
LOCAL_WAIT_POLL_S = 1.0
ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING")


def _requeue_signal() -> signal.Signals:
    return signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG.removeprefix("SIG")]


def _ignore_requeue_signal() -> None:
    """In the `crl train` child: leave submitit's pre-timeout signal to the job, which stops the child itself."""
    signal.signal(_requeue_signal(), signal.SIG_IGN)


def _stop(proc: subprocess.Popen | None, grace_s: float) -> None:
    """SIGTERM: `crl train` saves a checkpoint and exits 75; killed if it takes longer than grace_s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    deadline = time.monotonic() + grace_s
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if proc.poll() is None:
        proc.kill()


class TrainJob(submitit.helpers.Checkpointable):
    """One run's array task: `crl train` as a subprocess (the local runner's command, status.json and log)."""

    def __init__(self, run_dir: str, stop_grace_s: float):
        self.run_dir = run_dir
        self.stop_grace_s = stop_grace_s
        self._proc: subprocess.Popen | None = None

    def __call__(self) -> int:
        directory = Path(self.run_dir)
        if is_done(directory):  # requeued after it had finished
            return 0
        code = execute(directory, on_start=self._started, child_setup=_ignore_requeue_signal,
                       job_id=submitit.JobEnvironment().job_id)
        if code == PREEMPT_EXIT_CODE:
            # SLURM's SIGTERM (preemption, `scontrol requeue`, scancel) stopped the run after a checkpoint. Exit
            # without a result: submitit would take one, even an error, as the job's end, while SLURM may be
            # requeueing it (SystemExit is not caught by submitit's error handler, so no result is written).
            raise SystemExit(PREEMPT_EXIT_CODE)
        if code != 0:
            raise RuntimeError(f"crl train exited {code}; log: {directory / LOG_FILE}")
        return 0

    def _started(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Before the time limit: let the run save a checkpoint and stop, then requeue this same job."""
        _stop(self._proc, self.stop_grace_s)
        if self._proc is not None and self._proc.returncode == 0:
            # It finished its last epoch as the warning came: end the job as done rather than requeue it (submitit
            # would take a None from here as a failure; SystemExit leaves SLURM to record the exit code, 0).
            raise SystemExit(0)
        return super().checkpoint(*args, **kwargs)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_proc": None}  # a process handle does not pickle; the requeued job starts its own


def make_executor(folder: Path, resources: SlurmResources, cluster: str, name: str) -> submitit.Executor:
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster,
                                     slurm_max_num_timeout=resources.max_timeouts,
                                     local_max_num_timeout=resources.max_timeouts)
    executor.update_parameters(
        name=name, timeout_min=resources.time_min, gpus_per_node=resources.gpus_per_node or None,
        cpus_per_task=resources.cpus_per_task, mem_gb=resources.mem_gb, slurm_partition=resources.partition,
        slurm_array_parallelism=resources.array_parallelism, slurm_signal_delay_s=resources.signal_delay_s,
        slurm_account=resources.account, slurm_qos=resources.qos, slurm_constraint=resources.constraint)
    return executor


def still_active(jobs: dict[str, str], folder: Path, cluster: str) -> dict[str, str]:
    """run id -> SLURM state, for the runs whose job from an earlier launch is still queued or running."""
    if cluster != "slurm" or not jobs:
        return {}
    states = {rid: submitit.SlurmJob(folder=folder, job_id=jid).state for rid, jid in jobs.items()}
    return {rid: state for rid, state in states.items() if state.split()[0] in ACTIVE_STATES}


def submit(runs: list[Run], sweep_dir: Path, resources: SlurmResources, cluster: str, name: str) -> list[submitit.Job]:
    """Submit one array task per run (same order as runs)."""
    for run in runs:
        prepare(run, run_dir(sweep_dir, run.id))
    grace = max(resources.signal_delay_s - REQUEUE_MARGIN_S, MIN_STOP_GRACE_S)
    executor = make_executor(sweep_dir / SUBMITIT_DIR, resources, cluster, name)
    return executor.submit_array([TrainJob(str(run_dir(sweep_dir, run.id)), grace) for run in runs])


def wait(runs: list[Run], jobs: list[submitit.Job], sweep_dir: Path, cluster: str, skipped: int) -> int:
    """Report each run as its job ends, then the summary; 0 if all are done, 1 if any failed."""
    start = time.monotonic()
    run_of = {job.job_id: run for run, job in zip(runs, jobs)}
    poll = WAIT_POLL_S if cluster == "slurm" else LOCAL_WAIT_POLL_S
    for index, job in enumerate(submitit.helpers.as_completed(jobs, poll_frequency=poll), start=1):
        run = run_of[job.job_id]
        print(f"[{index}/{len(runs)}] {outcome(run.id, run_dir(sweep_dir, run.id))}", flush=True)
    return summarise(runs, sweep_dir, skipped, time.monotonic() - start)
