"""`crl report SWEEP_DIR`: the final metric of every cell (mean ± s.e. over seeds), as Markdown, CSV and plots.

The rule (paper): a seed's final value is the mean of its last 5 evaluation records holding the metric
(all of them when it has fewer, the epoch-0 record included); a cell's value is the mean over its seeds
± the standard error (sample std, ddof=1, / sqrt(n)). numpy, matplotlib and yaml only: no jax.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from crl.learner_spec import COLLECTOR, METRIC_PREFIX as LEARNER_PREFIX, parse_learners

DEFAULT_METRIC = "eval/episode_success"
OGBENCH_METRIC = "eval/ogbench_success"  # runs evaluated on OGBench's mazes (crl.offline.host_eval)
METRIC_LABELS = {"eval/episode_success": "time at goal", OGBENCH_METRIC: "OGBench success rate"}
DEFAULT_LAST = 5  # evaluations averaged into a seed's final value (the paper's rule)
DEFAULT_X = "critic_depth"
RANDOM_BASELINE = ("eval/", "eval/random_")  # eval/X of the uniform random policy is logged as eval/random_X at epoch 0
RECORD_KEYS = ("env_steps", "wall_s", "epoch")  # bookkeeping keys of a metrics.jsonl record, not metrics
OFFLINE_X = "grad_steps"  # the curves' x of offline runs, which make no env steps
SEED_FIELDS = ("seed", "num_seeds", "run_dir")  # what a cell averages over, and where a run lives
BOOKKEEPING_FIELDS = ("progress", "tensorboard", "random_baseline", "nan_rollbacks", "num_devices")
BOOKKEEPING_PREFIXES = ("checkpoint_", "keep_")
RUN_MARKERS = ("config.yaml", "status.json", "input.yaml")  # a folder holding one of these is a run dir
FAILED = "failed"
OUTPUTS = ("report.md", "report.csv", "curves.png", "depth.png", "depth.svg")
USAGE_ERROR = 2
SE_SIGNIFICANT_DIGITS = 2  # a row of the Markdown table is rounded to the 2nd significant digit of its s.e.
MEAN_SIGNIFICANT_DIGITS = 3  # ... or, where there is no s.e. (one seed, or seeds that agree), to the mean's 3rd
MAX_DECIMALS = 6  # never more decimals than this, however small the s.e.
ROUNDING_RULE = (f"Every mean ± s.e. is rounded to {SE_SIGNIFICANT_DIGITS} significant digits of its s.e. (to "
                 f"{MEAN_SIGNIFICANT_DIGITS} significant digits of the mean where the s.e. is n/a or 0); values "
                 f"without an s.e. to {MEAN_SIGNIFICANT_DIGITS} significant digits.")


class ReportError(ValueError):
    """Nothing sensible to report; the message names the problem and the fix."""


@dataclasses.dataclass
class Seed:
    seed: Any
    path: Path  # its metrics.jsonl
    records: list[dict]


@dataclasses.dataclass
class Run:
    name: str  # path relative to the sweep dir
    path: Path
    config: dict | None
    seeds: list[Seed]
    status: dict
    problems: list[str]  # why (part of) this run is not in the table, or what to check

    @property
    def state(self) -> str:
        return self.status.get("state") or ("no config" if self.config is None else "unknown")

    @property
    def log(self) -> Path | None:
        log = self.path / self.status.get("log", "train.log")
        return log if log.exists() else None

    @property
    def included(self) -> bool:
        return self.config is not None and self.state != FAILED


@dataclasses.dataclass
class Cell:
    values: dict[str, Any]  # the varying fields
    finals: list[float] = dataclasses.field(default_factory=list)  # one per seed
    last_epochs: list[int] = dataclasses.field(default_factory=list)
    evaluations: list[int] = dataclasses.field(default_factory=list)  # per seed: evaluations its final value averages
    num_epochs: set = dataclasses.field(default_factory=set)
    curves: list[tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)  # (env_steps, metric)
    randoms: list[float] = dataclasses.field(default_factory=list)
    seed_ids: list = dataclasses.field(default_factory=list)
    running: bool = False
    curve_keys: set = dataclasses.field(default_factory=set)  # the records' keys its curves' x come from

    @property
    def n(self) -> int:
        return len(self.finals)

    @property
    def mean(self) -> float:
        return float(np.mean(self.finals))

    @property
    def sem(self) -> float:
        """Standard error over seeds; nan for a single seed."""
        return float(np.std(self.finals, ddof=1) / math.sqrt(self.n)) if self.n > 1 else float("nan")

    @property
    def random(self) -> float:
        return float(np.mean(self.randoms)) if self.randoms else float("nan")

    @property
    def unfinished(self) -> bool:
        return len(set(self.last_epochs)) > 1 or any(e < max(self.num_epochs, default=0) for e in self.last_epochs)

    def note(self) -> str:
        notes = []
        if self.unfinished:
            notes.append(f"unfinished: final epochs {_span(self.last_epochs)} of {_span(self.num_epochs)}")
        if self.running:
            notes.append("still running")
        duplicates = sorted({str(s) for s in self.seed_ids if self.seed_ids.count(s) > 1})
        if duplicates:
            notes.append(f"seed {', '.join(duplicates)} counted more than once")
        return "; ".join(notes)


def _span(values) -> str:
    low, high = min(values, default=0), max(values, default=0)
    return f"{low}" if low == high else f"{low}-{high}"


# --- reading runs ---------------------------------------------------------------------------------------------

def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ReportError(f"{path}: cannot read it as YAML ({err}); fix or remove the file") from err


def read_metrics(path: Path, problems: list[str]) -> list[dict]:
    """The JSON records of one metrics.jsonl; a torn last line (a run writing right now) is skipped."""
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                problems.append(f"{path.name} line {number} is not JSON (skipped)")
    return records


def find_run_dirs(root: Path) -> list[Path]:
    """Folders under root holding config.yaml (crl train) or status.json / input.yaml (crl sweep); not nested."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if any(marker in filenames for marker in RUN_MARKERS):
            found.append(Path(dirpath))
            dirnames.clear()  # seeds/, checkpoints/, tb/ belong to this run
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)


