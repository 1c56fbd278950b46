"""Full-state checkpoints with orbax: save every N epochs, keep the last K and the best, resume safely.

A checkpoint holds the whole TrainingState (params, optimiser states, env state, RNG key, counters and,
when it fits the size budget, the replay buffer) plus a JSON record (config, epoch, headline metric).
Orbax writes each step to a temporary folder and renames it when complete, so a killed save never
looks finished; a checkpoint whose files are corrupt or incomplete is reported with its path, moved
aside and the previous one is used, while a restore that fails for another reason (out of memory, an
I/O error, a tree that no longer matches) stops with CheckpointRestoreError and moves nothing.
Restores are built from abstract shapes (one state is ever allocated), and evaluation restores only
the fields it needs. Nothing is deleted before a newer checkpoint has been written.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

CHECKPOINT_DIR = "checkpoints"
QUARANTINE_DIR = "checkpoints_unreadable"  # unreadable checkpoints are moved here, never deleted
BYTES_PER_MB = 2**20
BEST_METRIC_KEY = "headline"


class NoValidCheckpointError(RuntimeError):
    """No checkpoint to restore: none saved, the asked epoch missing, or every one corrupt (and moved aside)."""


class CheckpointRestoreError(RuntimeError):
    """A checkpoint whose files are intact could not be restored (out of memory, an I/O error, a tree that no
    longer matches the config); every checkpoint is left in place and the message names the cause and the fix."""


PLACEHOLDER = ocp.PLACEHOLDER  # a leaf orbax skips on restore (its bytes are never read)
LARGE_LEAF_BYTES = 16 * BYTES_PER_MB  # leaves above this are restored one at a time (see Checkpointer._read)
RECORD_FILES = ("_CHECKPOINT_METADATA", "state/_METADATA", "meta/metadata")  # JSON records of a finished checkpoint
ARRAY_METADATA_DIR = "state/array_metadatas"  # one JSON file per process
ITEM_DIRS = ("state", "meta")
# TensorStore's status codes for array data that is cut short, overwritten or gone (the data's fault, not the disk's)
UNREADABLE_DATA_MARKS = ("DATA_LOSS", "OUT_OF_RANGE", "FAILED_PRECONDITION", "NOT_FOUND")
OUT_OF_MEMORY_MARKS = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "Cannot allocate memory")
IO_ERROR_MARKS = ("Input/output error", "PERMISSION_DENIED", "Permission denied", "UNAVAILABLE", "DEADLINE_EXCEEDED")
# TrainingState fields added after checkpoints were first written: a checkpoint without one restores it as None
# when the run's state has None there (CRL's target_params), so runs saved before the field existed still resume
ADDED_FIELDS = ("target_params", "learners")  # fields newer than some checkpoints: None when absent
STATE_METADATA = "state/_METADATA"
TREE_MISMATCH_MARKS = ("tree structures do not match", "is not compatible with the stored shape")  # orbax's words


def _abstract(leaf: Any) -> Any:
    """A leaf's shape, dtype and sharding (an array or a ShapeDtypeStruct; nothing is allocated)."""
    return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=getattr(leaf, "sharding", None))


def _placeholder_sharding(sharding: Any) -> Any:
    """The sharding of a one-element stand-in: replicated on the same mesh (it cannot be split over envs)."""
    if isinstance(sharding, jax.sharding.NamedSharding):
        return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    return sharding


def _fill_empty(tree: Any) -> Any:
    """Zero-size arrays (MJX physics states have some, e.g. `act`) as one-element placeholders: orbax refuses them."""
    def fill(x):
        if np.size(x) != 0:
            return x
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct((1,), x.dtype, sharding=_placeholder_sharding(x.sharding))
        return np.zeros((1,), x.dtype)
    return jax.tree.map(fill, tree)


def _without(state: Any, names: list[str]) -> Any:
    """The state as it was saved before `names` existed: a dict of its other fields (orbax stores a dataclass's
    fields as dict keys, so the dict reads the same files); the state itself when there is nothing to leave out."""
    if not names:
        return state
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name not in names}


