"""`crl plot`: learning curves of one or several runs (headline metric and losses against env steps)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from crl.report import Run, load_run, mean_curve, metric_label, random_baseline_key
from crl.report_plots import (BAND_ALPHA, GRID_ALPHA, baseline, baseline_entry, figure_title, legend_below,
                              line_style, panel_figure, panel_title, respect_range)
from crl.viz.run_view import VizError

DEFAULT_METRICS = ("eval/episode_success", "training/critic_loss", "training/actor_loss", "training/alpha")
X_KEY = "env_steps"
BASELINE_LABEL = "random policy (dotted, in each run's colour)"


def run_label(run: Run) -> str:
    cfg = run.config or {}
    depth = f"critic depth {cfg.get('critic_depth')}, actor depth {cfg.get('actor_depth')}" if cfg else ""
    return f"{run.path.name} ({cfg.get('env', '?')}, {depth})" if depth else run.path.name


def load_runs(run_dirs: list[str]) -> list[Run]:
    runs = []
    for path in map(Path, run_dirs):
        if not path.is_dir():
            raise VizError(f"{path}: no such run directory")
        run = load_run(path, path.parent)
        if not run.seeds:
            raise VizError(f"{path}: no metrics.jsonl with records there; is it a crl run directory "
                           f"(problems: {'; '.join(run.problems)})?")
        runs.append(run)
    return runs


def curve(run: Run, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(env steps, mean over seeds, s.e.) of a metric; None when no seed logged it."""
    per_seed = []
    for seed in run.seeds:
        points = [(r[X_KEY], r[metric]) for r in seed.records if metric in r and X_KEY in r]
        if points:
            per_seed.append(tuple(np.asarray(v, np.float64) for v in zip(*points)))
    return mean_curve(per_seed) if per_seed else None


def learning_curves(runs: list[Run], metrics: tuple[str, ...] = DEFAULT_METRICS):
    """One panel per metric, one line per run (mean over its seeds, shaded ± s.e.)."""
    available = [m for m in metrics if any(curve(r, m) is not None for r in runs)]
    if not available:
        raise VizError(f"none of {list(metrics)} is logged by {[r.path.name for r in runs]}; pick --metrics "
                       "from their metrics.jsonl keys")
    fig, axes = panel_figure(len(available))
    for ax, metric in zip(axes, available):
        for index, run in enumerate(runs):
            values = curve(run, metric)
            if values is None:
                continue
            x, mean, sem = values
            line, = ax.plot(x, mean, color=run_color(index), label=run_label(run), **line_style(index))
            ax.fill_between(x, mean - sem, mean + sem, color=line.get_color(), alpha=BAND_ALPHA, linewidth=0)
            random_value = _random_baseline(run, metric)
            if random_value is not None:
                baseline(ax, random_value, line.get_color())
        baseline_entry(ax, BASELINE_LABEL)
        ax.set_xlabel("env steps")
        ax.set_ylabel(metric_label(metric))
        panel_title(ax, metric)
        ax.grid(alpha=GRID_ALPHA)
        respect_range(ax, metric)
    figure_title(fig, f"learning curves of {len(runs)} run{'s' if len(runs) > 1 else ''}: mean over "
                      f"{seed_counts(runs)} ± s.e.")
    legend_below(fig, axes)
    return fig


def run_color(index: int) -> str:
    """The index-th run's colour in every panel, also where an earlier run lacks the panel's metric (the legend
    below the panels shows each run once)."""
    return f"C{index}"  # matplotlib's colour cycle, wrapping around


def seed_counts(runs: list[Run]) -> str:
    """"1 seed", "3 seeds" or "1-3 seeds" (per run): the figure title's short account of the seeds."""
    low, high = min(len(r.seeds) for r in runs), max(len(r.seeds) for r in runs)
    count = f"{low}" if low == high else f"{low}-{high}"
    return f"{count} seed{'' if count == '1' else 's'}"


def _random_baseline(run: Run, metric: str) -> float | None:
    key = random_baseline_key(metric)
    if key is None:
        return None
    values = [r[key] for s in run.seeds for r in s.records if key in r]
    return float(np.mean(values)) if values else None