def _run_config(path: Path) -> dict | None:
    for name in ("config.yaml", "input.yaml"):  # crl train's resolved config, else what crl sweep asked for
        if (path / name).exists():
            data = _load_yaml(path / name) or {}
            config = data.get("config", data) if isinstance(data, dict) else None
            if isinstance(config, dict):
                return config
    return None


def _seed_id(name: str) -> int | str:
    """A seeds/<seed>/ folder's seed: an int when the name is one."""
    return int(name) if name.lstrip("-").isdigit() else name


def load_run(path: Path, root: Path) -> Run:
    """One run dir: config, status and per-seed records (seeds/<seed>/metrics.jsonl, else metrics.jsonl)."""
    problems: list[str] = []
    status_path = path / "status.json"
    try:
        status = json.loads(status_path.read_text()) if status_path.exists() else {}
    except json.JSONDecodeError:
        status, problems = {}, [*problems, "status.json is not valid JSON"]
    config = _run_config(path)
    seed_files = sorted((path / "seeds").glob("*/metrics.jsonl"), key=lambda p: sort_key(_seed_id(p.parent.name)))
    if seed_files:
        seeds = [Seed(_seed_id(p.parent.name), p, read_metrics(p, problems)) for p in seed_files]
    elif (single := path / "metrics.jsonl").exists():
        seeds = [Seed((config or {}).get("seed"), single, read_metrics(single, problems))]
    else:
        seeds = []
    seeds_with_records = [s for s in seeds if s.records]
    if config is None:
        problems.append("no config.yaml or input.yaml")
    if not seeds_with_records:
        problems.append("no metrics yet")
    elif config and len(seeds) < int(config.get("num_seeds") or 1):
        problems.append(f"{len(seeds)} of {config['num_seeds']} seeds have metrics")
    if status.get("state") == FAILED:
        code = status.get("exit_code")
        problems.insert(0, f"failed (exit code {code})" if code is not None else "failed")
    name = str(path.relative_to(root)) if path != root else path.name
    return Run(name, path, config, seeds_with_records, status, problems)


