"""Sweeps: specs expand into typed runs with stable ids, checked before launch; the local and submitit runners
isolate crashes, record status.json and skip finished runs when relaunched."""
import dataclasses
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from crl.config import ConfigError
from crl.sweep import main, runs
from crl.sweep.slurm import TrainJob
from crl.sweep.check import check_runs
from crl.sweep.spec import MAX_ID_LEN, expand, load_spec, run_id
from tiny_run import TINY_RUN

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The shared tiny CPU run (tests/tiny_run.py): seconds once compiled (the compile cache serves later runs).
# TINY_RUN's step plan (2 epochs), so the training runs load the programs other tests compiled from the disk cache
TINY = {**TINY_RUN, "random_baseline": False, "checkpoint_every": 1}
CRASH_DEVICES = 64  # passes the sweep's checks, but crl train rejects it (exit 2): this CPU shows fewer devices
LOCAL_SLURM = {"time_min": 10, "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 4}
WAIT_S = 60  # for a fake child to start or a sweep to stop


def write_spec(folder: Path, **spec) -> Path:
    """A spec over the tiny base config (folder/tiny.yaml); keyword arguments are the spec's keys."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "base": "tiny.yaml", **spec}, sort_keys=False))
    return path


def expanded(tmp_path, num_seeds=1, extra=None, **spec):
    """The spec's runs, checked as `crl sweep` checks them before launching."""
    points = expand(load_spec(write_spec(tmp_path, **spec), num_seeds), extra)
    check_runs(points, "spec")
    return points


def fake_train(monkeypatch, code: str) -> None:
    """Runs launch `python -c CODE RUN_DIR` instead of crl train (runner mechanics without training)."""
    monkeypatch.setattr(runs, "train_command", lambda directory: [sys.executable, "-c", code, str(directory)])


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def metrics_stamp(run_dir: Path) -> tuple[int, int]:
    stat = (run_dir / "metrics.jsonl").stat()
    return stat.st_size, stat.st_mtime_ns


# --- expansion -------------------------------------------------------------------------------------------------

def test_grid_is_a_cartesian_product_first_axis_outermost(tmp_path):
    points = expanded(tmp_path, grid={"critic_depth": [4, 8], "batch_size": [32, 64]})
    assert [(r.config.critic_depth, r.config.batch_size) for r in points] == [(4, 32), (4, 64), (8, 32), (8, 64)]
    assert points[1].id == "critic_depth-4__batch_size-64"
    assert points[1].overrides == {"critic_depth": 4, "batch_size": 64}
    assert points[1].config.actor_width == TINY["actor_width"]  # the base's other fields are kept


def test_zip_advances_together_and_seeds_axis_is_last(tmp_path):
    points = expanded(tmp_path, zip=[{"critic_depth": [4, 16], "actor_depth": [8, 32]}], seeds=2,
                      overrides={"num_epochs": 4})
    assert [(r.config.critic_depth, r.config.actor_depth, r.config.seed) for r in points] == [
        (4, 8, 0), (4, 8, 1), (16, 32, 0), (16, 32, 1)]
    assert points[3].id == "critic_depth-16__actor_depth-32__seed-1"
    assert all(r.config.num_epochs == 4 for r in points)
    assert [r.config.seed for r in expanded(tmp_path, seeds=[0, 5, 7])] == [0, 5, 7]


def test_run_ids_are_stable_readable_and_unique(tmp_path):
    before = [r.id for r in expanded(tmp_path, grid={"critic_depth": [4, 16], "actor_lr": [0.0003]}, seeds=2)]
    again = [r.id for r in expanded(tmp_path, grid={"critic_depth": [4, 16], "actor_lr": [0.0003]}, seeds=2)]
    more = [r.id for r in expanded(tmp_path, grid={"critic_depth": [4, 16, 64], "actor_lr": [0.0003]}, seeds=2)]
    assert before == again and set(before) < set(more) and len(set(more)) == len(more) == 6
    assert "critic_depth-16__actor_lr-0.0003__seed-1" in before
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", rid) for rid in more)
    long_a, long_b = run_id(["x" * 150, "a"]), run_id(["x" * 150, "b"])
    assert len(long_a) == MAX_ID_LEN and long_a != long_b and long_a == run_id(["x" * 150, "a"])


def test_config_axis_replaces_the_base_and_names_runs_by_file_stem(tmp_path):
    (tmp_path / "wide.yaml").write_text("base: tiny.yaml\ncritic_width: 64\n")
    points = expanded(tmp_path, grid={"config": ["tiny.yaml", "wide.yaml"]})
    assert [r.id for r in points] == ["config-tiny", "config-wide"]
    assert [r.config.critic_width for r in points] == [32, 64]
    assert points[1].overrides == {"config": "wide"}


def test_seed_packing(tmp_path):
    points = expanded(tmp_path, num_seeds=2, seeds=4)
    assert [(r.id, r.config.seed, r.config.num_seeds) for r in points] == [("seeds-0-1", 0, 2), ("seeds-2-3", 2, 2)]
    with pytest.raises(ConfigError, match="does not divide"):
        expanded(tmp_path, num_seeds=3, seeds=4)
    with pytest.raises(ConfigError, match="not consecutive"):
        expanded(tmp_path, num_seeds=2, seeds=[0, 2])
    with pytest.raises(ConfigError, match="no `seeds:`"):
        expanded(tmp_path, num_seeds=2, grid={"critic_depth": [4]})


@pytest.mark.parametrize("spec, message", [
    ({"grid": {"critic_dept": [4]}}, "unknown field 'critic_dept'. Did you mean 'critic_depth'"),
    ({"zip": [{"actor_depht": [4]}]}, "Did you mean 'actor_depth'"),
    ({"overrides": {"num_epoch": 2}}, "Did you mean 'num_epochs'"),
    ({"zip": [{"critic_depth": [4, 8], "actor_depth": [4]}]}, "same length"),
    ({"grid": {"seed": [0]}, "seeds": 2}, "'seed' is set by both grid.seed and seeds"),
    ({"grid": {"critic_depth": [4]}, "overrides": {"critic_depth": 8}}, "set by both overrides and grid"),
    ({"grid": {"critic_depth": []}}, "empty list"),
    ({"grid": {"critic_depth": 4}}, "must be a list"),
    ({"critic_depth": 4}, r"unknown key\(s\) \['critic_depth'\] \(TrainConfig fields go under"),
    ({"grid": {"actor_lr": ["fast"]}}, r"actor_lr = 'fast' \(str\): expected a float, e.g. `actor_lr: 0.0003`"),
    ({"overrides": {"remat": "yes"}}, r"overrides: remat = 'yes' \(str\): expected true or false"),
    ({"grid": {"critic_depth": [4, 6]}}, "run critic_depth-6: critic_depth = 6: depth counts"),
    ({"slurm": {"gpus": 1}}, r"slurm: unknown key\(s\) \['gpus'\]"),
    ({"overrides": {"config": "tiny.yaml"}}, "unknown field 'config'"),
    ({"grid": {"critic_depth": [4, 4]}}, "get the same id 'critic_depth-4'"),
])
def test_bad_specs_are_refused_with_the_fix(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message):
        expanded(tmp_path, **spec)


def test_cli_bad_spec_exits_2_and_set_overrides(tmp_path, capsys):
    path = write_spec(tmp_path, grid={"critic_depth": [4, 8]})
    assert main([str(path), "--set", "critic_dept=8", "--dry-run"]) == 2
    assert "Did you mean 'critic_depth'" in capsys.readouterr().err
    assert main([str(path), "--set", "critic_depth=8", "--dry-run"]) == 2
    assert "is an axis" in capsys.readouterr().err
    assert main([str(path), "--only", "nothing", "--dry-run"]) == 2
    assert main([str(path), "--set", "total_env_steps=30000", "--only", "depth-8", "--dry-run",
                 "--out", str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 runs" in out and "critic_depth-8" in out and "critic_depth-4:" not in out
    assert [r.config.total_env_steps for r in expanded(tmp_path, extra={"total_env_steps": 30000},
                                                       grid={"critic_depth": [4]})] == [30000]
    assert not (tmp_path / "sweep").exists()  # a dry run writes nothing


def stand_in_dataset(directory: Path, env: str) -> Path:
    """A tiny dataset file whose sidecar names `env`: what an offline spec's pre-launch check reads (the data that
    a study collects first are not in a clean checkout)."""
    import numpy as np

    from crl.offline.dataset import save_dataset

    rows = 3
    return save_dataset(directory / "stand_in.npz", np.zeros((rows, 2), np.float32), np.zeros((rows, 2), np.float32),
                        np.array([0, 0, 1], np.float32), {"env": env})


def test_every_preset_expands_and_validates(tmp_path):
    sizes = {}
    for path in sorted((CONFIGS / "sweeps").glob("*.yaml")):
        assert path.read_text().startswith("# "), f"{path}: first line says which paper experiment it is"
        spec = load_spec(path)
        points = expand(spec)
        sizes[path.stem] = len(points)
        if any(point.config.offline for point in points):  # the spec's dataset stands in for the collected one
            data = stand_in_dataset(tmp_path, "point_u_maze")
            points = [dataclasses.replace(p, config=dataclasses.replace(p.config, offline=str(data))) for p in points]
        check_runs(points, str(path))  # validate() with each env's id and episode length, as crl sweep does
    assert sizes["point_depth_cpu"] == 9 and sizes["table1"] == 10 * 5 * 5 and sizes["humanoid_1024"] == 3
    assert sizes["offline_point_depth_cpu"] == 2 * 2 * 3
    assert {"width_vs_depth", "actor_vs_critic_depth", "batch_x_depth"} <= set(sizes)
    assert len(expand(load_spec(CONFIGS / "sweeps" / "table1.yaml", num_seeds=5))) == 10 * 5


# --- runners without training (fake `crl train` children) -------------------------------------------------------

def test_local_runner_gives_devices_round_robin_and_skips_done(tmp_path, monkeypatch, capsys):
    fake_train(monkeypatch, "import os; print('device', os.environ['CUDA_VISIBLE_DEVICES'])")
    path = write_spec(tmp_path, seeds=4)
    out = tmp_path / "sweep"
    assert main([str(path), "--out", str(out), "--devices", "3,5"]) == 0  # --jobs defaults to one per device
    devices = {(run / "train.log").read_text().split("device ")[-1].strip() for run in (out / "runs").iterdir()}
    assert devices == {"3", "5"}
    recorded = yaml.safe_load((out / "sweep.yaml").read_text())
    assert [r["id"] for r in recorded["runs"]] == [f"seed-{s}" for s in range(4)] and recorded["axes"] == ["seed"]
    capsys.readouterr()
    assert main([str(path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("skip seed-") == 4
    assert status(out / "runs" / "seed-0")["attempts"] == 1


CHILD_UNTIL_SIGTERM = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *args: sys.exit(75))  # as crl train: save a checkpoint, exit 75
pathlib.Path(sys.argv[1], "started").touch()
time.sleep(120)
"""
# Ctrl-C as in a terminal: a shell running the tests in the background (`make test &`) starts them with
# SIGINT ignored, and Python then leaves it ignored.
SWEEP_WITH_FAKE_CHILD = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from crl.sweep import main, runs
runs.train_command = lambda directory: [sys.executable, "-c", {child!r}, str(directory)]
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_stops_the_children_with_sigterm_and_marks_them_not_done(tmp_path):
    path = write_spec(tmp_path, seeds=3)
    out = tmp_path / "sweep"
    sweep = subprocess.Popen([sys.executable, "-c", SWEEP_WITH_FAKE_CHILD.format(child=CHILD_UNTIL_SIGTERM),
                              str(path), "--out", str(out), "--jobs", "2"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    while len(list(out.glob("runs/*/started"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    sweep.send_signal(signal.SIGINT)
    output, _ = sweep.communicate(timeout=WAIT_S)
    assert sweep.returncode == 130, output
    stopped = [status(out / "runs" / f"seed-{s}") for s in (0, 1)]
    assert [(s["state"], s["exit_code"]) for s in stopped] == [("failed", 75), ("failed", 75)]
    assert not (out / "runs" / "seed-2" / "status.json").exists()  # never started
    assert "stopping" in output and "0 done, 2 failed, 1 not started" in output


def test_slurm_job_checkpoint_stops_the_run_and_requeues_itself(tmp_path):
    job = TrainJob(str(tmp_path), stop_grace_s=WAIT_S)
    job._proc = subprocess.Popen([sys.executable, "-c", CHILD_UNTIL_SIGTERM, str(tmp_path)])
    while not (tmp_path / "started").exists():
        time.sleep(0.1)
    requeued = job.checkpoint()
    assert job._proc.returncode == 75
    assert isinstance(requeued.function, TrainJob) and requeued.function.run_dir == str(tmp_path)
    assert pickle.loads(pickle.dumps(requeued.function))._proc is None


def test_slurm_resources_come_from_the_spec_and_the_command_line(tmp_path, monkeypatch):
    from submitit.slurm import slurm

    from crl.sweep.cli import _parser, _resources
    from crl.sweep.slurm import make_executor

    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # pretend SLURM is here
    spec = load_spec(write_spec(tmp_path, slurm={"partition": "gpu", "time_min": 720, "mem_gb": 32}))
    args = _parser().parse_args(["spec.yaml", "--partition", "long", "--array-parallelism", "8"])
    script = make_executor(tmp_path, _resources(spec, args), "slurm", "crl-tiny")._executor \
        ._make_submission_file_text("CMD", "uid")
    for line in ("--partition=long", "--time=720", "--mem=32GB", "--gpus-per-node=1", "--signal=USR2@300"):
        assert f"#SBATCH {line}" in script


# --- real training ---------------------------------------------------------------------------------------------

def test_local_sweep_isolates_a_crash_and_relaunch_skips_finished_runs(tmp_path, capsys):
    path = write_spec(tmp_path, zip=[{"seed": [0, 1, 0], "num_devices": [1, 1, CRASH_DEVICES]}])
    out = tmp_path / "sweep"
    assert main([str(path), "--out", str(out), "--jobs", "2"]) == 1
    good = [out / "runs" / f"seed-{s}__num_devices-1" for s in (0, 1)]
    bad = out / "runs" / f"seed-0__num_devices-{CRASH_DEVICES}"
    for run_dir in good:
        assert status(run_dir)["state"] == "done", (run_dir / "train.log").read_text()
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == TINY["num_epochs"] + 1
        assert yaml.safe_load((run_dir / "input.yaml").read_text())["num_devices"] == 1
        assert "crl.cli train --config" in (run_dir / "command.txt").read_text()
    assert (status(bad)["state"], status(bad)["exit_code"], status(bad)["log"]) == ("failed", 2, "train.log")
    assert f"num_devices = {CRASH_DEVICES}" in (bad / "train.log").read_text()
    assert f"FAILED seed-0__num_devices-{CRASH_DEVICES}: exit 2" in capsys.readouterr().out

    stamps = [metrics_stamp(run_dir) for run_dir in good]
    assert main([str(path), "--out", str(out), "--jobs", "2"]) == 1
    output = capsys.readouterr().out
    assert all(f"skip seed-{s}__num_devices-1: done before" in output for s in (0, 1))
    assert [metrics_stamp(run_dir) for run_dir in good] == stamps  # not re-run
    assert [status(run_dir)["attempts"] for run_dir in good] == [1, 1]
    assert status(bad)["attempts"] == 2 and "attempt 2" in (bad / "train.log").read_text()


def test_submitit_local_executor_runs_to_done(tmp_path, capsys):
    path = write_spec(tmp_path, seeds=1, slurm=LOCAL_SLURM)
    out = tmp_path / "sweep"
    assert main([str(path), "--out", str(out), "--runner", "slurm", "--slurm-cluster", "local", "--wait"]) == 0
    run_dir = out / "runs" / "seed-0"
    assert status(run_dir)["state"] == "done", (run_dir / "train.log").read_text()
    assert (run_dir / "metrics.jsonl").exists()
    assert yaml.safe_load((out / "sweep.yaml").read_text())["jobs"]["seed-0"] == status(run_dir)["job_id"]
    assert main([str(path), "--out", str(out), "--runner", "slurm", "--slurm-cluster", "local"]) == 0
    assert "nothing to submit" in capsys.readouterr().out


# --- typed values, checks before launch, progress order, specs by name ---------------------------------------------

def test_e_notation_is_a_float_in_grids_and_set(tmp_path):
    from crl.sweep.cli import parse_assignments
    from crl.sweep.spec import typed_values

    # YAML 1.1 reads 1e-4 as the string '1e-4'; the runs still get floats, ids keep the text as written
    points = expanded(tmp_path, grid={"actor_lr": ["1e-4", 3e-4]}, extra={"critic_lr": "1e-5"})
    assert [(r.id, r.config.actor_lr, r.config.critic_lr) for r in points] == [
        ("actor_lr-1e-4", 1e-4, 1e-5), ("actor_lr-0.0003", 3e-4, 1e-5)]
    assert typed_values(parse_assignments(["actor_lr=1e-4", "total_env_steps=2e4"]), "--set") == {
        "actor_lr": 1e-4, "total_env_steps": 20000}
    assert main([str(write_spec(tmp_path, seeds=1)), "--set", "actor_lr=1e-4", "--dry-run"]) == 0


def test_runs_that_cannot_start_are_named_and_nothing_launches(tmp_path, capsys):
    path = write_spec(tmp_path, grid={"total_env_steps": [20000, 2000]}, seeds=2)
    out = tmp_path / "sweep"
    for dry_run in ([], ["--dry-run"]):
        assert main([str(path), "--out", str(out), *dry_run]) == 2
        err = capsys.readouterr().err
        # 2000 steps: the 1600-step prefill leaves no training step in 3 epochs (needs the env's episode length)
        assert "2 of 4 runs would fail before training, so none was launched" in err
        assert all(f"run total_env_steps-2000__seed-{s}: total_env_steps = 2000 leaves no training step" in err
                   for s in (0, 1))
        assert "total_env_steps-20000" not in err
    path = write_spec(tmp_path, seeds=2)
    assert main([str(path), "--set", "total_env_steps=-5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 runs" in err and "run seed-1: total_env_steps = -5: must be positive" in err
    assert main([str(path), "--set", "env=point_u_maz", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "run seed-0: env = 'point_u_maz': unknown environment. Did you mean 'point_u_maze'" in err
    assert not out.exists()  # nothing written, nothing launched


def test_progress_lines_come_in_the_order_things_happen(tmp_path, monkeypatch, capsys):
    fake_train(monkeypatch, "pass")
    assert main([str(write_spec(tmp_path, seeds=3)), "--out", str(tmp_path / "sweep"), "--jobs", "1"]) == 0
    events = [line.split()[:2] for line in capsys.readouterr().out.splitlines()
              if line.startswith(("start ", "[", "crl sweep: 3 done"))]
    assert events == [["start", "seed-0"], ["[1/3]", "done"], ["start", "seed-1"], ["[2/3]", "done"],
                      ["start", "seed-2"], ["[3/3]", "done"], ["crl", "sweep:"]]


def test_specs_presets_and_bases_resolve_by_name_from_anywhere(tmp_path, monkeypatch, capsys):
    from crl.config import load_yaml

    monkeypatch.chdir(tmp_path)
    assert load_spec("point_depth_cpu").text == (CONFIGS / "sweeps" / "point_depth_cpu.yaml").read_text()
    (tmp_path / "spec.yaml").write_text("base: quickstart\nseeds: [3]\n")
    (run,) = expand(load_spec("spec.yaml"))
    assert run.config == dataclasses.replace(load_yaml(CONFIGS / "quickstart.yaml"), seed=3)
    (tmp_path / "spec.yaml").write_text("grid: {config: [quickstart, paper/humanoid]}\n")
    points = expand(load_spec("spec.yaml"))
    assert [(r.id, r.config.env) for r in points] == [("config-quickstart", "point_u_maze"),
                                                      ("config-humanoid", "humanoid")]
    assert main(["point_depth", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "sweep spec point_depth does not exist and is not a preset name" in err and "point_depth_cpu" in err


NO_JAX_DRY_RUN = """
import sys
from crl.sweep import main
code = main(sys.argv[1:])
print('jax loaded' if 'jax' in sys.modules else 'no jax', code)
"""


def test_checking_runs_over_built_in_envs_loads_no_jax(tmp_path):
    # the env ids and episode lengths come from crl/env_catalog.py: a dry run of a big sweep stays quick
    done = subprocess.run([sys.executable, "-c", NO_JAX_DRY_RUN, str(write_spec(tmp_path, seeds=2)), "--dry-run",
                           "--set", "total_env_steps=2000"], capture_output=True, text=True, timeout=WAIT_S)
    assert done.stdout.strip().splitlines()[-1] == "no jax 2", done.stdout + done.stderr
    assert "total_env_steps = 2000 leaves no training step" in done.stderr


def test_ids_outside_the_catalog_are_checked_through_the_registry():
    from crl.sweep.check import run_problem
    from tiny_run import tiny_config

    # a stitching id: its episode length (250) comes from building the env, not from the catalog
    assert "min_replay_size = 100 < episode_length = 250" in run_problem(
        tiny_config(env="point_u5_maze_gen_1f2f", eval_env=None))
    assert "not a single corridor" in run_problem(tiny_config(env="point_big_maze_gen_1f2f3f", eval_env=None))
    assert run_problem(tiny_config(env="point_u_maze_gen_1f", eval_env=None)) is None


# --- crl sweep status, one launch per sweep directory --------------------------------------------------------------

FAKE_RUN_BY_SEED = """
import json, pathlib, sys
run = pathlib.Path(sys.argv[1])
seed = int(run.name.split("-")[-1])
with open(run / "metrics.jsonl", "w") as f:
    for epoch in range(3):
        f.write(json.dumps({"epoch": epoch, "eval/episode_success": 0.5 * epoch + seed}) + "\\n")
sys.exit({0: 0, 1: 1, 2: 75}[seed])
"""


@pytest.mark.parametrize("saved, sacct, want", [
    (None, None, "pending"),
    ({"state": "running"}, None, "running"),
    ({"state": "done"}, None, "done"),
    ({"state": "failed", "exit_code": 1}, None, "failed"),
    ({"state": "failed", "exit_code": 75}, None, "stopped"),  # saved a checkpoint: relaunch resumes it
    (None, ("PENDING", 0), "pending"),
    ({"state": "failed", "exit_code": 75}, ("PENDING", 1), "requeued"),
    ({"state": "running"}, ("RUNNING", 0), "running"),
    ({"state": "running"}, ("REQUEUED", 0), "requeued"),
    ({"state": "running"}, ("CANCELLED", 0), "failed"),  # the job died under a run that never recorded its end
    ({"state": "running"}, ("COMPLETED", 0), "failed"),
    ({"state": "done"}, ("COMPLETED", 0), "done"),
    ({"state": "done"}, ("CANCELLED", 0), "done"),  # cancelled after the run had finished
    ({"state": "failed", "exit_code": 1}, ("FAILED", 0), "failed"),
])
def test_sweep_status_combines_the_run_dir_and_sacct(saved, sacct, want):
    from crl.sweep.status import run_state

    assert run_state(saved, sacct)[0] == want


def test_sweep_status_lists_every_run_and_exits_1_on_a_failure(tmp_path, monkeypatch, capsys):
    fake_train(monkeypatch, FAKE_RUN_BY_SEED)
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, seeds=4)
    assert main([str(spec), "--out", str(out), "--only", "seed-[012]"]) == 1
    capsys.readouterr()
    assert main(["status", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows == {"seed-0": ["done", "-", "3", "1"], "seed-1": ["failed", "-", "3", "2"],
                    "seed-2": ["stopped", "-", "3", "3"], "seed-3": ["pending", "-", "-", "-"]}
    assert lines[-1] == "4 runs: 1 pending, 1 stopped, 1 done, 1 failed (from run dirs)"
    assert main(["status", str(tmp_path)]) == 2 and "no sweep.yaml" in capsys.readouterr().err


def test_a_second_launch_into_a_busy_sweep_dir_refuses(tmp_path, monkeypatch, capsys):
    from crl.sweep import lock

    fake_train(monkeypatch, "pass")
    spec, out = write_spec(tmp_path, seeds=1), tmp_path / "sweep"
    with lock.hold(out, "crl sweep spec.yaml --out sweep"):
        assert main([str(spec), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"in use by another `crl sweep` (pid {os.getpid()} on " in err and "crl sweep spec.yaml" in err
        assert not (out / "runs").exists()  # nothing launched
    assert main([str(spec), "--out", str(out)]) == 0  # released with its holder
