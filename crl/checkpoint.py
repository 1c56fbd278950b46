"""Full-state checkpoints with orbax: save every N epochs, keep the last K and the best, resume safely.

A checkpoint holds the whole TrainingState (params, optimiser states, env state, RNG key, counters and,
when it fits the size budget, the replay buffer) plus a JSON record (config, epoch, headline metric).
Orbax writes each step to a temporary folder and renames it when complete, so a killed save never
looks finished; a checkpoint that fails to restore is reported with its path and the previous one is
used. Nothing is deleted before a newer checkpoint has been written.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

CHECKPOINT_DIR = "checkpoints"
QUARANTINE_DIR = "checkpoints_unreadable"  # unreadable checkpoints are moved here, never deleted
BYTES_PER_MB = 2**20
BEST_METRIC_KEY = "headline"


class NoValidCheckpointError(RuntimeError):
    """Every checkpoint in a run directory failed to restore."""


def _fill_empty(tree: Any) -> Any:
    """Zero-size arrays (MJX physics states have some, e.g. `act`) as one-element placeholders: orbax refuses them."""
    return jax.tree.map(lambda x: np.zeros((1,), x.dtype) if np.size(x) == 0 else x, tree)


def _restore_empty(restored: Any, template: Any) -> Any:
    """Put the template's zero-size arrays back where `_fill_empty` left placeholders."""
    return jax.tree.map(lambda r, t: t if np.size(t) == 0 else r, restored, template)


def tree_nbytes(tree: Any) -> int:
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


@dataclasses.dataclass
class Restored:
    epoch: int
    state: Any
    meta: dict
    has_buffer: bool
    path: Path


class Checkpointer:
    """Saves and restores TrainingState pytrees of one run under RUN_DIR/checkpoints/<epoch>."""

    def __init__(self, run_dir: str | Path, keep_last: int, keep_best: bool):
        self.directory = Path(run_dir).resolve() / CHECKPOINT_DIR
        keep = [policies.LatestN(n=keep_last)]
        if keep_best:
            keep.append(policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC_KEY], reverse=False, n=1))
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False, preservation_policy=policies.AnyPreservationPolicy(keep),
            create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def save(self, epoch: int, state: Any, meta: dict, headline: float, include_buffer: bool) -> Path:
        """Write epoch's checkpoint (without the buffer unless include_buffer) and wait until it is final."""
        saved = _fill_empty(state if include_buffer else state.replace(buffer=None))
        meta = {**meta, "epoch": epoch, "has_buffer": include_buffer}
        self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(saved),
                                                         meta=ocp.args.JsonSave(meta)),
                          metrics={BEST_METRIC_KEY: float(headline)}, force=True)
        self.manager.wait_until_finished()
        if self._meta(epoch)["epoch"] != epoch:  # read back what was written before relying on it
            raise OSError(f"checkpoint {self.directory / str(epoch)} did not read back; check the disk")
        return self.directory / str(epoch)

    def saved_config(self) -> dict | None:
        """The config stored with the newest checkpoint whose record reads (None without checkpoints)."""
        for epoch in reversed(self.steps()):
            try:
                return self._meta(epoch)["config"]
            except Exception:  # noqa: BLE001 -- an unreadable record is handled by restore_latest
                continue
        return None

    def _meta(self, epoch: int) -> dict:
        return self.manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore_latest(self, template: Any, log=print, epoch: int | None = None) -> Restored:
        """Restore the newest checkpoint that loads (or exactly `epoch`), shaped like `template` (a fresh state)."""
        steps = self.steps()
        if not steps:
            raise NoValidCheckpointError(f"no checkpoint in {self.directory}")
        if epoch is not None:
            if epoch not in steps:
                raise NoValidCheckpointError(f"no checkpoint for epoch {epoch} in {self.directory}; saved: {steps}")
            steps = [epoch]
        for epoch in reversed(steps):
            path = self.directory / str(epoch)
            try:
                meta = self._meta(epoch)
                target = template if meta["has_buffer"] else template.replace(buffer=None)
                abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _fill_empty(target))
                state = _restore_empty(self.manager.restore(epoch, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract)))["state"], target)
            except Exception as err:  # noqa: BLE001 -- any failure to read means this checkpoint is unusable
                kept = self._quarantine(path)
                log(f"crl: checkpoint {path} could not be restored ({type(err).__name__}: {str(err)[:200]}); "
                    f"trying the previous one. It was moved to {kept} for inspection.")
                continue
            if not meta["has_buffer"]:
                state = state.replace(buffer=template.buffer)
            return Restored(epoch=epoch, state=state, meta=meta, has_buffer=meta["has_buffer"], path=path)
        raise NoValidCheckpointError(f"none of the checkpoints {steps} in {self.directory} could be restored; "
                                     f"start a new run (a new --run-dir) or restore a backup of this folder")

    def _quarantine(self, path: Path) -> Path:
        """Move an unreadable checkpoint out of the manager's way (so its epoch can be saved again)."""
        target = self.directory.parent / QUARANTINE_DIR / f"{path.name}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        self.manager.reload()
        return target

    def close(self) -> None:
        self.manager.close()


def buffer_fits(state: Any, budget_mb: float) -> bool:
    return tree_nbytes(state.buffer) <= budget_mb * BYTES_PER_MB
