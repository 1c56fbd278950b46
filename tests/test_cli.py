"""The command line's messages, help and outputs: `crl envs`, unknown env ids, `--help` tables, `crl bench --out`."""
from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crl import bench, bench_envs, bench_seeds, cli, env_catalog, env_names, envs
from crl.envs import registry
from crl.envs.spec import EnvSpec

TRAIN_LAUNCH_FLAGS = ("--config", "--resume", "--distributed", "--coordinator", "--num-processes", "--process-id")
CHEAP_IDS = ("point_u_maze", "point_big_maze_eval", "point_u4_maze_gen_1f2f3f")  # no simulator to build
HEAVY_MODULES = ("jax", "mujoco", "brax")
MAX_UNKNOWN_ENV_MESSAGE_CHARS = 400
FIXED_TIME = time.struct_time((2026, 1, 2, 3, 4, 5, 4, 2, -1))


def _option_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's options and positionals, without -h and the subcommand selector."""
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def _bench_subparsers() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in bench.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


# --------------------------------------------------------------------------- crl envs
def test_crl_envs_lists_without_jax_or_a_simulator():
    code = ("import sys; import crl.env_names; from crl.cli import main; rc = main(['envs']); "
            f"print('LOADED', sorted(set({HEAVY_MODULES!r}) & set(sys.modules))); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    rows = [line.split()[0] for line in done.stdout.splitlines()[1:] if not line.startswith(("family ", "LOADED"))]
    assert rows == sorted(env_catalog.SPECS) and "point_u_maze" in rows


def test_listing_specs_builds_no_env(monkeypatch, capsys):
    def refuse(**kwargs):
        raise AssertionError("listing built an environment")

    monkeypatch.setattr(registry, "_FACTORIES", {name: refuse for name in registry._FACTORIES})
    monkeypatch.setattr(registry, "_SPEC_CACHE", {})
    specs = envs.list_specs()
    assert sorted(specs) == sorted(env_catalog.SPECS)
    assert specs["ant"].state_dim == 29 and specs["ant"].goal_indices == (0, 1)
    assert cli.main(["envs"]) == 0
    assert "reference 6.2" not in capsys.readouterr().out


def test_catalog_holds_every_registered_id_and_family():
    assert sorted(env_catalog.SPECS) == envs.list_envs()
    assert list(env_catalog.FAMILIES) == envs.list_patterns()


@pytest.mark.parametrize("name", CHEAP_IDS)
def test_declared_spec_equals_the_built_envs(name):
    assert envs.list_specs()[name] == envs.make(name).spec


def test_re_registering_an_id_drops_its_declared_spec(monkeypatch):
    for table in ("_FACTORIES", "_SPEC_CACHE", "_DECLARED_SPECS"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    short = EnvSpec(name="point_u_maze", backend="jax", state_dim=2, goal_indices=(0, 1), action_size=2,
                    episode_length=7, dt=1.0, success_radius=0.25)
    envs.register("point_u_maze", lambda: argparse.Namespace(spec=short), overwrite=True)
    assert envs.list_specs()["point_u_maze"].episode_length == 7


def test_declaring_a_spec_for_an_unregistered_id_or_under_another_name_is_refused(monkeypatch):
    spec = envs.list_specs()["point_u_maze"]
    monkeypatch.setattr(registry, "_DECLARED_SPECS", {})
    with pytest.raises(envs.UnknownEnvError, match="no_such_env"):
        envs.declare_specs({"no_such_env": spec})
    with pytest.raises(ValueError, match="is named 'point_u_maze'"):
        envs.declare_specs({"point_big_maze": spec})


# --------------------------------------------------------------------------- unknown env ids
def test_unknown_env_message_suggests_groups_and_points_to_crl_envs():
    message = registry.unknown_env_message("point_u_maz")
    assert message.startswith("unknown environment 'point_u_maz'. Did you mean 'point_u_maze'? ")
    assert "Ids: ant*, arm*, cheetah, humanoid*, point*, pusher*, reacher." in message
    assert "Families: ant_<layout>_gen_<cfg>" in message and message.endswith("`crl envs` lists every id with its spec.")
    assert len(message) < MAX_UNKNOWN_ENV_MESSAGE_CHARS
    assert not any(f" {name}," in message for name in envs.list_envs() if "_" in name)


def test_unknown_env_message_without_a_close_id_makes_no_suggestion():
    message = registry.unknown_env_message("zzzz", known=["ant", "cheetah"], patterns=[])
    assert message == "unknown environment 'zzzz'. Ids: ant, cheetah. `crl envs` lists every id with its spec."


def test_id_groups_groups_ids_by_first_part():
    assert env_names.id_groups(["ant", "ant_u_maze", "cheetah", "point_a", "point_b"]) == ["ant*", "cheetah", "point*"]


def test_unknown_env_hint_for_config_validation_defaults_to_the_builtin_families():
    hint = env_names.unknown_env_hint("antt", ["ant", "ant_u_maze", "reacher"])
    assert hint == ("Did you mean 'ant'? Ids: ant*, reacher. Families: " + ", ".join(env_catalog.FAMILIES)
                    + ". `crl envs` lists every id with its spec.")


def test_unknown_env_error_carries_the_short_message():
    with pytest.raises(envs.UnknownEnvError) as info:
        envs.make("antt")
    assert str(info.value) == registry.unknown_env_message("antt") and info.value.closest == "ant"


# --------------------------------------------------------------------------- help
def test_train_help_lists_launch_options_with_descriptions(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["train", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    launch, fields = out.split("usage: crl train", 1)
    described = {a.option_strings[0]: a.help for a in _option_actions(cli._train_launch_parser())}
    assert sorted(described) == sorted(TRAIN_LAUNCH_FLAGS)
    flat = " ".join(launch.split())
    for flag, text in described.items():
        assert any(line.lstrip().startswith(flag) for line in launch.splitlines()), flag
        assert " ".join(text.split("(default")[0].split()) in flat, flag
        assert "(default: " in text, flag
    assert "--critic-depth" in fields  # tyro's fields table still follows


def test_plan_help_lists_its_options_with_descriptions(capsys):
    from crl.plan.cli import plan_main, plan_options_parser

    with pytest.raises(SystemExit) as exited:
        plan_main(["--help"])
    assert exited.value.code == 0
    launch, fields = capsys.readouterr().out.split("usage: crl plan", 1)
    flat = " ".join(launch.split())
    for action in _option_actions(plan_options_parser()):
        assert " ".join(action.help.split("(default")[0].split()) in flat, action.option_strings
        assert "(default: " in action.help, action.option_strings
    assert "(default: A100-40GB, A100-80GB, H100-80GB)" in flat and "--critic-depth" in fields


def test_eval_options_each_say_what_and_their_default():
    for action in _option_actions(cli._eval_parser()):
        assert action.help, action.dest
        if action.option_strings:
            assert "(default: " in action.help, action.dest
    assert "parallel evaluation episodes" in cli._eval_parser().format_help()


@pytest.mark.parametrize("which", ["networks", "parts", "train", "envs", "seeds"])
def test_every_bench_option_has_help_and_default(which):
    parser = _bench_subparsers()[which]
    for action in _option_actions(parser):
        assert action.help and "(default: " in action.help, f"crl bench {which} {action.option_strings}"
    assert "%(default)" not in parser.format_help()  # every placeholder expanded


def test_bench_user_output_names_no_missing_file_or_internal_target():
    for module in (bench, bench_envs, bench_seeds):
        source = inspect.getsource(module)
        assert "anchors" not in source.lower() and "target:" not in source, module.__name__
    assert "anchors" not in bench.build_parser().format_help()


# --------------------------------------------------------------------------- bench output location
def test_bench_default_out_is_fresh_under_runs_bench():
    assert bench.default_out("envs", FIXED_TIME) == Path("runs/bench/envs-20260102-030405/bench_envs.md")
    assert bench.resolve_out("seeds", "elsewhere/mine.md") == Path("elsewhere/mine.md")


def test_bench_seeds_default_preset_loads_outside_the_checkout(tmp_path, monkeypatch):
    from crl.config import load_yaml

    monkeypatch.chdir(tmp_path)
    assert load_yaml(_bench_subparsers()["seeds"].get_default("config")).env == "point_u_maze"


def test_bench_out_must_be_markdown():
    with pytest.raises(SystemExit, match=r"--out report.txt must end in \.md"):
        bench.resolve_out("envs", "report.txt")


def test_bench_envs_writes_under_runs_bench_not_docs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert bench.main(["envs", "--ids", "point_u_maze", "--num-envs", "2", "--steps", "2", "--reps", "1"]) == 0
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [p.name for p in written] == ["bench_envs.json", "bench_envs.md"]
    run_dir = written[0].parent
    assert run_dir.parent == Path("runs/bench") and run_dir.name.startswith("envs-")
    assert not (tmp_path / "docs").exists()
    out = capsys.readouterr().out
    assert f"crl bench envs: writing {run_dir / 'bench_envs.md'}" in out and "| point_u_maze | jax | 2 |" in (
        tmp_path / run_dir / "bench_envs.md").read_text()


def test_matmul_floor_and_flop_rates():
    """`crl bench networks`' floor is a positive rate; the row's rates follow from its time, FLOPs and the floor."""
    import math

    rate = bench.matmul_floor_flops_per_s(batch=16, width=16, dtype="float32", reps=2, chain=4)
    assert math.isfinite(rate) and rate > 0
    row = bench.with_flop_rates({"step_ms_median": 20.0}, flops=4e9, floor_flops_per_s=4e11)
    assert row["gflops_per_s"] == pytest.approx(200.0)  # 4 GFLOP in 20 ms
    assert row["floor_ms"] == pytest.approx(10.0) and row["x_floor"] == pytest.approx(2.0)  # 4 GFLOP at 400 GFLOP/s


@pytest.mark.slow
def test_bench_parts_writes_every_part(tmp_path):
    """`crl bench parts` at depth 4: one row per part, the whole update's share 100%, FLOPs of the update's size."""
    import json

    assert bench.main(["parts", "--depths", "4", "--max-unrolled-depth", "0", "--reps", "1",
                       "--out", str(tmp_path / "parts.md")]) == 0
    rows = json.loads((tmp_path / "parts.json").read_text())
    assert [r["part"] for r in rows] == ["update", "critic", "actor", "head", "adam"]
    flops = {r["part"]: r["flops"] for r in rows}
    assert flops["update"] > flops["critic"] > flops["head"] > 0 and flops["update"] > flops["actor"]
    assert "| 4 | scan | update |" in (tmp_path / "parts.md").read_text()


@pytest.mark.parametrize("which", ["networks", "parts", "train"])
def test_bench_logits_form_option_reaches_the_update(which):
    """`--logits-form` chooses the logits timed: the option parses to the config's choice (the default, or the
    other form), and the head's program it builds has a matmul's FLOPs or the broadcast's (B x B x repr_dim
    elementwise)."""
    from crl.bench_parts import part_programs, unrolled_flops
    from crl.config import TrainConfig

    parser = _bench_subparsers()[which]
    assert parser.parse_args([]).logits_form == TrainConfig.logits_form
    for form in ("matmul", "broadcast"):
        assert parser.parse_args(["--logits-form", form]).logits_form == form
    if which == "parts":  # the programs are shared by all three; build them once
        heads = {form: part_programs(4, 64, False, form)["head"] for form in ("broadcast", "matmul")}
        flops = {form: unrolled_flops(*head) for form, head in heads.items()}
        assert flops["matmul"] != flops["broadcast"]
