"""Configs: presets load, overrides apply, and every impossible config is rejected before compiling."""
import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from crl import cli
from crl.config import (SWEEPS_FOLDER, ConfigError, TrainConfig, from_dict, load_yaml, plan_steps, preset_names,
                        validate)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KNOWN = ["ant", "point_u_maze", "point_big_maze"]
EPISODE = 1000


def paper(**changes) -> TrainConfig:
    return dataclasses.replace(load_yaml(CONFIGS / "paper.yaml"), **changes)


def test_presets_load_and_validate():
    from crl import envs

    # configs/sweeps/ holds sweep specs, not TrainConfig presets (tests/test_sweep.py checks those)
    paths = sorted(p for p in CONFIGS.rglob("*.yaml") if "sweeps" not in p.relative_to(CONFIGS).parts)
    assert CONFIGS / "paper" / "ant_u4_maze.yaml" in paths
    for path in paths:
        cfg = load_yaml(path)
        spec = envs.spec(cfg.env) if cfg.env in envs.list_envs() else None
        validate(cfg, known_envs=envs.list_envs(), episode_length=spec.episode_length if spec else None)


def test_paper_task_presets_inherit_table7():
    cfg = load_yaml(CONFIGS / "paper" / "ant_u5_maze.yaml")
    assert (cfg.env, cfg.eval_env, cfg.num_epochs, cfg.total_env_steps) == ("ant_u5_maze", "ant_u5_maze_eval", 400,
                                                                           400_000_000)
    assert (cfg.num_envs, cfg.batch_size, cfg.sgd_steps_per_train_step, cfg.reset_mode) == (512, 512, 800, "cached")
    assert plan_steps(cfg, EPISODE).train_steps_per_epoch == 31  # ~1 M env steps per epoch, as the paper


def test_base_chain_overrides_and_rejects_loops(tmp_path):
    (tmp_path / "a.yaml").write_text("critic_depth: 8\nseed: 1\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nseed: 2\n")
    cfg = load_yaml(tmp_path / "b.yaml")
    assert (cfg.critic_depth, cfg.seed) == (8, 2)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_yaml(tmp_path / "b.yaml")


def test_paper_preset_has_table7_values():
    cfg = paper()
    assert (cfg.num_envs, cfg.unroll_length, cfg.batch_size, cfg.sgd_steps_per_train_step) == (512, 62, 512, 800)
    assert (cfg.max_replay_size, cfg.min_replay_size, cfg.discount, cfg.logsumexp_penalty) == (10_000, 1_000, 0.99, 0.1)
    assert (cfg.actor_lr, cfg.critic_lr, cfg.alpha_lr, cfg.critic_width, cfg.repr_dim) == (3e-4, 3e-4, 3e-4, 256, 64)


def test_step_plan_matches_reference_accounting():
    # reference section 2: 100 M steps / 100 epochs at 512 x 62 -> 31 training steps per epoch,
    # prefill = ceil(1000 / 62) = 17 collections
    plan = plan_steps(paper(), EPISODE)
    assert plan.env_steps_per_train_step == 31_744
    assert plan.prefill_collections == 17
    assert plan.prefill_env_steps == 17 * 31_744
    assert plan.train_steps_per_epoch == (100_000_000 - 17 * 31_744) // (100 * 31_744) == 31
    assert plan.total_env_steps == 17 * 31_744 + 100 * 31 * 31_744
    assert plan.relabelled_pool == 512 * 999


