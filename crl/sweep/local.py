"""`crl sweep --runner local`: each run a `crl train` subprocess, N at a time, each slot on its own device."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from crl.sweep.runs import execute, outcome, prepare, run_dir, summarise
from crl.sweep.spec import Run

INTERRUPTED_EXIT = 130  # 128 + SIGINT, the shell's code for a Ctrl-C'd command
DEVICES_ENV = "CUDA_VISIBLE_DEVICES"


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class LocalPool:
    """Runs `crl train` children from a thread pool; a free slot hands its device to the next run."""

    def __init__(self, sweep_dir: Path, jobs: int, devices: list[str], total: int):
        self.sweep_dir = sweep_dir
        self.total = total
        self.finished = 0
        self.slots: queue.Queue[str | None] = queue.Queue()
        for slot in range(jobs):
            self.slots.put(devices[slot % len(devices)] if devices else None)
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def _started(self, run_id: str, proc: subprocess.Popen) -> None:
        with self.lock:
            self.children[run_id] = proc
            if self.stopping.is_set():  # started while a Ctrl-C was being handled
                proc.terminate()

    def run(self, run: Run) -> int | None:
        if self.stopping.is_set():
            return None
        device = self.slots.get()
        try:
            env = dict(os.environ)
            if device is not None:
                env[DEVICES_ENV] = device
            where = f" on device {device}" if device is not None else ""
            self._say(f"start {run.id}{where}")
            code = execute(run_dir(self.sweep_dir, run.id), env=env, on_start=lambda proc: self._started(run.id, proc))
            self._report(run)
            return code
        finally:
            with self.lock:
                self.children.pop(run.id, None)
            self.slots.put(device)

    def _report(self, run: Run) -> None:
        """`[2/3] done ID in 0m41s`, printed before the run's slot is handed on, so it precedes the next `start`."""
        with self.lock:
            self.finished += 1
            print(f"[{self.finished}/{self.total}] {outcome(run.id, run_dir(self.sweep_dir, run.id))}", flush=True)

    def _say(self, line: str) -> None:
        """One progress line, whole (worker threads print them)."""
        with self.lock:
            print(line, flush=True)

    def signal_children(self, sig: int) -> int:
        with self.lock:
            for proc in self.children.values():
                proc.send_signal(sig)
            return len(self.children)


def run_local(runs: list[Run], sweep_dir: Path, jobs: int, devices: list[str], skipped: int) -> int:
    """Run every run (status.json tracks each); 0 if all are done, 1 if any failed, 130 on Ctrl-C."""
    for run in runs:
        prepare(run, run_dir(sweep_dir, run.id))
    pool, start = LocalPool(sweep_dir, jobs, devices, total=len(runs)), time.monotonic()
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # `kill` of crl sweep stops its runs as Ctrl-C does
        on_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    executor = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [executor.submit(pool.run, run) for run in runs]
        for future in as_completed(futures):
            future.result()  # the pool prints each run's outcome as it ends
    except KeyboardInterrupt:
        _stop(pool, executor)
        summarise(runs, sweep_dir, skipped, time.monotonic() - start)
        return INTERRUPTED_EXIT
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if main_thread:
            signal.signal(signal.SIGTERM, on_term)
    return summarise(runs, sweep_dir, skipped, time.monotonic() - start)


def _stop(pool: LocalPool, executor: ThreadPoolExecutor) -> None:
    """Ctrl-C: SIGTERM the running children (each saves a checkpoint and exits 75); a second Ctrl-C kills them."""
    pool.stopping.set()
    executor.shutdown(wait=False, cancel_futures=True)
    count = pool.signal_children(signal.SIGTERM)
    print(f"\ncrl sweep: stopping; {count} running run(s) save a checkpoint and stop (Ctrl-C again to kill them)",
          flush=True)
    try:
        executor.shutdown(wait=True)
    except KeyboardInterrupt:
        pool.signal_children(signal.SIGKILL)
        print("crl sweep: killed; those runs resume from their last saved checkpoint", flush=True)
        executor.shutdown(wait=True)