def _restore_empty(restored: Any, target: Any) -> Any:
    """Put the target's zero-size arrays back (as zeros on the target's sharding) where `_fill_empty` left stand-ins."""
    def put(r, t):
        if np.size(t) != 0:
            return r
        return jnp.zeros(t.shape, t.dtype, device=getattr(t, "sharding", None))
    return jax.tree.map(put, restored, target)


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
        self._reader = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())

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

    def restore_latest(self, template: Any, log=print, epoch: int | None = None,
                       fields: tuple[str, ...] | None = None) -> Restored:
        """Restore the newest checkpoint that loads (or exactly `epoch`) onto `template`'s shapes and shardings.

        `template` is the state's abstract shape (`jax.eval_shape` of the init program: ShapeDtypeStructs
        carrying the state's shardings; arrays work too), so nothing but the restored state is allocated.
        The buffer comes back None when the checkpoint holds none. With `fields`, only those fields of the
        state are read; the others come back None and their bytes are never read.

        A checkpoint whose files are corrupt or incomplete is moved to checkpoints_unreadable/ and the
        previous one is tried. Any other failure (out of memory, an I/O error, a tree that no longer
        matches) raises CheckpointRestoreError and leaves every checkpoint in place.
        """
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
                state = self._restore_state(epoch, template, meta["has_buffer"], fields)
            except Exception as err:  # noqa: BLE001 -- sorted into corrupt (moved aside) or not (raised) below
                damage = self._damage_or_raise(path, err)
                kept = self._quarantine(path)
                log(f"crl: checkpoint {path} could not be restored ({damage}); trying the previous one. "
                    f"It was moved to {kept} for inspection.")
                continue
            return Restored(epoch=epoch, state=state, meta=meta, has_buffer=meta["has_buffer"], path=path)
        raise NoValidCheckpointError(f"none of the checkpoints {steps} in {self.directory} could be restored; "
                                     f"start a new run (a new --run-dir) or restore a backup of this folder")

    def _restore_state(self, epoch: int, template: Any, has_buffer: bool, fields: tuple[str, ...] | None) -> Any:
        target = jax.tree.map(_abstract, template)
        if not has_buffer:
            target = target.replace(buffer=None)
        skipped = [] if fields is None else [f.name for f in dataclasses.fields(target) if f.name not in fields]
        filled = _fill_empty(target)
        restore_args = ocp.checkpoint_utils.construct_restore_args(filled)
        if skipped:  # orbax leaves placeholder leaves unread
            skip = {name: jax.tree.map(lambda _: PLACEHOLDER, getattr(filled, name)) for name in skipped}
            filled, restore_args = filled.replace(**skip), restore_args.replace(**skip)
        absent = [name for name in ADDED_FIELDS if hasattr(filled, name) and getattr(filled, name) is None
                  and name not in self._saved_fields(epoch)]
        restored = self._read(self.directory / str(epoch) / "state", _without(filled, absent),
                              _without(restore_args, absent))
        restored = filled.replace(**restored) if absent else restored
        if skipped:
            dropped = {name: None for name in skipped}
            restored, target = restored.replace(**dropped), target.replace(**dropped)
        return _restore_empty(restored, target)

    def _saved_fields(self, epoch: int) -> set[str]:
        """The state fields a checkpoint holds (the first key of every entry of its tree metadata)."""
        tree = json.loads((self.directory / str(epoch) / STATE_METADATA).read_text())["tree_metadata"]
        return {entry["key_metadata"][0]["key"] for entry in tree.values()}

    def _read(self, path: Path, item: Any, restore_args: Any) -> Any:
        """Read `item`'s leaves (placeholders stay unread): small ones in one pass, each large one in a pass of its own.

        Orbax reads an array into host memory before placing it, and those host copies live until the garbage
        collector runs; reading one large leaf at a time and collecting after each keeps the restore's peak at the
        state plus one large leaf (not twice the state). The PyTree handler that StandardSave wraps reads the same
        files; the manager only knows StandardRestore, which takes no placeholders.
        """
        leaves, treedef = jax.tree.flatten(item)
        args = treedef.flatten_up_to(restore_args)
        wanted = [i for i, leaf in enumerate(leaves) if leaf is not PLACEHOLDER]
        large = [i for i in wanted if leaves[i].size * leaves[i].dtype.itemsize > LARGE_LEAF_BYTES]
        passes = [[i for i in wanted if i not in large]] + [[i] for i in large]
        out = list(leaves)
        for indices in (p for p in passes if p):
            keep = set(indices)
            part, part_args = ([x if i in keep else PLACEHOLDER for i, x in enumerate(xs)] for xs in (leaves, args))
            got = treedef.flatten_up_to(self._reader.restore(path, args=ocp.args.PyTreeRestore(
                treedef.unflatten(part), restore_args=treedef.unflatten(part_args))))
            for i in indices:
                out[i] = got[i]
            del got
            gc.collect()
        return treedef.unflatten(out)

    def _damage_or_raise(self, path: Path, err: Exception) -> str:
        """What is wrong with a checkpoint that failed to restore; raises CheckpointRestoreError when its files are intact."""
        try:
            damage = _damage(path)
        except FileNotFoundError as gone:
            damage = f"{gone.filename} is missing"
        except OSError as io_err:  # the files could not even be inspected: the disk, not the checkpoint
            raise _restore_error(path, io_err, _failure_cause(io_err)) from err
        if damage:
            return damage
        cause = _failure_cause(err)
        if cause:
            raise _restore_error(path, err, cause) from err
        unreadable = _unreadable_data(err)
        if unreadable:
            return unreadable
        raise _restore_error(path, err, f"an unexpected error; if {path} is damaged, move it out of "
                                        f"{self.directory} by hand and run again") from err

    def _quarantine(self, path: Path) -> Path:
        """Move an unreadable checkpoint out of the manager's way (so its epoch can be saved again)."""
        target = self.directory.parent / QUARANTINE_DIR / f"{path.name}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        self.manager.reload()
        return target

    def close(self) -> None:
        self.manager.close()
        self._reader.close()