@pytest.mark.parametrize("changes, words", [
    ({"critic_depth": 6}, ["critic_depth = 6", "multiple of 4"]),
    ({"actor_depth": 0}, ["actor_depth = 0", "multiple of 4"]),
    ({"env": "antt"}, ["unknown environment", "Did you mean 'ant'"]),
    ({"eval_env": "point_u_maz"}, ["eval_env", "point_u_maze"]),
    ({"min_replay_size": 20_000}, ["min_replay_size = 20000 > max_replay_size", "lower min_replay_size"]),
    ({"min_replay_size": 500}, ["min_replay_size = 500 < episode_length = 1000", ">= 1000"]),
    ({"num_envs": 1, "batch_size": 2048}, ["larger than the relabelled pool of 999", "lower batch_size"]),
    ({"sgd_steps_per_train_step": 1000}, ["sgd_steps_per_train_step = 1000", "<= 999"]),
    ({"total_env_steps": 100_000}, ["leaves no training step", "raise total_env_steps"]),
    ({"num_envs": -4}, ["num_envs = -4", "positive"]),
    ({"total_env_steps": -5}, ["total_env_steps = -5: must be positive"]),
    ({"discount": 1.0}, ["discount", "(0, 1)"]),
])
def test_bad_configs_are_rejected_with_a_message(changes, words):
    with pytest.raises(ConfigError) as err:
        validate(paper(**changes), known_envs=KNOWN, episode_length=EPISODE)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_unknown_yaml_field_names_the_closest(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("critic_dept: 8\n")
    with pytest.raises(ConfigError, match="unknown field 'critic_dept'.*critic_depth"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown field 'banana'"):
        from_dict({"banana": 1})


def test_cli_rejects_bad_config_before_compiling(capsys, tmp_path):
    code = cli.main(["train", "--config", str(CONFIGS / "quickstart.yaml"), "--critic-depth", "10",
                     "--run-dir", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "critic_depth = 10" in err and "multiple of 4" in err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_cli_unknown_env_suggests_the_closest_and_points_to_crl_envs(capsys, tmp_path):
    code = cli.main(["train", "--config", str(CONFIGS / "quickstart.yaml"), "--env", "point_u_maz",
                     "--run-dir", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "env = 'point_u_maz': unknown environment. Did you mean 'point_u_maze'? Ids: ant*, " in err
    assert "`crl envs` lists every id" in err and "point_u_maze_eval" not in err  # id groups, not all ~70 ids


def test_cli_envs_lists_specs(capsys):
    assert cli.main(["envs"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["ant"][1:] == ["spring", "29", "2", "8", "0.05", "0.5", "1000"]
    assert rows["point_u_maze"][1:4] == ["jax", "2", "2"]


def test_cli_unknown_command(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


# --- typed values: YAML 1.1 reads `1e-4` as text ------------------------------------------------------------------

def test_e_notation_loads_as_numbers(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text(f"base: {CONFIGS / 'quickstart.yaml'}\nactor_lr: 1e-4\ncritic_lr: 3E-5\ntotal_env_steps: 2e5\n")
    cfg = load_yaml(path)
    assert (cfg.actor_lr, cfg.critic_lr, cfg.total_env_steps) == (1e-4, 3e-5, 200_000)
    assert (type(cfg.actor_lr), type(cfg.total_env_steps), type(from_dict({"discount": 1}).discount)) == (
        float, int, float)


@pytest.mark.parametrize("field, value, message", [
    ("actor_lr", "fast", "actor_lr = 'fast' (str): expected a float, e.g. `actor_lr: 0.0003`"),
    ("num_envs", 1.5, "num_envs = 1.5 (float): expected an int, e.g. `num_envs: 512`"),
    ("seed", True, "seed = True (bool): expected an int, e.g. `seed: 0`"),
    ("remat", "yes", "remat = 'yes' (str): expected true or false, e.g. `remat: false`"),
    ("energy", "L2", "energy = 'L2' (str): expected one of 'norm', 'l2', 'dot', 'cosine', 'mrn', e.g. `energy: norm`"),
    ("eval_env", 3, "eval_env = 3 (int): expected a string or null, e.g. `eval_env: point_u_maze_eval`"),
])
def test_wrong_types_name_the_field_value_type_and_an_example(tmp_path, field, value, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({field: value}))
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert str(err.value) == f"{path}: {message}"


def test_cli_e_notation_reaches_validation_without_a_tyro_warning(capsys, tmp_path, recwarn):
    path = tmp_path / "lr.yaml"
    path.write_text(f"base: {CONFIGS / 'quickstart.yaml'}\nactor_lr: 1e-4\ncritic_depth: 10\n")
    assert cli.main(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    assert "critic_depth = 10" in capsys.readouterr().err  # got past tyro and the positive-number checks
    assert not [w for w in recwarn if "annotated with type" in str(w.message)]


def test_cli_wrong_type_exits_2_with_one_named_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("actor_lr: fast\n")
    done = subprocess.run([sys.executable, "-m", "crl.cli", "train", "--config", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"crl train: {path}: actor_lr = 'fast' (str): expected a float, e.g. `actor_lr: 0.0003`\n"


# --- presets by name ------------------------------------------------------------------------------------------------

def test_presets_resolve_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_yaml("quickstart") == load_yaml(CONFIGS / "quickstart.yaml")
    assert load_yaml("paper/ant_big_maze") == load_yaml(CONFIGS / "paper" / "ant_big_maze.yaml")
    (tmp_path / "mine.yaml").write_text("base: quickstart\nseed: 3\n")  # a base may be a preset name too
    assert load_yaml("mine.yaml") == dataclasses.replace(load_yaml("quickstart"), seed=3)
    assert "paper/humanoid" in preset_names() and "point_depth_cpu" in preset_names(SWEEPS_FOLDER)
    assert not [name for name in preset_names() if name.startswith(SWEEPS_FOLDER)]


def test_a_missing_config_lists_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_yaml("configs/quickstart.yaml")
    message = str(err.value)
    assert message.startswith("config file configs/quickstart.yaml does not exist and is not a preset name. "
                              "Did you mean the preset `quickstart`? Give a path or a preset: ")
    assert "quickstart" in message and "paper/: ant_big_maze, " in message and "sweeps" not in message
    with pytest.raises(ConfigError, match="not a preset name. Give a path"):
        load_yaml("quickstar")


def test_package_data_ships_every_preset():
    globs = tomllib.loads((CONFIGS.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for pattern in globs["crl.configs"] for path in CONFIGS.glob(pattern)}
    assert shipped == set(CONFIGS.rglob("*.yaml"))
