"""Whether a SLURM scheduler answers here (for tests/test_slurm.py and the test run's header)."""
from __future__ import annotations

import shutil
import subprocess

ANSWER_TIMEOUT_S = 20
USABLE_NODE_STATES = ("idle", "mix", "alloc", "comp")  # sinfo's short states of a node that takes jobs


def slurm_problem() -> str | None:
    """Why no SLURM can take jobs here, or None."""
    for tool in ("sbatch", "sinfo", "sacct", "scontrol"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    try:
        nodes, accounting = (subprocess.run(command, capture_output=True, text=True, timeout=ANSWER_TIMEOUT_S)
                             for command in (["sinfo", "-h", "-o", "%t"], ["sacct", "-n", "-X", "-j", "1"]))
    except subprocess.TimeoutExpired as err:
        return f"{err.cmd[0]} did not answer in {ANSWER_TIMEOUT_S} s"
    if nodes.returncode != 0:
        return f"sinfo failed: {nodes.stderr.strip()}"
    if not set(USABLE_NODE_STATES) & set(nodes.stdout.split()):
        return f"no node up (sinfo: {' '.join(nodes.stdout.split()) or 'none'})"
    if accounting.returncode != 0:
        return f"sacct failed (no accounting storage?): {accounting.stderr.strip()}"
    return None
