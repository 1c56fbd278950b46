"""`crl report`: final values (mean of the last evaluations, mean ± s.e. over seeds), layouts, failures, files."""
import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml

from crl import report
from crl.config import TrainConfig, to_dict

NUM_EPOCHS = 8
STEPS_PER_EPOCH = 1000
METRIC = report.DEFAULT_METRIC
RANDOM_KEY = "eval/random_episode_success"


def curve(depth: int, seed: int, env: str = "point_u_maze", epochs: int = NUM_EPOCHS) -> np.ndarray:
    """A distinct, deterministic learning curve per (depth, seed, env): epochs 0..epochs."""
    offset = 100.0 if env == "ant" else 0.0
    return offset + depth * np.arange(epochs + 1) + 0.37 * seed ** 2 + np.sin(depth + seed + np.arange(epochs + 1))


def records(values: np.ndarray, random: float | None = 1.5) -> list[dict]:
    out = []
    for epoch, value in enumerate(values):
        record = {"env_steps": (epoch + 1) * STEPS_PER_EPOCH, "wall_s": float(epoch), "epoch": epoch, METRIC: value,
                  "training/critic_loss": 1.0 / (epoch + 1)}
        if epoch == 0 and random is not None:
            record[RANDOM_KEY] = random
        out.append(record)
    return out


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_run(run_dir, metrics=None, seeds=None, state=None, exit_code=None, **fields):
    """A synthetic run dir as crl train and crl sweep leave it: config.yaml, metrics, optionally status.json.

    `metrics`: records of a one-seed run; `seeds`: {seed: records} of a vmapped multi-seed run."""
    cfg = to_dict(TrainConfig(**{"num_epochs": NUM_EPOCHS, "run_dir": str(run_dir), **fields}))
    if seeds:
        cfg["num_seeds"] = len(seeds)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"config": cfg, "step_plan": {}}, sort_keys=False))
    if metrics is not None:
        write_jsonl(run_dir / "metrics.jsonl", metrics)
    for seed, rows in (seeds or {}).items():
        write_jsonl(run_dir / "seeds" / str(seed) / "metrics.jsonl", rows)
    if state:
        (run_dir / "train.log").write_text("Traceback ...\n")
        (run_dir / "status.json").write_text(json.dumps({"state": state, "exit_code": exit_code, "log": "train.log"}))
    return run_dir


def expected(values_per_seed: list[np.ndarray], last: int = 5) -> tuple[float, float]:
    finals = np.array([v[-last:].mean() for v in values_per_seed])
    return finals.mean(), finals.std(ddof=1) / math.sqrt(len(finals))


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


DEPTHS, SEEDS = (4, 8, 16), (0, 1, 2)


@pytest.fixture
def depth_sweep(tmp_path):
    root = tmp_path / "sweep"
    for depth in DEPTHS:
        for seed in SEEDS:
            write_run(root / "runs" / f"d{depth}-s{seed}", records(curve(depth, seed)), critic_depth=depth, seed=seed)
    return root


