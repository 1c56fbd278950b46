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


class RunLogger:
    """Writes one run's artefacts: config.yaml at start, one JSON line and tensorboard scalars per log call."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, plan: StepPlan, extra: dict[str, Any] | None = None,
                 resume_epoch: int | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.run_dir / "config.yaml"
        resolved = {"config": to_dict(cfg), "step_plan": dataclasses.asdict(plan),
                    "versions": library_versions(), "command": " ".join(sys.argv), **(extra or {})}
        if resume_epoch is not None and config_path.exists():
            previous = yaml.safe_load(config_path.read_text()) or {}
            changed = {k: [v, resolved["config"][k]] for k, v in previous.get("config", {}).items()
                       if resolved["config"].get(k) != v}
            resolved["resumes"] = [*previous.get("resumes", []), {"from_epoch": resume_epoch, "changed": changed,
                                                                  "command": resolved["command"]}]
        config_path.write_text(yaml.safe_dump(resolved, sort_keys=False))
        self.history: list[dict[str, float]] = []
        self._jsonl = None
        self.truncate(resume_epoch)
        self._tb = None
        if cfg.tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"))
        self._start = time.time()

    def truncate(self, epoch: int | None) -> None:
        """Keep metrics.jsonl (and history) up to `epoch`; later records are produced again after a restore."""
        path = self.run_dir / "metrics.jsonl"
        if self._jsonl is not None:
            self._jsonl.close()
        if epoch is not None and path.exists():
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            kept = [r for r in records if r.get("epoch", 0) <= epoch]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))
            self.history[:] = kept
        self._jsonl = open(path, "a", buffering=1)

    def log(self, step: int, metrics: dict[str, Any]) -> dict[str, float]:
        record = {"env_steps": int(step), "wall_s": round(time.time() - self._start, 3)}
        record.update({k: _scalar(v) for k, v in metrics.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key != "env_steps":
                    self._tb.add_scalar(key, value, global_step=int(step))
            self._tb.flush()
        return record

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def progress_line(epoch: int, num_epochs: int, record: dict[str, float], headline: str, eta_s: float) -> str:
    """One human-readable line per epoch; also what batch logs show."""
    return (f"epoch {epoch:>4}/{num_epochs}  env_steps {int(record['env_steps']):>11,}  "
            f"sps {record.get('training/sps', float('nan')):>9.0f}  "
            f"{headline.removeprefix('eval/')} {record.get(headline, float('nan')):8.2f}  "
            f"critic_loss {record.get('training/critic_loss', float('nan')):7.3f}  "
            f"ETA {format_duration(eta_s)}")
