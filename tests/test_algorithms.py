"""Every algorithm through the shared trainer: one compile per program, exact resume, vmapped seeds and sharding.

The losses, relabelling and update rules of each algorithm are checked against numpy in test_agents.py; this
file checks that the guarantees of the trainer (written for CRL) hold for the baselines too.
"""
from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

from tiny_run import comparable, read_metrics, tiny_config

from crl.config import BUILTIN_ALGORITHMS
from crl.preemption import Preempted
from crl.train import train

# Default run: sac_her (twin critics with targets, HER) and gcbc (actor only). The others share their code paths
# (td3_her: twin critics too, its delay checked in test_agents.py; sac, td3, gcsl: relabel fraction 0 or another
# goal law) and compile their epochs in the slow run, to keep the default run within its time budget.
FAST = ("sac_her", "gcbc")
SLOW = tuple(name for name in BUILTIN_ALGORITHMS if name not in FAST + ("crl",))
TRACES = {"prefill": 1, "epoch": 1}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run per algorithm, trained on first use (TINY_RUN's plan: its programs come from the disk cache)."""
    done = {}

    def get(algorithm: str):
        if algorithm not in done:
            run_dir = tmp_path_factory.mktemp(algorithm)
            done[algorithm] = train(tiny_config(algorithm=algorithm, run_dir=str(run_dir)), print_fn=None)
        return done[algorithm]

    return get


def test_builtin_names_match_the_registry():
    from crl.agents import algorithm_names

    assert tuple(algorithm_names()) == BUILTIN_ALGORITHMS


@pytest.mark.parametrize("algorithm", FAST + tuple(pytest.param(a, marks=pytest.mark.slow) for a in SLOW))
def test_epoch_compiles_once_and_updates_every_network(runs, algorithm):
    result = runs(algorithm)
    assert result.trainer.trace_counts == TRACES
    cfg, state = result.trainer.cfg, result.state
    last = result.history[-1]
    assert last["grad_steps"] == result.trainer.plan.train_steps_per_epoch * cfg.num_epochs * cfg.sgd_steps_per_train_step
    assert all(np.isfinite(v) for v in last.values())
    fresh = result.trainer.agent.networks.init(jax.random.PRNGKey(0))
    moved = lambda a, b: any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    assert moved(state.actor_params, fresh["actor"])
    if result.trainer.agent.has_critic:
        assert moved(state.critic_params, fresh["critic"])
    if state.target_params is not None:  # Polyak targets trail the online networks: they moved, but not as far
        assert moved(state.target_params["critic"], fresh["critic"])
        assert moved(state.target_params["critic"], state.critic_params)


def test_sac_her_resume_after_sigterm_is_bit_identical(runs, tmp_path):
    """Stopped by SIGTERM after epoch 1 (checkpoint on the way out), then resumed: the same records as straight."""
    straight = runs("sac_her")
    cfg = tiny_config(algorithm="sac_her", run_dir=str(tmp_path))

    def signal_after_first_epoch(line: str) -> None:
        if line.startswith("epoch") and line.split()[1].startswith("1/"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted):
        train(dataclasses.replace(cfg, progress=True), print_fn=signal_after_first_epoch)
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1]
    resumed = train(cfg, print_fn=None)
    assert resumed.trainer.trace_counts == TRACES
    assert comparable(read_metrics(tmp_path / "metrics.jsonl")) == comparable(read_metrics(straight.run_dir / "metrics.jsonl"))
    for got, want in zip(jax.tree.leaves(resumed.state.target_params), jax.tree.leaves(straight.state.target_params)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["sac_her", "td3_her"])
