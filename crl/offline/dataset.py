"""OGBench-layout datasets: save, load (memory-mapped where the file allows) and validate.

A dataset is one `.npz` file with `observations` (N, S), `actions` (N, A) and `terminals` (N,), all float32:
trajectories are concatenated and `terminals[t] = 1` marks each trajectory's last row. A trajectory of T + 1
rows holds states s_0..s_T and actions a_0..a_T; the last action has no next state (as in OGBench, whose
`ogbench.utils.load_dataset` drops it). Every other key (crl's `goals` (N, G): the goal commanded to the
collecting policy; OGBench's `qpos`, `qvel`) is kept in `Dataset.extras`. Beside FILE.npz an optional JSON
sidecar FILE.json says where the data came from (env id and spec, policy, crl version, command).

Members stored uncompressed (`np.savez`, what `save_dataset` writes) are memory-mapped, so a dataset larger
than memory loads instantly and pages in on use; compressed members (OGBench ships `np.savez_compressed`
files) cannot be mapped and are read into memory.
"""
from __future__ import annotations

import dataclasses
import json
import os
import struct
import uuid
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np
from numpy.lib import format as npy_format

from crl.config import ConfigError

REQUIRED_KEYS = ("observations", "actions", "terminals")
GOALS_KEY = "goals"
DATASET_SUFFIX = ".npz"
SIDECAR_SUFFIX = ".json"
NPY_SUFFIX = ".npy"
ROW_NDIM = {"observations": 2, "actions": 2, "terminals": 1, GOALS_KEY: 2}  # ndim of the keys with a known layout
FLOAT_KINDS = "f"  # observations, actions, goals: floating point
TERMINAL_KINDS = "fiub"  # terminals: any number or bool, holding 0 and 1 only
STORED_DTYPE = np.float32
FINITE_CHECK_ELEMENTS = 1 << 22  # elements per chunk of the non-finite scan: bounded memory on a memmap

# The zip local file header (APPNOTE 4.3.7): 30 fixed bytes, then the name and the extra field.
LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
LOCAL_HEADER_SIZE = 30
LOCAL_HEADER_LENGTHS = struct.Struct("<HH")  # file name length, extra field length
LOCAL_HEADER_LENGTHS_AT = 26


class DatasetError(ConfigError):
    """A dataset file that cannot be used: the message names the file, the key, the expected and the found shape."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A loaded OGBench-layout dataset; arrays are np.memmap where the npz member is stored uncompressed."""

    path: Path
    observations: np.ndarray  # (N, S) float32
    actions: np.ndarray  # (N, A) float32
    terminals: np.ndarray  # (N,) float32, 1.0 at each trajectory's last row
    info: dict | None  # the sidecar JSON; None when the file has none (e.g. an OGBench download)
    extras: dict[str, np.ndarray]  # every other key (e.g. 'goals')

    @property
    def traj_ids(self) -> np.ndarray:
        """(N,) int32 trajectory index of each row: 0 for the first trajectory, +1 after every terminal."""
        return trajectory_ids(self.terminals)

    @property
    def num_transitions(self) -> int:
        """Rows N (OGBench's count: each trajectory's last row, with its action that has no next state, included)."""
        return int(self.terminals.shape[0])

    @property
    def num_trajectories(self) -> int:
        return int(np.count_nonzero(self.terminals))

    @property
    def env(self) -> str | None:
        """The env id the sidecar names; None without a sidecar."""
        return None if self.info is None else self.info.get("env")


def trajectory_ids(terminals: np.ndarray) -> np.ndarray:
    """Trajectory index per row from terminals (1 at each trajectory's last row)."""
    ends = np.asarray(terminals) > 0
    ids = np.zeros(ends.shape, np.int32)
    np.cumsum(ends[:-1], out=ids[1:])
    return ids


def sidecar_path(path: str | Path) -> Path:
    """FILE.npz -> FILE.json: where a dataset's provenance is written."""
    return Path(path).with_suffix(SIDECAR_SUFFIX)


# ---------------------------------------------------------------------------------------------- validation
def _shape_text(key: str, ndim: int, rows: int | None = None, dim: int | None = None) -> str:
    """The expected shape of a key, e.g. '(N,)', '(N, 2)', '(1000, S)'."""
    first = "N" if rows is None else str(rows)
    if ndim == 1:
        return f"({first},)"
    return f"({first}, {'S' if key == 'observations' else 'A' if key == 'actions' else 'D' if dim is None else dim})"