def with_learners(run: Run) -> list[Run]:
    """A run with extra learners (config `learners`) as one run per learner plus its collector, told apart by a
    `learner` field; each learner's config is the run's with its overrides, its records its own metrics."""
    entries = (run.config or {}).get("learners") or []
    if not entries:
        return [run]
    try:
        specs = parse_learners(entries)
    except ValueError as err:
        run.problems.append(f"its learners cannot be read ({err}); reported as one run")
        return [run]
    collector = _learner_run(run, COLLECTOR, {}, lambda key: None if key.startswith(LEARNER_PREFIX) else key)
    return [collector, *(_learner_run(run, spec.name, spec.overrides, _learner_keys(spec.name)) for spec in specs)]


def _learner_keys(name: str):
    """key -> the learner's own name for it: its learner/<name>/ metrics unprefixed, the bookkeeping keys and the
    random baseline (the same env) kept, everything else (the collector's and other learners' metrics) dropped."""
    prefix = f"{LEARNER_PREFIX}{name}/"

    def rename(key: str) -> str | None:
        if key.startswith(prefix):
            return key.removeprefix(prefix)
        return key if key in RECORD_KEYS or key.startswith(RANDOM_BASELINE[1]) else None

    return rename


def _learner_run(run: Run, name: str, overrides: dict, rename) -> Run:
    """One learner's view of a run: its config, and each record's keys through `rename` (None drops a key)."""
    seeds = [Seed(seed.seed, seed.path, [{new: value for key, value in record.items()
                                          if (new := rename(key)) is not None} for record in seed.records])
             for seed in run.seeds]
    config = {**run.config, **overrides, "learner": name}
    return Run(f"{run.name} [{name}]", run.path, config, seeds, run.status, list(run.problems))


def load_sweep(root: Path) -> tuple[list[Run], list[str]]:
    """Every run under root (plus runs sweep.yaml lists that have no folder yet) and sweep.yaml's axes."""
    if not root.is_dir():
        raise ReportError(f"{root} is not a directory; give the folder `crl sweep` wrote (or a folder of run dirs)")
    spec = _load_yaml(root / "sweep.yaml") if (root / "sweep.yaml").exists() else {}
    spec = spec if isinstance(spec, dict) else {}
    runs = [part for path in find_run_dirs(root) for part in with_learners(load_run(path, root))]
    names = {run.name for run in runs}
    for entry in spec.get("runs") or []:
        name = str(Path("runs") / str(entry.get("id"))) if isinstance(entry, dict) else None
        if name and name not in names:
            runs.append(Run(name, root / name, None, [], {"state": "not started"},
                            [f"not started (overrides {entry.get('overrides')})"]))
    if not runs:
        raise ReportError(f"no runs under {root}: looked for folders holding {', '.join(RUN_MARKERS)} "
                          "(written by `crl train --run-dir DIR` and `crl sweep`); point at the sweep dir or a folder "
                          "of run dirs")
    axes = spec.get("axes") or []
    return runs, list(axes.keys() if isinstance(axes, dict) else axes)


# --- cells ----------------------------------------------------------------------------------------------------

def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def sort_key(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, "" if value is None else str(value))


def _bookkeeping(name: str) -> bool:
    return name in SEED_FIELDS or name in BOOKKEEPING_FIELDS or name.startswith(BOOKKEEPING_PREFIXES)