def _damage(path: Path) -> str | None:
    """Why a checkpoint's files are corrupt or incomplete (a missing, empty or unparsable record), else None.

    Only a missing file counts as damage; any other OSError (EIO, permissions) propagates: the disk is at fault.
    """
    for name in ITEM_DIRS:
        if not (path / name).is_dir():
            return f"its {name}/ folder is missing"
    for record in [*(path / name for name in RECORD_FILES), *sorted((path / ARRAY_METADATA_DIR).glob("*"))]:
        try:
            json.loads(record.read_bytes())
        except FileNotFoundError:
            return f"{record.relative_to(path)} is missing"
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            return f"{record.relative_to(path)} is not valid JSON"
    for file in path.rglob("*"):
        if file.is_file() and file.stat().st_size == 0:
            return f"{file.relative_to(path)} is empty"
    return None


def _failure_cause(err: BaseException) -> str | None:
    """The cause and fix of a restore failure that is not the checkpoint's fault (None: treat as corrupt data)."""
    chain = _chain(err)  # orbax wraps TensorStore's error (which names the cause) in a generic Exception
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain)
    if any(isinstance(e, MemoryError) for e in chain) or any(mark in text for mark in OUT_OF_MEMORY_MARKS):
        return ("out of memory. Free memory on this machine or device (other processes, a smaller "
                "num_eval_envs), or resume on one with more memory")
    if any(isinstance(e, OSError) and not isinstance(e, FileNotFoundError) for e in chain) or any(
            mark in text for mark in IO_ERROR_MARKS):
        return ("an I/O error. Check the file system (mount, permissions, free space, hardware) and run the "
                "same command again")
    if any(isinstance(e, ValueError) for e in chain) and any(mark in text for mark in TREE_MISMATCH_MARKS):
        return ("the saved state no longer matches this config's state. Resume with the config the run was "
                "saved with (RUN_DIR/config.yaml; fields such as reset_mode may not change) and the crl version "
                "that wrote it, or start a new run directory")
    return None


def _unreadable_data(err: BaseException) -> str | None:
    """TensorStore's words when array data is truncated, overwritten or missing (None for any other error)."""
    for e in _chain(err):
        if isinstance(e, FileNotFoundError) or any(mark in str(e) for mark in UNREADABLE_DATA_MARKS):
            return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None


def _chain(err: BaseException) -> list[BaseException]:
    chain = [err]
    while len(chain) < 8 and (chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    return chain


def _restore_error(path: Path, err: BaseException, cause: str) -> CheckpointRestoreError:
    return CheckpointRestoreError(f"checkpoint {path} could not be restored ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0][:200] if str(err) else ''}): {cause}. "
                                  f"Its files look intact, so every checkpoint was left in place")


def buffer_fits(state: Any, budget_mb: float) -> bool:
    return tree_nbytes(state.buffer) <= budget_mb * BYTES_PER_MB
