"""One `crl sweep` launch per sweep directory at a time: an advisory lock the kernel drops when its holder exits."""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Iterator

from crl.config import ConfigError

LOCK_FILE = "launch.lock"  # SWEEP_DIR/launch.lock: who holds it (pid, host, command, since)


class SweepBusyError(ConfigError):
    """Another `crl sweep` is launching into (or waiting on) the same sweep directory."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']} since {info['since']}: {info['command']}"
    except (OSError, ValueError, KeyError):
        return "a process that has not written its details yet"


@contextlib.contextmanager
def hold(sweep_dir: Path, command: str) -> Iterator[None]:
    """Hold SWEEP_DIR's launch lock for the with-block, or raise SweepBusyError naming its holder.

    flock, not a pid file: the lock ends with its process however that process ends (even SIGKILL), so a
    crashed launcher never leaves the directory locked.
    """
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / LOCK_FILE
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepBusyError(
                f"{sweep_dir} is in use by another `crl sweep` ({_holder(path)}). Two launches of one sweep "
                f"would start the same runs twice: wait for it to end (or stop it), use `crl sweep status "
                f"{sweep_dir}` to watch it, or give this launch another --out") from None
        handle.truncate(0)
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                                 "command": command}))
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock; the file stays as a record of the last launch