def varying_fields(runs: list[Run], axes: list[str] = ()) -> list[str]:
    """The config fields that define cells: sweep.yaml's axes (those that are config fields, seeds aside), then
    every other non-bookkeeping field that varies across the runs of the table, so that runs that differ (say,
    by a `config` preset axis) are never pooled. A failed run's config does not add a column."""
    configs = [run.config for run in runs if run.included and run.seeds] or [r.config for r in runs if r.config]
    present = list(dict.fromkeys(name for config in configs for name in config))
    axes = [a for a in axes if isinstance(a, str) and a in present and a not in SEED_FIELDS]
    varying = [name for name in present if not _bookkeeping(name)
               and len({_hashable(config.get(name)) for config in configs}) > 1]
    return list(dict.fromkeys([*axes, *varying]))


def final_value(values: list[float], last: int) -> float:
    """A seed's final value: the mean of its last `last` evaluations (all of them if it has fewer)."""
    return float(np.mean(values[-last:]))


def random_baseline_key(metric: str) -> str | None:
    """Where the random policy's value of an eval metric is logged (epoch 0); None for other metrics."""
    prefix, random_prefix = RANDOM_BASELINE
    if metric.startswith(prefix) and not metric.startswith(random_prefix):
        return random_prefix + metric.removeprefix(prefix)
    return None


def build_cells(runs: list[Run], fields: list[str], metric: str, last: int) -> list[Cell]:
    """Group the seeds of the included runs by the values of `fields`, sorted by those values."""
    random_key = random_baseline_key(metric)
    cells: dict[tuple, Cell] = {}
    for run in (r for r in runs if r.included):
        key = tuple(_hashable(run.config.get(f)) for f in fields)
        cell = cells.setdefault(key, Cell(dict(zip(fields, key))))
        for seed in run.seeds:
            records = [r for r in seed.records if metric in r]
            if not records:
                run.problems.append(f"seed {seed.seed}: no '{metric}' in {seed.path.name}")
                continue
            cell.finals.append(final_value([r[metric] for r in records], last))
            cell.evaluations.append(min(last, len(records)))
            cell.last_epochs.append(max(int(r.get("epoch", 0)) for r in seed.records))
            cell.num_epochs.add(int(run.config.get("num_epochs") or cell.last_epochs[-1]))
            x_key = curve_x_key(records)
            cell.curve_keys.add(x_key)
            cell.curves.append((np.array([r.get(x_key, r.get("epoch", 0)) for r in records], float),
                                np.array([r[metric] for r in records], float)))
            cell.randoms += [r[random_key] for r in seed.records if r.get("epoch") == 0 and random_key in r][:1]
            cell.seed_ids.append(seed.seed)
            cell.running |= run.state == "running"
    return sorted((c for c in cells.values() if c.n), key=lambda c: tuple(sort_key(v) for v in c.values.values()))


def curve_x_key(records: list[dict]) -> str:
    """A curve's x: env steps; SGD steps for an offline run (it logs no env steps)."""
    return "env_steps" if any(r.get("env_steps") for r in records) else OFFLINE_X


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds at each env-step count and its s.e. (0 where only one seed got there)."""
    steps = np.unique(np.concatenate([s for s, _ in curves]))
    means, sems = np.empty(len(steps)), np.zeros(len(steps))
    for i, step in enumerate(steps):
        values = np.array([v[s == step][-1] for s, v in curves if np.any(s == step)])
        means[i] = values.mean()
        if len(values) > 1:
            sems[i] = values.std(ddof=1) / math.sqrt(len(values))
    return steps, means, sems


def available_metrics(runs: list[Run]) -> list[str]:
    return sorted({k for run in runs for seed in run.seeds for r in seed.records for k in r} - set(RECORD_KEYS))


def choose_x(fields: list[str], cells: list[Cell], requested: str | None) -> str | None:
    """--x, else critic_depth if it varies, else the first numeric varying field, else the first varying field."""
    if requested:
        if requested not in fields:
            raise ReportError(f"--x {requested}: not a field that varies across these runs; varying: "
                              f"{', '.join(fields) or 'none (every run has the same config)'}")
        return requested
    if DEFAULT_X in fields:
        return DEFAULT_X
    numeric = [f for f in fields if all(sort_key(c.values[f])[0] == 0 for c in cells)]
    return (numeric or fields or [None])[0]


# --- outputs --------------------------------------------------------------------------------------------------

def metric_label(metric: str) -> str:
    return f"{METRIC_LABELS[metric]} ({metric})" if metric in METRIC_LABELS else metric


def _decimals_for(value: float, digits: int) -> int:
    """Decimals that keep `digits` significant digits of value (0 for 0 or for large values)."""
    if value == 0 or not math.isfinite(value):
        return 0
    return min(MAX_DECIMALS, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def row_decimals(mean: float, sem: float) -> int:
    """The one rounding rule of the table: to the 2nd significant digit of the s.e., else the mean's 3rd."""
    if math.isfinite(sem) and sem > 0:
        return _decimals_for(sem, SE_SIGNIFICANT_DIGITS)
    return _decimals_for(mean, MEAN_SIGNIFICANT_DIGITS)