def test_final_values_match_numpy(depth_sweep, capsys):
    assert report.main([str(depth_sweep)]) == 0
    rows = read_csv(depth_sweep / "report.csv")
    assert [int(r["critic_depth"]) for r in rows] == list(DEPTHS)
    for row, depth in zip(rows, DEPTHS):
        mean, sem = expected([curve(depth, s) for s in SEEDS])
        assert (int(row["n"]), float(row["mean"]), float(row["sem"])) == (3, pytest.approx(mean, rel=1e-12),
                                                                         pytest.approx(sem, rel=1e-12))
        assert float(row["random_mean"]) == 1.5 and row["unfinished"] == "0"
    for name in report.OUTPUTS:
        assert (depth_sweep / name).stat().st_size > 0
    assert (depth_sweep / "depth.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (depth_sweep / "depth.svg").read_text()
    md = (depth_sweep / "report.md").read_text()
    mean, sem = expected([curve(4, s) for s in SEEDS])
    assert f"| 4 | 3 | {report.mean_and_sem(mean, sem)} | 1.50 |" in md
    out = capsys.readouterr().out
    assert "time at goal" in out and f"wrote {depth_sweep / 'curves.png'}" in out


@pytest.mark.parametrize("mean, sem, text", [
    (14.53, 5.41, "14.5 ± 5.4"), (4.545, 2.722, "4.5 ± 2.7"),  # the two cells that were rounded differently
    (0.01234, 0.00111, "0.0123 ± 0.0011"), (1234.5, 250.0, "1234 ± 250"), (0.8, 0.0996, "0.800 ± 0.100"),
    (14.5, float("nan"), "14.5 ± n/a"), (0.0, 0.0, "0 ± 0"), (2.0 / 3, 0.0, "0.667 ± 0.000")])
def test_one_rounding_rule_for_every_cell(mean, sem, text):
    assert report.mean_and_sem(mean, sem) == text


def test_table_cells_follow_the_rounding_rule(tmp_path):
    root = tmp_path / "runs"
    for depth, values in ((4, [10.0, 20.0, 13.5]), (16, [2.0, 9.0, 2.6])):  # s.e. 2.93 / 2.24: one decimal each
        for seed, value in enumerate(values):
            write_run(root / f"d{depth}-s{seed}", records(np.full(3, value), random=0.0), critic_depth=depth,
                      seed=seed)
    assert report.main([str(root)]) == 0
    md = (root / "report.md").read_text()
    assert "| 4 | 3 | 14.5 ± 2.9 | 0 | 2 |" in md and "| 16 | 3 | 4.5 ± 2.2 | 0 | 2 |" in md
    assert report.ROUNDING_RULE in md


def test_last_n_and_short_runs(tmp_path):
    root = tmp_path / "runs"
    short = curve(4, 0, epochs=2)  # 3 records: all of them count
    write_run(root / "a", records(curve(4, 1)), critic_depth=4, seed=1)
    write_run(root / "b", records(short), critic_depth=4, seed=0)
    assert report.main([str(root), "--last", "2", "--out", str(tmp_path / "out")]) == 0
    (row,) = read_csv(tmp_path / "out" / "report.csv")
    finals = [short[-2:].mean(), curve(4, 1)[-2:].mean()]
    assert float(row["mean"]) == pytest.approx(np.mean(finals))
    assert (row["final_epoch_min"], row["final_epoch_max"], row["unfinished"]) == ("2", str(NUM_EPOCHS), "1")
    assert "unfinished: final epochs 2-8 of 8" in (tmp_path / "out" / "report.md").read_text()


def test_multi_seed_layout_mixed_with_single_seed_runs(tmp_path):
    root = tmp_path / "sweep"
    write_run(root / "runs" / "vmapped", seeds={0: records(curve(8, 0)), 1: records(curve(8, 1))}, critic_depth=8)
    write_run(root / "runs" / "single", records(curve(8, 2)), critic_depth=8, seed=2)
    write_run(root / "runs" / "other", records(curve(4, 0)), critic_depth=4, seed=0)
    assert report.main([str(root)]) == 0
    rows = {int(r["critic_depth"]): r for r in read_csv(root / "report.csv")}
    mean, sem = expected([curve(8, s) for s in (0, 1, 2)])
    assert (int(rows[8]["n"]), float(rows[8]["mean"]), float(rows[8]["sem"])) == (3, pytest.approx(mean),
                                                                                  pytest.approx(sem))
    assert int(rows[4]["n"]) == 1 and math.isnan(float(rows[4]["sem"]))
    assert "n/a" in (root / "report.md").read_text()


def test_failed_and_missing_runs_are_listed(depth_sweep, capsys):
    write_run(depth_sweep / "runs" / "crashed", records(curve(32, 0)[:3]), state="failed", exit_code=3,
              critic_depth=32)
    write_run(depth_sweep / "runs" / "empty", critic_depth=4, seed=7)
    bad = depth_sweep / "runs" / "bad-config"  # crl train exited 2 before writing config.yaml: crl sweep's files only
    bad.mkdir()
    (bad / "input.yaml").write_text(yaml.safe_dump({"critic_depth": 6}))
    (bad / "train.log").write_text("crl train: invalid config: critic_depth = 6 ...\n")
    (bad / "status.json").write_text(json.dumps({"state": "failed", "exit_code": 2, "log": "train.log"}))
    (depth_sweep / "sweep.yaml").write_text(yaml.safe_dump({"axes": ["critic_depth", "seed"], "runs": [
        {"id": "never", "overrides": {"critic_depth": 64}}]}))
    assert report.main([str(depth_sweep)]) == 0
    md = (depth_sweep / "report.md").read_text()
    assert "`runs/crashed` (failed, not in the table): failed (exit code 3)" in md
    assert "log: runs/crashed/train.log" in md
    assert "`runs/bad-config` (failed, not in the table): failed (exit code 2); no metrics yet; log: runs/bad-config/" in md
    assert "`runs/empty`" in md and "no metrics yet" in md
    assert "`runs/never`" in md and "not started" in md
    assert [int(r["critic_depth"]) for r in read_csv(depth_sweep / "report.csv")] == list(DEPTHS)  # 32 failed
    assert "runs/crashed" in capsys.readouterr().out


def test_other_metric_has_no_random_column(depth_sweep):
    assert report.main([str(depth_sweep), "--metric", "training/critic_loss", "--last", "3"]) == 0
    rows = read_csv(depth_sweep / "report.csv")
    assert float(rows[0]["mean"]) == pytest.approx(np.mean([1 / 7, 1 / 8, 1 / 9]))
    assert all(math.isnan(float(r["random_mean"])) for r in rows)
    assert report.random_baseline_key(METRIC) == RANDOM_KEY


def test_cells_grouped_by_a_second_field(tmp_path):
    root = tmp_path / "sweep"
    for env in ("ant", "point_u_maze"):
        for depth in (4, 8):
            for seed in (0, 1):
                write_run(root / "runs" / f"{env}-{depth}-{seed}", records(curve(depth, seed, env), random=None),
                          env=env, critic_depth=depth, seed=seed)
    assert report.main([str(root)]) == 0
    rows = read_csv(root / "report.csv")
    assert [(r["env"], r["critic_depth"]) for r in rows] == [("ant", "4"), ("ant", "8"), ("point_u_maze", "4"),
                                                            ("point_u_maze", "8")]
    for row in rows:
        mean, sem = expected([curve(int(row["critic_depth"]), s, row["env"]) for s in (0, 1)])
        assert float(row["mean"]) == pytest.approx(mean) and float(row["sem"]) == pytest.approx(sem)
        assert math.isnan(float(row["random_mean"]))
    assert "random policy" not in (root / "report.md").read_text()


def test_sweep_axes_come_first_and_never_pool_differing_runs(tmp_path):
    root = tmp_path / "sweep"
    for env in ("ant", "point_u_maze"):  # env comes from a `config` preset axis, not a field axis
        for width in (64, 128):
            write_run(root / "runs" / f"{env}-{width}", records(curve(4, 0, env)), env=env, critic_width=width,
                      checkpoint_every=width // 64)
    (root / "sweep.yaml").write_text(yaml.safe_dump({"axes": ["config", "critic_width", "seed"], "runs": []}))
    runs, axes = report.load_sweep(root)
    assert report.varying_fields(runs, axes) == ["critic_width", "env"]  # checkpoint_every is bookkeeping


def test_plot_fields_split_into_groups_and_tied(tmp_path):
    root = tmp_path / "sweep"
    for depth in (4, 8):
        write_run(root / f"d{depth}", records(curve(depth, 0)), critic_depth=depth, actor_depth=depth)
    runs, axes = report.load_sweep(root)
    fields = report.varying_fields(runs, axes)
    assert fields == ["critic_depth", "actor_depth"]
    from crl import report_plots

    cells = report.build_cells(runs, fields, METRIC, report.DEFAULT_LAST)
    assert report_plots.split_fields(cells, "critic_depth", ["actor_depth"]) == ([], ["actor_depth"])


def test_errors_exit_2_with_a_useful_message(tmp_path, depth_sweep, capsys):
    assert report.main([str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no runs under" in err and "config.yaml" in err
    assert report.main([str(depth_sweep), "--metric", "eval/episode_sucess"]) == 2
    err = capsys.readouterr().err
    assert "'eval/episode_sucess' is in no run" in err and "eval/episode_success" in err and "training/critic_loss" in err
    assert report.main([str(depth_sweep), "--x", "actor_width"]) == 2
    assert "varying: critic_depth" in capsys.readouterr().err


def test_cli_dispatch_without_jax(depth_sweep):
    code = ("import sys; from crl import cli; rc = cli.main(['report', sys.argv[1]]); "
            "assert 'jax' not in sys.modules, 'crl report imported jax'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(depth_sweep)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_algorithm_is_an_axis_like_any_field(tmp_path):
    """An algorithm x depth sweep: one row per (algorithm, depth), each the mean over its own seeds; --x algorithm
    puts the algorithm on the x axis (string values keep their first-seen order)."""
    root = tmp_path / "sweep"
    scale = {"crl": 1.0, "sac_her": 0.5}
    for algorithm in scale:
        for depth in (4, 16):
            for seed in (0, 1):
                write_run(root / "runs" / f"{algorithm}-{depth}-{seed}", records(scale[algorithm] * curve(depth, seed)),
                          algorithm=algorithm, critic_depth=depth, seed=seed)
    assert report.main([str(root)]) == 0
    rows = read_csv(root / "report.csv")
    assert sorted((r["algorithm"], r["critic_depth"]) for r in rows) == [("crl", "16"), ("crl", "4"),
                                                                        ("sac_her", "16"), ("sac_her", "4")]
    for row in rows:
        mean, _ = expected([scale[row["algorithm"]] * curve(int(row["critic_depth"]), s) for s in (0, 1)])
        assert float(row["mean"]) == pytest.approx(mean)
    out = tmp_path / "by_algorithm"
    assert report.main([str(root), "--x", "algorithm", "--out", str(out)]) == 0
    assert (out / "depth.png").exists() or list(out.glob("*.png"))