def test_vmapped_seeds_on_four_devices_equal_separate_runs(algorithm, tmp_path):
    """Two seeds vmapped in one program, envs / buffer / batch sharded over 4 forced CPU devices: each seed's
    metrics equal its own single-device run (test_scale.py's guarantee for CRL)."""
    from test_scale import FORCED_DEVICES, SEEDS, _forced_devices_flags, _run_python, assert_same_metrics

    separate = {seed: train(tiny_config(algorithm=algorithm, seed=seed, run_dir=str(tmp_path / f"s{seed}")),
                            print_fn=None).history for seed in SEEDS}
    code = f"""
import crl
from crl import _platform
_platform.enable_compilation_cache()
from crl.train import train
from tiny_run import tiny_config
train(tiny_config(algorithm={algorithm!r}, num_devices={FORCED_DEVICES}, num_seeds={len(SEEDS)},
                  run_dir={str(tmp_path / 'packed')!r}), print_fn=None)
"""
    _run_python(code, _forced_devices_flags(FORCED_DEVICES))
    for seed in SEEDS:
        assert_same_metrics(read_metrics(tmp_path / "packed" / "seeds" / str(seed) / "metrics.jsonl"), separate[seed])
    assert separate[0][-1]["training/critic_loss"] != separate[1][-1]["training/critic_loss"]


def test_q_maps_draw_the_twin_critics_and_refuse_gcbc(runs):
    """`crl viz q` on sac_her draws min_i Q_i(s, tanh(mu), g) over the maze; gcbc has no critic and is refused."""
    from crl.viz.qmap import farthest_goal_cell, q_map
    from crl.viz.run_view import load_run_view

    view = load_run_view(runs("sac_her").run_dir)
    maze = view.maze("test")
    drawn = q_map(view, maze.cell_centre(farthest_goal_cell(maze)), per_cell=2)
    free = np.flatnonzero(drawn.free.reshape(-1))[:6]
    assert np.all(np.isfinite(drawn.q[drawn.free])) and np.ptp(drawn.q[drawn.free]) > 0
    goals = np.broadcast_to(drawn.goal, (len(free), drawn.goal.shape[0]))
    twins = view.trainer.networks.q_values(view.critic_params, drawn.states[free], drawn.actions[free], goals)
    np.testing.assert_allclose(drawn.q.reshape(-1)[free], np.min(twins, axis=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="learns no critic"):
        q_map(load_run_view(runs("gcbc").run_dir), np.zeros(2))


def test_docs_example_algorithm_registers_through_crl_plugins_and_trains(monkeypatch, tmp_path):
    """docs/examples/mse_bc.py, named in CRL_PLUGINS, is one module that the CLI path loads and the trainer runs."""
    from crl.agents import registry
    from crl.plugins import PLUGINS_VAR, load_plugins

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "docs" / "examples"))
    monkeypatch.setenv(PLUGINS_VAR, "mse_bc")
    try:
        assert load_plugins() == ["mse_bc"]
        result = train(tiny_config(algorithm="mse_bc", run_dir=str(tmp_path), num_epochs=1, checkpoint_every=0),
                       print_fn=None)
    finally:
        registry._ALGORITHMS.pop("mse_bc", None)
    assert result.trainer.trace_counts == TRACES
    assert np.isfinite(result.history[-1]["training/mse_loss"])


def test_a_plugin_that_does_not_import_is_named(monkeypatch):
    from crl.plugins import PLUGINS_VAR, PluginError, load_plugins

    monkeypatch.setenv(PLUGINS_VAR, "crl, no_such_module_here")
    with pytest.raises(PluginError, match="cannot import 'no_such_module_here'.*PYTHONPATH"):
        load_plugins()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["sac_her", "td3_her"])
def test_hindsight_baselines_learn_on_the_point_maze(algorithm, tmp_path):
    """The quickstart maze at width 64 with 24 SGD steps per training step, 3 vmapped seeds (~3 min each):
    every seed ends far above the uniform random policy (which scores 0); docs/algorithms.md has the numbers."""
    from crl.config import load_yaml

    cfg = dataclasses.replace(load_yaml("quickstart"), algorithm=algorithm, critic_width=64, actor_width=64,
                              sgd_steps_per_train_step=24, num_seeds=3, run_dir=str(tmp_path), progress=False,
                              tensorboard=False)
    train(cfg, print_fn=None)
    for seed in range(3):
        records = read_metrics(tmp_path / "seeds" / str(seed) / "metrics.jsonl")
        assert records[0]["eval/random_episode_success"] < 1.0
        best = max(r["eval/episode_success"] for r in records[-3:])
        assert best > 10.0, (algorithm, seed, [r["eval/episode_success"] for r in records])