def _number(value: float, decimals: int) -> str:
    """value with that many decimals; n/a for nan (the s.e. of one seed, a missing baseline)."""
    return f"{value:.{decimals}f}" if math.isfinite(value) else "n/a"


def mean_and_sem(mean: float, sem: float) -> str:
    """"mean ± s.e.", both rounded by row_decimals."""
    decimals = row_decimals(mean, sem)
    return f"{_number(mean, decimals)} ± {_number(sem, decimals)}"


def significant(value: float) -> str:
    """A value without an s.e. (the random policy's), to MEAN_SIGNIFICANT_DIGITS significant digits."""
    return _number(value, _decimals_for(value, MEAN_SIGNIFICANT_DIGITS))


def evaluations_text(cells: list[Cell]) -> str:
    """How many evaluations the final values really average, e.g. "5" or "3-5" (runs shorter than --last)."""
    return _span([count for c in cells for count in c.evaluations])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def markdown_table(cells: list[Cell], fields: list[str], metric: str) -> list[str]:
    with_random = any(c.randoms for c in cells)
    header = [*(fields or ["runs"]), "n", f"{metric_label(metric)} mean ± s.e.",
              *(["random policy"] if with_random else []), "final epoch", "note"]
    rows = [" | ".join(header), " | ".join("---" for _ in header)]
    for c in cells:
        row = [*([_text(c.values[f]) for f in fields] or ["all"]), str(c.n), mean_and_sem(c.mean, c.sem),
               *([significant(c.random)] if with_random else []), _span(c.last_epochs), c.note()]
        rows.append(" | ".join(row))
    return [f"| {row} |" for row in rows]


def problem_lines(runs: list[Run], root: Path) -> list[str]:
    lines = []
    for run in runs:
        if not run.problems:
            continue
        where = "not in the table" if not run.included or not run.seeds else "in the table"
        log = f"; log: {run.log.relative_to(root) if run.log.is_relative_to(root) else run.log}" if run.log else ""
        lines.append(f"- `{run.name}` ({run.state}, {where}): {'; '.join(run.problems)}{log}")
    return lines


CSV_COLUMNS = ("metric", "n", "mean", "sem", "random_mean", "final_epoch_min", "final_epoch_max", "unfinished")


