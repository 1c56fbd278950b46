"""Multi-host start-up: join the processes of one run through jax.distributed before any array exists.

Under SLURM (`srun`, one task per node or per GPU) jax.distributed.initialize() reads the job's
environment; elsewhere pass the coordinator address, process count and this process's id.
"""
from __future__ import annotations

import jax

from crl.config import ConfigError


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join the run; after this jax.devices() lists every process's devices (the data mesh spans them all)."""
    explicit = (coordinator, num_processes, process_id)
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise ConfigError("--coordinator, --num-processes and --process-id go together (or give none of them "
                          "under SLURM, where they are detected)")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except ValueError as err:  # no cluster detected and no explicit address
        raise ConfigError(f"jax.distributed could not start: {err}. Run under SLURM (srun) or pass --coordinator "
                          "HOST:PORT --num-processes N --process-id I") from None