def _check_layout(where: str, key: str, array: np.ndarray, rows: int | None) -> None:
    """ndim and dtype kind of a key with a known layout, and its row count against observations'."""
    ndim = ROW_NDIM.get(key)
    if ndim is not None and array.ndim != ndim:
        raise DatasetError(f"{where}: {key} must be {ndim}-d {_shape_text(key, ndim, rows)}, found shape "
                           f"{tuple(array.shape)}")
    kinds = TERMINAL_KINDS if key == "terminals" else FLOAT_KINDS if ndim is not None else None
    if kinds is not None and array.dtype.kind not in kinds:
        raise DatasetError(f"{where}: {key} must hold {'numbers' if key == 'terminals' else 'floats'} "
                           f"(float32), found dtype {array.dtype}")
    if array.dtype.hasobject:
        raise DatasetError(f"{where}: {key} holds Python objects (dtype {array.dtype}); store numeric arrays")
    if rows is None:
        return
    if array.ndim == 0:
        raise DatasetError(f"{where}: {key} is a scalar; every key needs one row per observation: shape "
                           f"({rows}, ...)")
    if array.shape[0] != rows:
        raise DatasetError(f"{where}: {key} has {array.shape[0]} rows, observations has {rows}: every key needs "
                           f"one row per observation, shape ({rows}, ...)")


def _check_dim(where: str, key: str, array: np.ndarray, expected: int | None, name: str,
               env: str | None) -> None:
    """Second dim of observations/actions against the env spec's state_dim/action_size."""
    if expected is None or array.shape[1] == expected:
        return
    collected = f" (the sidecar says it was collected in {env})" if env else ""
    raise DatasetError(f"{where}: {key} has dim {array.shape[1]} per row, the env spec expects {name} {expected}: "
                       f"shape (N, {expected}), found {tuple(array.shape)}{collected}; load it for an env of "
                       f"the same {name}")


def _check_terminals(where: str, terminals: np.ndarray) -> None:
    if terminals.shape[0] == 0:
        raise DatasetError(f"{where}: the dataset is empty (0 rows); a trajectory needs at least one row")
    bad = np.flatnonzero((terminals != 0) & (terminals != 1))
    if bad.size:
        raise DatasetError(f"{where}: terminals must be 0 or 1 (1 at each trajectory's last row), found "
                           f"{terminals[bad[0]]!r} at row {bad[0]}")
    if terminals[-1] != 1:
        raise DatasetError(f"{where}: the last trajectory does not end: terminals[-1] must be 1, found "
                           f"{terminals[-1]!r}")


def _check_finite(where: str, key: str, array: np.ndarray) -> None:
    """A scan for NaN/inf in row chunks, so a memory-mapped array is never read whole into memory."""
    if array.dtype.kind not in "fc" or array.size == 0:
        return
    rows_per_chunk = max(1, FINITE_CHECK_ELEMENTS // max(1, array.size // array.shape[0]))
    for start in range(0, array.shape[0], rows_per_chunk):
        finite = np.isfinite(array[start:start + rows_per_chunk])
        if not finite.all():
            row = start + int(np.argwhere(~finite)[0][0])
            raise DatasetError(f"{where}: {key} has a non-finite value (NaN or inf) at row {row}; every value "
                               "must be finite")


def validate_arrays(where: str, arrays: Mapping[str, np.ndarray], state_dim: int | None = None,
                    action_size: int | None = None, env: str | None = None) -> None:
    """Raise DatasetError naming the first problem of a dataset's arrays (keys, shapes, dtypes, terminals, values)."""
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise DatasetError(f"{where}: missing key {missing[0]!r}; an OGBench-layout dataset holds "
                           f"{', '.join(REQUIRED_KEYS)} (found keys: {', '.join(sorted(arrays)) or 'none'})")
    observations = arrays["observations"]
    _check_layout(where, "observations", observations, None)
    rows = observations.shape[0]
    for key, array in arrays.items():
        if key != "observations":
            _check_layout(where, key, array, rows)
    _check_dim(where, "observations", observations, state_dim, "state_dim", env)
    _check_dim(where, "actions", arrays["actions"], action_size, "action_size", env)
    _check_terminals(where, arrays["terminals"])
    for key, array in arrays.items():
        _check_finite(where, key, array)


# ---------------------------------------------------------------------------------------------- writing
def _write_atomically(path: Path, write) -> None:
    """write(file) into a temp file beside `path`, then rename it there: a reader never sees a half-written file."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"  # open() keeps the umask's mode
    try:
        with open(tmp, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_dataset(path: str | Path, observations: np.ndarray, actions: np.ndarray, terminals: np.ndarray,
                 info: dict, extras: dict | None = None) -> Path:
    """Validate and write FILE.npz (uncompressed, so it can be memory-mapped) and its sidecar FILE.json; returns the path.

    Arrays are stored as float32 (extras keep their dtype). Each file is written under a temp name in the same
    folder and renamed, so an interrupted write never leaves a half file.
    """
    path = Path(path)
    if path.suffix != DATASET_SUFFIX:
        raise DatasetError(f"{path}: a dataset file must end in {DATASET_SUFFIX}, e.g. {path.with_suffix(DATASET_SUFFIX)}")
    arrays = {"observations": observations, "actions": actions, "terminals": terminals}
    arrays = {key: np.asarray(value, STORED_DTYPE) for key, value in arrays.items()}
    arrays.update({key: np.asarray(value) for key, value in (extras or {}).items()})
    validate_arrays(str(path), arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, lambda file: np.savez(file, allow_pickle=False, **arrays))
    text = json.dumps(info, indent=1)
    _write_atomically(sidecar_path(path), lambda file: file.write(text.encode()))
    return path


# ---------------------------------------------------------------------------------------------- reading
def _member_data_offset(file, member: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start: after its local header (whose extra field may differ from the central one)."""
    file.seek(member.header_offset)
    header = file.read(LOCAL_HEADER_SIZE)
    if header[:len(LOCAL_HEADER_SIGNATURE)] != LOCAL_HEADER_SIGNATURE:
        raise ValueError(f"no zip local header at offset {member.header_offset}")
    name_length, extra_length = LOCAL_HEADER_LENGTHS.unpack_from(header, LOCAL_HEADER_LENGTHS_AT)
    return member.header_offset + LOCAL_HEADER_SIZE + name_length + extra_length


NPY_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def _map_member(path: Path, file, member: zipfile.ZipInfo) -> np.ndarray | None:
    """An uncompressed npz member as a read-only np.memmap of the file (nothing read but its header).

    None for a .npy format version without a public header reader (3.0: unicode field names): read it instead.
    """
    file.seek(_member_data_offset(file, member))
    read_header = NPY_HEADER_READERS.get(npy_format.read_magic(file))
    if read_header is None:
        return None
    shape, fortran_order, dtype = read_header(file)
    if dtype.hasobject:
        raise ValueError(f"dtype {dtype} holds Python objects")
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)  # np.memmap cannot map zero bytes
    return np.memmap(path, dtype=dtype, mode="r", offset=file.tell(), shape=shape,
                     order="F" if fortran_order else "C")


