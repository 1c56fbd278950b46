"""Run directory and logging sinks: resolved config, metrics.jsonl, tensorboard events, progress lines."""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from crl.config import StepPlan, TrainConfig, to_dict

RUNS_ROOT = "runs"
VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "brax", "mujoco", "mujoco-mjx", "orbax-checkpoint")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on, for configs and benchmark reports."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(RUNS_ROOT) / f"{cfg.env}-c{cfg.critic_depth}-a{cfg.actor_depth}-s{cfg.seed}-{stamp}"


def _scalar(value: Any) -> float | int:
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else float("nan")


SEEDS_DIR = "seeds"  # a K-seed run logs seed s to RUN_DIR/seeds/<s>/metrics.jsonl (tb events beside it)
METRICS_FILE = "metrics.jsonl"


def metrics_dirs(run_dir: Path, seeds: list[int]) -> list[Path]:
    """Where each seed's metrics go: the run dir itself for one seed, RUN_DIR/seeds/<seed> for several."""
    return [run_dir] if len(seeds) == 1 else [run_dir / SEEDS_DIR / str(seed) for seed in seeds]


class MetricsLog:
    """One seed's metrics.jsonl (and tensorboard events); None directory: keep the history in memory only."""

    def __init__(self, directory: Path | None, tensorboard: bool, resume_epoch: int | None):
        self.directory = directory
        self.history: list[dict[str, float]] = []
        self._jsonl = None
        self._tb = None
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.truncate(resume_epoch)
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(directory / "tb"))

    def truncate(self, epoch: int | None) -> None:
        """Keep records up to `epoch`; later records are produced again after a restore."""
        if self.directory is None:
            self.history[:] = [r for r in self.history if epoch is None or r.get("epoch", 0) <= epoch]
            return
        path = self.directory / METRICS_FILE
        if self._jsonl is not None:
            self._jsonl.close()
        if epoch is not None and path.exists():
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            kept = [r for r in records if r.get("epoch", 0) <= epoch]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))
            self.history[:] = kept
        self._jsonl = open(path, "a", buffering=1)

    def write(self, record: dict[str, float]) -> None:
        self.history.append(record)
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key != "env_steps":
                    self._tb.add_scalar(key, value, global_step=int(record["env_steps"]))
            self._tb.flush()

    def close(self) -> None:
        for sink in (self._jsonl, self._tb):
            if sink is not None:
                sink.close()


def mean_record(records: list[dict[str, float]]) -> dict[str, float]:
    """Per-key mean over seeds' records of one epoch (what progress lines and the best checkpoint use)."""
    return {key: sum(r[key] for r in records) / len(records) for key in records[0]}


def with_resume(resolved: dict[str, Any], previous: dict[str, Any], resume_epoch: int) -> dict[str, Any]:
    """config.yaml after a resume: the launch `command:` stays; this resume (epoch, changed fields, command) is
    appended to `resumes:`, so the file tells how the run was started and every way it was continued."""
    changed = {k: [v, resolved["config"][k]] for k, v in previous.get("config", {}).items()
               if resolved["config"].get(k) != v}
    resume = {"from_epoch": resume_epoch, "changed": changed, "command": resolved["command"]}
    return {**resolved, "command": previous.get("command", resolved["command"]),
            "resumes": [*previous.get("resumes", []), resume]}


class RunLogger:
    """Writes one run's artefacts: config.yaml at start, then per log call one JSON line per seed.

    Only the writing process (process 0 of a multi-host run) touches files; the others keep histories.
    """

    def __init__(self, run_dir: Path, cfg: TrainConfig, plan: StepPlan, extra: dict[str, Any] | None = None,
                 resume_epoch: int | None = None, seeds: list[int] | None = None, writer: bool = True):
        self.run_dir = Path(run_dir)
        seeds = seeds or [cfg.seed]
        if writer:
            self._write_config(cfg, plan, extra, resume_epoch)
        self.seed_logs = [MetricsLog(d if writer else None, cfg.tensorboard, resume_epoch)
                          for d in metrics_dirs(self.run_dir, seeds)]
        self.history = [mean_record(list(rs)) for rs in zip(*(log.history for log in self.seed_logs))]
        self._start = time.time()

    def _write_config(self, cfg: TrainConfig, plan: StepPlan, extra: dict[str, Any] | None,
                      resume_epoch: int | None) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.run_dir / "config.yaml"
        resolved = {"config": to_dict(cfg), "step_plan": dataclasses.asdict(plan),
                    "versions": library_versions(), "command": " ".join(sys.argv), **(extra or {})}
        if resume_epoch is not None and config_path.exists():
            resolved = with_resume(resolved, yaml.safe_load(config_path.read_text()) or {}, resume_epoch)
        config_path.write_text(yaml.safe_dump(resolved, sort_keys=False))

    def truncate(self, epoch: int | None) -> None:
        for log in self.seed_logs:
            log.truncate(epoch)
        self.history[:] = [r for r in self.history if epoch is None or r.get("epoch", 0) <= epoch]

    def log(self, step: int, per_seed: list[dict[str, Any]]) -> dict[str, float]:
        """Write one record per seed; returns their mean (the record itself for one seed)."""
        base = {"env_steps": int(step), "wall_s": round(time.time() - self._start, 3)}
        records = [{**base, **{k: _scalar(v) for k, v in metrics.items()}} for metrics in per_seed]
        for log, record in zip(self.seed_logs, records, strict=True):
            log.write(record)
        summary = records[0] if len(records) == 1 else mean_record(records)
        self.history.append(summary)
        return summary

    def close(self) -> None:
        for log in self.seed_logs:
            log.close()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


PROGRESS_LOSSES = ("critic_loss", "bc_loss", "actor_loss")  # the first one a run logs is shown per epoch


def rate_text(record: dict[str, float]) -> str:
    """Env steps per second, or SGD steps per second for an offline run (which makes no env steps)."""
    if "training/sps" not in record and "training/sgd_steps_per_s" in record:
        return f"sgd/s {record['training/sgd_steps_per_s']:>7.0f}"
    return f"sps {record.get('training/sps', float('nan')):>9.0f}"


def progress_line(epoch: int, num_epochs: int, record: dict[str, float], headline: str, eta_s: float) -> str:
    """One human-readable line per epoch; also what batch logs show."""
    loss = next((name for name in PROGRESS_LOSSES if f"training/{name}" in record), None)
    loss_text = f"{loss} {record[f'training/{loss}']:7.3f}  " if loss else ""
    return (f"epoch {epoch:>4}/{num_epochs}  env_steps {int(record['env_steps']):>11,}  "
            f"{rate_text(record)}  "
            f"{headline.removeprefix('eval/')} {record.get(headline, float('nan')):8.2f}  "
            f"{loss_text}ETA {format_duration(eta_s)}")
