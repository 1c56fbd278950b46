"""Sweep specs (YAML): axes over TrainConfig fields, expanded into typed runs with stable ids (check.py validates)."""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from pathlib import Path
from typing import Any

import yaml

from crl.config import (SWEEPS_FOLDER, ConfigError, TrainConfig, coerce_field, field_names, from_dict, load_yaml,
                        resolve_preset, to_dict)

CONFIG_AXIS = "config"  # a grid axis of preset paths: each value replaces `base` for its points
SEED_FIELD = "seed"
PACKED_SEEDS_FIELD = "num_seeds"  # --num-seeds K: K consecutive seeds vmapped in one run
SPEC_KEYS = ("name", "base", "overrides", "grid", "zip", "seeds", "slurm")
MAX_ID_LEN = 100  # longer run ids are cut and end in a hash of the full text
ID_HASH_LEN = 8
AXIS_SEP = "__"  # between the parts of a run id; a part is `field-value`
UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _resource(default: Any, text: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": text})  # --help text of its flag


@dataclasses.dataclass(frozen=True)
class SlurmResources:
    """Per-run SLURM request (the spec's `slurm:` block); every field can be overridden on the command line."""

    partition: str | None = _resource(None, "SLURM partition")
    time_min: int = _resource(24 * 60, "wall time of one job in minutes (longer runs are requeued and resume)")
    gpus_per_node: int = _resource(1, "GPUs per run (0: none)")
    cpus_per_task: int = _resource(8, "CPU cores per run")
    mem_gb: float = _resource(64.0, "host memory per run in GB")
    array_parallelism: int = _resource(64, "array tasks running at once")
    max_timeouts: int = _resource(10, "requeues after a timeout before giving up (preemptions do not count)")
    signal_delay_s: int = _resource(300, "warning before the time limit (s), for the run to save and stop")
    account: str | None = _resource(None, "SLURM account")
    qos: str | None = _resource(None, "SLURM quality of service")
    constraint: str | None = _resource(None, "SLURM node constraint (e.g. a GPU type)")


@dataclasses.dataclass(frozen=True)
class Step:
    """One value of an axis: the fields it sets and its part of the run id."""

    label: str
    values: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Axis:
    source: str  # where the spec declares it: `grid.critic_depth`, `zip[0]` or `seeds`
    fields: tuple[str, ...]
    steps: tuple[Step, ...]


@dataclasses.dataclass(frozen=True)
class Run:
    id: str
    overrides: dict[str, Any]  # what this run's axes set (the `config` axis: the preset's file stem)
    base: Path  # the preset this run starts from
    config: TrainConfig


@dataclasses.dataclass(frozen=True)
class Spec:
    path: Path
    text: str
    name: str
    base: Path | None
    overrides: dict[str, Any]
    axes: tuple[Axis, ...]  # seeds last
    slurm: SlurmResources

    @property
    def axis_fields(self) -> list[str]:
        return [name for axis in self.axes for name in axis.fields]

    @property
    def varying_fields(self) -> list[str]:
        """The fields that differ between runs (num_seeds, when packed, is the same for all)."""
        return [name for name in self.axis_fields if name != PACKED_SEEDS_FIELD]


def _sanitise(text: str) -> str:
    return UNSAFE_ID_CHARS.sub("_", text).strip("_") or "_"


def _value_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    return str(value)


def _label(values: dict[str, Any]) -> str:
    parts = [f"{name}-{Path(str(value)).stem if name == CONFIG_AXIS else _value_text(value)}"
             for name, value in values.items()]
    return AXIS_SEP.join(_sanitise(part) for part in parts)


def run_id(labels: list[str]) -> str:
    """`critic_depth-16__seed-2`; ids longer than MAX_ID_LEN are cut and end in a short sha1 of the full id."""
    full = AXIS_SEP.join(labels) or "base"
    if len(full) <= MAX_ID_LEN:
        return full
    digest = hashlib.sha1(full.encode()).hexdigest()[:ID_HASH_LEN]
    return f"{full[:MAX_ID_LEN - ID_HASH_LEN - 1]}-{digest}"


def _mapping(value: Any, where: str, fix: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}; {fix}")
    return value


def _check_fields(names: list[str], where: str, axis: bool = False) -> None:
    """Unknown TrainConfig fields fail with the closest known name (crl.config.from_dict's check).

    An axis may also be the `config` axis of presets.
    """
    unknown = [name for name in names if name not in field_names() and not (axis and name == CONFIG_AXIS)]
    if unknown:
        from_dict(dict.fromkeys(unknown), source=where)


def typed_values(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Fixed field values (`overrides:`, --set) checked and in their fields' types: '1e-4' -> 0.0001."""
    _check_fields(list(values), where)
    return {name: coerce_field(name, value, where) for name, value in values.items()}


def _values_list(values: Any, where: str) -> list[Any]:
    if not isinstance(values, list):
        raise ConfigError(f"{where} = {values!r} must be a list of values (a fixed value goes under `overrides:`)")
    if not values:
        raise ConfigError(f"{where} is an empty list: give it at least one value, or remove the axis")
    return values


def _axis(source: str, rows: list[dict[str, Any]]) -> Axis:
    """An axis whose steps set `rows` (same fields each), labelled `field-value` per field."""
    return Axis(source, tuple(rows[0]), tuple(Step(_label(row), row) for row in rows))


def _grid_axes(grid: dict[str, Any], where: str) -> list[Axis]:
    _check_fields(list(grid), f"{where}: grid", axis=True)
    return [_axis(f"grid.{name}", [{name: v} for v in _values_list(values, f"{where}: grid.{name}")])
            for name, values in grid.items()]


def _zip_axes(groups: Any, where: str) -> list[Axis]:
    groups = [groups] if isinstance(groups, dict) else groups
    if not isinstance(groups, list):
        raise ConfigError(f"{where}: zip must be a list of groups like `- {{critic_depth: [4, 16], "
                          f"actor_depth: [4, 16]}}`, got {type(groups).__name__}")
    axes = []
    for index, group in enumerate(groups):
        group = _mapping(group, f"{where}: zip[{index}]", "write each group as {field: [values], field2: [values]}")
        if not group:
            raise ConfigError(f"{where}: zip[{index}] is empty: give it fields with lists of values, or remove it")
        _check_fields(list(group), f"{where}: zip[{index}]", axis=True)
        columns = {name: _values_list(values, f"{where}: zip[{index}].{name}") for name, values in group.items()}
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ConfigError(f"{where}: zip[{index}]: the lists advance together so they need the same length, got "
                              f"{lengths}; make them equal, or put independent fields under `grid:`")
        rows = [dict(zip(columns, row)) for row in zip(*columns.values())]
        axes.append(_axis(f"zip[{index}]", rows))
    return axes


def _seed_list(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
        return list(range(seeds))
    if isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds: {seeds} repeats a seed; list each seed once")
        return seeds
    raise ConfigError(f"seeds: {seeds!r}: give a count (`seeds: 5` for 0..4) or a list of ints (`seeds: [0, 5, 7]`)")


def _packed_seed_axis(seeds: list[int], per_run: int) -> Axis:
    """Groups of `per_run` consecutive seeds, each one run (seed = first, num_seeds = per_run)."""
    if len(seeds) % per_run:
        raise ConfigError(f"--num-seeds {per_run} does not divide the {len(seeds)} seeds {seeds}; choose a divisor "
                          f"of {len(seeds)} or change `seeds:`")
    steps = []
    for start in range(0, len(seeds), per_run):
        group = seeds[start:start + per_run]
        if group != list(range(group[0], group[0] + per_run)):
            raise ConfigError(f"--num-seeds {per_run} packs consecutive seeds into one run, but {group} are not "
                              f"consecutive; list seeds in runs of {per_run} (e.g. `seeds: {len(seeds)}`)")
        steps.append(Step(f"seeds-{group[0]}-{group[-1]}", {SEED_FIELD: group[0], PACKED_SEEDS_FIELD: per_run}))
    return Axis("seeds", (SEED_FIELD, PACKED_SEEDS_FIELD), tuple(steps))


def _seed_axis(seeds: list[int], per_run: int) -> Axis:
    if per_run > 1:
        return _packed_seed_axis(seeds, per_run)
    return _axis("seeds", [{SEED_FIELD: seed} for seed in seeds])


def _slurm_resources(block: Any, where: str) -> SlurmResources:
    block = _mapping(block, f"{where}: slurm", "e.g. `slurm: {partition: gpu, time_min: 720}`")
    known = [f.name for f in dataclasses.fields(SlurmResources)]
    unknown = [key for key in block if key not in known]
    if unknown:
        raise ConfigError(f"{where}: slurm: unknown key(s) {unknown}; known: {', '.join(known)}")
    return SlurmResources(**block)


def load_spec(path: str | Path, num_seeds: int = 1) -> Spec:
    """Parse and check a spec file; --num-seeds K > 1 packs the seed axis into runs of K seeds."""
    path = resolve_preset(path, folder=SWEEPS_FOLDER, what="sweep spec")
    text = path.read_text()
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep spec is a mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = [key for key in raw if key not in SPEC_KEYS]
    if unknown:
        hint = " (TrainConfig fields go under `overrides:` or `grid:`)" if set(unknown) & set(field_names()) else ""
        raise ConfigError(f"{path}: unknown key(s) {unknown}{hint}; a spec has {', '.join(SPEC_KEYS)}")
    where = str(path)
    overrides = typed_values(_mapping(raw.get("overrides"), f"{where}: overrides",
                                      "write `overrides: {num_epochs: 10}`"), f"{where}: overrides")
    axes = _grid_axes(_mapping(raw.get("grid"), f"{where}: grid", "write `grid: {critic_depth: [4, 16]}`"), where)
    axes += _zip_axes(raw.get("zip") or [], where)
    if num_seeds < 1:
        raise ConfigError(f"--num-seeds {num_seeds}: must be >= 1")
    if "seeds" in raw:
        axes.append(_seed_axis(_seed_list(raw["seeds"]), num_seeds))
    elif num_seeds > 1:
        raise ConfigError(f"--num-seeds {num_seeds} packs the spec's seeds, but {where} has no `seeds:`; add one "
                          f"(e.g. `seeds: {num_seeds}`)")
    _check_distinct_axes(axes, overrides, where)
    base = raw.get("base")
    if base is None and not any(axis.fields == (CONFIG_AXIS,) for axis in axes):
        raise ConfigError(f"{where}: no `base:`; name a TrainConfig preset (e.g. `base: ../quickstart.yaml`) or "
                          f"give a `{CONFIG_AXIS}` grid axis of presets")
    name = str(raw.get("name") or path.stem)
    base_path = resolve_preset(str(base), relative_to=path.parent, what=f"{where}: base") if base else None
    return Spec(path=path, text=text, name=_sanitise(name), base=base_path,
                overrides=overrides, axes=tuple(axes), slurm=_slurm_resources(raw.get("slurm"), where))


def _check_distinct_axes(axes: list[Axis], overrides: dict[str, Any], where: str) -> None:
    owner = dict.fromkeys(overrides, "overrides")
    for axis in axes:
        for name in axis.fields:
            if name in owner:
                raise ConfigError(f"{where}: field '{name}' is set by both {owner[name]} and {axis.source}; keep it "
                                  f"in one place (several seeds go under `seeds:`)")
            owner[name] = axis.source


def build_config(base: Path, *layers: dict[str, Any], where: str) -> TrainConfig:
    """base preset, then each layer of overrides; values take the fields' types (`1e-4` is a float)."""
    values = to_dict(load_yaml(base))
    for layer in layers:
        values.update(layer)
    return from_dict(values, source=where)


def _preset_path(spec: Spec, preset: Any) -> Path:
    """A `config` axis value: a preset path relative to the spec, or a shipped preset's name."""
    return resolve_preset(str(preset), relative_to=spec.path.parent, what=f"{spec.path}: grid.{CONFIG_AXIS}")


def expand(spec: Spec, extra: dict[str, Any] | None = None) -> list[Run]:
    """Every point of the spec (cartesian product over the axes, first axis outermost), fields typed.

    check_runs validates them; expand only refuses what no run can mean (unknown fields, wrong types, clashes).
    """
    extra = typed_values(extra or {}, "--set")
    clash = [name for name in extra if name in spec.axis_fields]
    if clash:
        raise ConfigError(f"--set {clash[0]}=...: '{clash[0]}' is an axis of {spec.path}; drop it from --set or "
                          f"narrow the sweep with --only")
    runs = []
    for combo in itertools.product(*(axis.steps for axis in spec.axes)):
        point = {name: value for step in combo for name, value in step.values.items()}
        rid = run_id([step.label for step in combo])
        preset = point.get(CONFIG_AXIS)
        base = _preset_path(spec, preset) if preset is not None else spec.base
        fields = {name: value for name, value in point.items() if name != CONFIG_AXIS}
        config = build_config(base, spec.overrides, extra, fields, where=f"{spec.path}: run {rid}")
        shown = {name: Path(value).stem if name == CONFIG_AXIS else value for name, value in point.items()}
        runs.append(Run(id=rid, overrides=shown, base=base, config=config))
    seen: dict[str, Run] = {}
    for run in runs:
        if run.id in seen:
            raise ConfigError(f"{spec.path}: runs {seen[run.id].overrides} and {run.overrides} get the same id "
                              f"'{run.id}'; list each axis value once, and keep values distinct once characters "
                              f"outside [A-Za-z0-9._-] become '_'")
        seen[run.id] = run
    return runs