def _read_members(path: Path, mmap: bool) -> dict[str, np.ndarray]:
    """Every .npy member of the npz: mapped where stored uncompressed (and mmap), else read into memory."""
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as file:
        for member in archive.infolist():
            if not member.filename.endswith(NPY_SUFFIX):
                continue
            key = member.filename[:-len(NPY_SUFFIX)]
            try:
                stored = member.compress_type == zipfile.ZIP_STORED
                array = _map_member(path, file, member) if mmap and stored else None
                if array is None:
                    with archive.open(member) as data:
                        array = npy_format.read_array(data, allow_pickle=False)
                arrays[key] = array
            except (ValueError, OSError, zipfile.BadZipFile) as err:
                raise DatasetError(f"{path}: member {member.filename} is not a readable .npy array ({err}); "
                                   "rewrite the file with np.savez") from err
    return arrays


def read_sidecar(path: str | Path) -> dict | None:
    """The sidecar JSON of a dataset file (None when it has none); DatasetError when it is not a JSON object."""
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return None
    try:
        info = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{sidecar}: the dataset's sidecar is not valid JSON ({err}); fix or delete it") from err
    if not isinstance(info, dict):
        raise DatasetError(f"{sidecar}: the dataset's sidecar must hold a JSON object, found {type(info).__name__}")
    return info


def _as_float32(array: np.ndarray) -> np.ndarray:
    """float32 without a copy when it already is (a memmap stays a memmap); other dtypes are converted in memory."""
    return array if array.dtype == STORED_DTYPE else array.astype(STORED_DTYPE)


def load_dataset(path: str | Path, state_dim: int | None = None, action_size: int | None = None,
                 mmap: bool = True) -> Dataset:
    """Load and validate an OGBench-layout .npz (crl's or an OGBench download), with its sidecar if it has one.

    With mmap, members stored uncompressed are np.memmap views of the file; compressed members (OGBench's own
    files) are read into memory. state_dim / action_size, when given, are checked against observations' and
    actions' second dim. Raises DatasetError naming the file, the key, the expected and the found shape.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file; check the path (`crl collect ENV --out {path.name}` "
                           "writes one)")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not an .npz (zip) archive; a dataset is an .npz written by np.savez with keys "
                           f"{', '.join(REQUIRED_KEYS)}")
    arrays = _read_members(path, mmap)
    info = read_sidecar(path)
    env = None if info is None else info.get("env")
    validate_arrays(str(path), arrays, state_dim, action_size, env)
    required = {key: _as_float32(arrays.pop(key)) for key in REQUIRED_KEYS}
    return Dataset(path=path, info=info, extras=arrays, **required)
