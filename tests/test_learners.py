"""Extra learners on the collector's batches (paper Fig. 8): same batches, own updates, logged, reported, resumed."""
from __future__ import annotations

import shutil
from pathlib import Path

import crl  # noqa: F401  (before jax)
import jax
import numpy as np
import pytest
from test_scale import assert_same_metrics
from tiny_run import comparable, read_metrics, tiny_config

from crl import streams
from crl.checkpoint import Checkpointer
from crl.config import ConfigError, to_dict
from crl.learner_spec import COLLECTOR, LEARNER_FIELDS, METRIC_PREFIX, parse_learner, parse_learners
from crl.train import make_trainer, train

LEARNERS = ("same: critic_lr=0.0003", "bc: algorithm=gcbc")  # the collector's own config; an imitation learner
SEEDS = 2


def seed_records(run_dir: Path, seed: int) -> list[dict]:
    return read_metrics(run_dir / "seeds" / str(seed) / "metrics.jsonl")


@pytest.fixture(scope="module")
def learner_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("learners")
    result = train(tiny_config(num_seeds=SEEDS, learners=LEARNERS, run_dir=str(run_dir)), print_fn=None)
    return run_dir, result


def leaves(*trees) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(trees)]


def test_a_learner_with_the_collectors_config_tracks_it_bit_for_bit(learner_run):
    """Same init key, same batches, same SGD keys: the 'same' learner can only equal the collector if it saw
    exactly the collector's batches in the same order."""
    _, result = learner_run
    state = result.state
    same = state.learners["same"]
    collector = leaves(state.actor_params, state.critic_params, state.log_alpha)
    assert all(np.array_equal(a, b) for a, b in zip(collector, leaves(same.actor_params, same.critic_params,
                                                                       same.log_alpha)))
    assert int(np.asarray(same.grad_steps).reshape(-1)[0]) == int(np.asarray(state.grad_steps).reshape(-1)[0]) > 0


def test_learners_move_only_through_their_own_updates(learner_run, tmp_path_factory):
    """The collector with learners trains exactly as without them; the gcbc learner's actor moved from its init."""
    run_dir, result = learner_run
    alone_dir = tmp_path_factory.mktemp("alone")
    train(tiny_config(seed=1, run_dir=str(alone_dir)), print_fn=None)
    with_learners = [{k: v for k, v in r.items() if not k.startswith(METRIC_PREFIX)} for r in seed_records(run_dir, 1)]
    assert_same_metrics(with_learners, read_metrics(alone_dir / "metrics.jsonl"))
    bc = result.trainer.learners[1]
    init = bc.agent.networks.init(streams.stream_key(0, streams.PARAMS))["actor"]  # seed 0's learner init
    trained = jax.tree.map(lambda x: x[0], result.state.learners["bc"].actor_params)
    assert result.state.learners["bc"].critic_params == {}
    assert not any(np.array_equal(a, b) for a, b in zip(leaves(init), leaves(trained)))


def test_learner_metrics_reach_metrics_jsonl_and_report(learner_run, tmp_path):
    from crl.report import load_sweep, report

    run_dir, _ = learner_run
    for seed in range(SEEDS):
        record = seed_records(run_dir, seed)[-1]
        for name, loss in (("same", "critic_loss"), ("bc", "bc_loss")):
            assert f"{METRIC_PREFIX}{name}/training/{loss}" in record
            assert f"{METRIC_PREFIX}{name}/eval/episode_success" in record
        # the same learner evaluates on the collector's episodes: equal params, equal evaluation
        assert record[f"{METRIC_PREFIX}same/eval/episode_dist"] == record["eval/episode_dist"]
    runs, _ = load_sweep(run_dir)
    assert sorted(run.config["learner"] for run in runs) == sorted([COLLECTOR, "same", "bc"])
    assert {run.config["learner"]: run.config["algorithm"] for run in runs}["bc"] == "gcbc"
    report(run_dir, tmp_path, metric="eval/episode_dist")
    lines = [line.split("|")[1:-1] for line in (tmp_path / "report.md").read_text().splitlines()
             if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0]]
    learner, mean = header.index("learner"), next(i for i, h in enumerate(header) if "mean" in h)
    rows = {row[learner].strip(): row[mean] for row in lines[2:]}
    assert set(rows) == {COLLECTOR, "same", "bc"}
    assert rows["same"] == rows[COLLECTOR]  # the same mean ± s.e.


def test_resume_with_learners_is_exact(learner_run, tmp_path):
    """Drop the last checkpoint and train again: epoch 2 is recomputed from the restored learners bit for bit."""
    run_dir, _ = learner_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    last = Checkpointer(copy, 3, True).steps()[-1]
    shutil.rmtree(copy / "checkpoints" / str(last))
    train(tiny_config(num_seeds=SEEDS, learners=LEARNERS, run_dir=str(copy)), print_fn=None)
    for seed in range(SEEDS):
        assert comparable(seed_records(copy, seed)) == comparable(seed_records(run_dir, seed))


@pytest.mark.parametrize("entry, message", [
    ("d16: critic_depth", "not field=value"),
    ("d16: batch_size=64", "cannot change 'batch_size'"),
    ("d16: critic_depth=sixteen", "expected an int"),
    ("collector: critic_depth=8", "not 'collector'"),
    ("d16:", "changes nothing"),
])
def test_bad_learner_entries_name_the_problem(entry, message):
    with pytest.raises(ConfigError, match=message):
        parse_learner(entry)


def test_learner_entries_parse_names_and_values():
    spec = parse_learner("deep: critic_depth=16, actor_depth=16 algorithm=gcbc critic_lr=1e-4 remat=true")
    assert spec.name == "deep"
    assert spec.overrides == {"critic_depth": 16, "actor_depth": 16, "algorithm": "gcbc", "critic_lr": 1e-4,
                              "remat": True}
    assert parse_learner("critic_depth=8").name == "critic_depth8"
    assert set(spec.overrides) <= set(LEARNER_FIELDS)
    with pytest.raises(ConfigError, match="used twice"):
        parse_learners(["a: critic_depth=8", "a: critic_depth=16"])


def test_a_learner_of_another_pool_is_refused():
    with pytest.raises(ConfigError, match="learner 'q'.*keys"):
        make_trainer(tiny_config(learners=("q: algorithm=sac",)))


def test_learners_round_trip_through_config_yaml(tmp_path):
    from crl.config import from_dict

    cfg = tiny_config(learners=LEARNERS)
    assert to_dict(cfg)["learners"] == list(LEARNERS)
    assert from_dict(to_dict(cfg)).learners == LEARNERS


def test_sweep_prelaunch_check_validates_learners():
    from crl.sweep.check import run_problem

    assert run_problem(tiny_config(learners=LEARNERS)) is None
    assert "critic_depth = 6" in run_problem(tiny_config(learners=("odd: critic_depth=6",)))
    assert "cannot change 'env'" in run_problem(tiny_config(learners=("e: env=point_big_maze",)))