def test_checkpoints_from_before_target_params_restore(tmp_path):
    """A checkpoint written before TrainingState had `target_params` (the same fields less that one, as orbax
    stores them) restores into today's CRL state with target_params None and every other leaf intact."""
    from crl.checkpoint import Checkpointer
    from crl.train import TrainingState

    leaf = lambda n: jax.numpy.arange(n, dtype=jax.numpy.float32)  # noqa: E731
    state = TrainingState(actor_params={"w": leaf(3)}, critic_params={"w": leaf(4)}, log_alpha=leaf(1)[0],
                          actor_opt_state={"m": leaf(3)}, critic_opt_state={"m": leaf(4)}, alpha_opt_state={"m": leaf(1)},
                          buffer={"obs": leaf(5)}, env_state={"x": leaf(2)}, key=jax.random.PRNGKey(3),
                          env_steps=jax.numpy.int32(7), grad_steps=jax.numpy.int32(9))
    legacy = {name: getattr(state, name) for name in state.__dataclass_fields__ if name != "target_params"}
    ckpt = Checkpointer(tmp_path, keep_last=2, keep_best=False)
    try:
        ckpt.save(1, legacy, {"config": {}}, 0.0, include_buffer=True)
        restored = ckpt.restore_latest(jax.eval_shape(lambda: state), log=lambda _: None)
    finally:
        ckpt.close()
    assert restored.state.target_params is None
    for got, want in zip(jax.tree.leaves(restored.state), jax.tree.leaves(state)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow  # ~35 s of compiles; the options reach the critics through mlp_from_config, as CRL's
def test_twin_critics_take_scan_unroll_remat_and_bf16_like_crl():
    """Depth options apply to the baselines' networks: scanned, unrolled and rematerialised twin critics give
    the same values and gradients on the same params; bf16 blocks stay close (float32 input layer and heads)."""
    from crl.agents import build_agent
    from crl.bench import ANT_SHAPES
    from crl.config import TrainConfig

    base = dict(algorithm="td3_her", critic_depth=8, critic_width=16, actor_depth=4, actor_width=16)
    agents = {name: build_agent(ANT_SHAPES, TrainConfig(**base, **extra)) for name, extra in
              {"scan": {}, "unrolled": {"unroll_blocks": True}, "remat": {"remat": True},
               "bf16": {"compute_dtype": "bfloat16"}}.items()}
    params = jax.jit(agents["scan"].networks.init)(jax.random.PRNGKey(0))["critic"]
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    s, a, g = (jax.random.normal(k, (8, d)) for k, d in zip(keys, (ANT_SHAPES.state_dim, ANT_SHAPES.action_size,
                                                                    ANT_SHAPES.goal_dim)))

    def value_and_grad(agent):
        fn = lambda p: jax.numpy.sum(agent.networks.q_values(p, s, a, g))  # noqa: E731
        return jax.jit(jax.value_and_grad(fn))(params)

    want, want_grad = value_and_grad(agents["scan"])
    assert jax.tree.leaves(params)[0].shape[0] == 2  # twin critics stacked on a leading axis
    for name in ("unrolled", "remat"):
        got, grad = value_and_grad(agents[name])
        np.testing.assert_allclose(got, want, rtol=1e-5)
        for x, y in zip(jax.tree.leaves(grad), jax.tree.leaves(want_grad)):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    got, _ = value_and_grad(agents["bf16"])
    assert got != want and abs(got - want) < 0.05 * abs(want) + 0.05
