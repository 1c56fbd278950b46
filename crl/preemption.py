"""Graceful stop on SIGTERM / SIGINT / SIGUSR1 (SLURM's pre-timeout signal): finish the epoch, save, exit 75."""
from __future__ import annotations

import signal

PREEMPT_EXIT_CODE = 75  # EX_TEMPFAIL ("try again"): the run saved a checkpoint and can be requeued
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Preempted(Exception):
    """Training stopped on a signal after writing a checkpoint; `crl train --resume RUN_DIR` continues it."""


class StopOnSignals:
    """Context manager: the first stop signal sets `requested` (save after the epoch).

    A second SIGINT raises KeyboardInterrupt as soon as Python runs again (after the running XLA program)
    and restores the OS default, so a third Ctrl-C kills the process immediately.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> "StopOnSignals":
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                break
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