def write_csv(path: Path, cells: list[Cell], fields: list[str], metric: str) -> None:
    """One row per cell; floats written exactly (repr), nan where undefined (s.e. of one seed, no baseline)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*fields, *CSV_COLUMNS])
        for c in cells:
            writer.writerow([*(_text(c.values[x]) for x in fields), metric, c.n, repr(c.mean), repr(c.sem),
                             repr(c.random), min(c.last_epochs), max(c.last_epochs), int(c.unfinished)])


def write_markdown(path: Path, root: Path, table: list[str], problems: list[str], metric: str, last: int,
                   evaluations: str) -> None:
    text = [f"# Report: {root}", "",
            f"Final {metric_label(metric)} per cell: each seed's value is the mean of its last {last} evaluations "
            f"(fewer if it has fewer; here {evaluations}); the table gives the mean over seeds ± the standard error "
            f"(sample std, ddof=1, / sqrt(n); n/a for one seed). {ROUNDING_RULE}", "", *table, "",
            "Plots: `curves.png` (learning curves, mean ± s.e. over seeds), `depth.png` / `depth.svg`.", ""]
    if problems:
        text += ["## Failed, missing or partial runs", "", *problems, ""]
    path.write_text("\n".join(text))


def _fallback_metric(runs: list[Run], metric: str) -> str:
    """The default metric, or OGBench's success rate when no run logs time at goal (OGBench-evaluated runs)."""
    logged = {key for run in runs for seed in run.seeds for r in seed.records for key in r}
    if metric == DEFAULT_METRIC and metric not in logged and OGBENCH_METRIC in logged:
        print(f"crl report: no run logs {DEFAULT_METRIC}; reporting {OGBENCH_METRIC} (OGBench's success rate)")
        return OGBENCH_METRIC
    return metric


def report(root: Path, out: Path, metric: str = DEFAULT_METRIC, x: str | None = None,
           last: int = DEFAULT_LAST) -> dict[str, Path]:
    """Read the runs under root, write the report files into out; returns {name: path}. Raises ReportError."""
    from crl import report_plots

    runs, axes = load_sweep(root)
    if not any(run.seeds for run in runs):
        raise ReportError(f"none of the {len(runs)} runs under {root} has metrics yet:\n"
                          + "\n".join(problem_lines(runs, root)))
    metric = _fallback_metric(runs, metric)
    if not any(metric in r for run in runs for seed in run.seeds for r in seed.records):
        raise ReportError(f"metric '{metric}' is in no run under {root}; pick one with --metric from: "
                          f"{', '.join(available_metrics(runs))}")
    fields = varying_fields(runs, axes)
    cells = build_cells(runs, fields, metric, last)
    if not cells:
        raise ReportError(f"no finished or running run under {root} logs '{metric}':\n"
                          + "\n".join(problem_lines(runs, root)))
    x = choose_x(fields, cells, x)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in OUTPUTS}
    table = markdown_table(cells, fields, metric)
    problems = problem_lines(runs, root)
    write_markdown(paths["report.md"], root, table, problems, metric, last, evaluations_text(cells))
    write_csv(paths["report.csv"], cells, fields, metric)
    groups = [f for f in fields if f != x]
    report_plots.curves(cells, x, groups, metric).savefig(paths["curves.png"])
    depth = report_plots.final_vs_x(cells, x, groups, metric, evaluations_text(cells))
    depth.savefig(paths["depth.png"])
    depth.savefig(paths["depth.svg"])
    print("\n".join(table))
    if problems:
        print("\nfailed, missing or partial runs:\n" + "\n".join(problems))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crl report", description=" ".join(__doc__.split()))
    parser.add_argument("sweep_dir", help="folder written by `crl sweep`, or any folder of run dirs")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"default: {DEFAULT_METRIC} (time at goal)")
    parser.add_argument("--x", default=None, help=f"field on the x axis; default: {DEFAULT_X} if it varies, "
                        "else the first numeric field that varies")
    parser.add_argument("--last", type=int, default=DEFAULT_LAST, help="evaluations averaged per seed: the last N of each run (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder; default: SWEEP_DIR")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.last < 1:
        parser.error(f"--last {args.last}: must be at least 1")
    root = Path(args.sweep_dir)
    try:
        paths = report(root, Path(args.out) if args.out else root, args.metric, args.x, args.last)
    except ReportError as err:
        print(f"crl report: {err}", file=sys.stderr)
        return USAGE_ERROR
    for path in paths.values():
        print(f"crl report: wrote {path}")
    return 0
