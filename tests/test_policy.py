"""The exported actor (crl.policy): its observation check, batch axes, sampled actions and summary; run-dir errors."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl.cli import main
from crl.config import ConfigError
from tiny_run import TINY_RUN, tiny_config

STATE_DIM = GOAL_DIM = ACTION_SIZE = 2  # point_u_maze: xy state, xy goal, xy action
OBS_DIM = STATE_DIM + GOAL_DIM
MAX_REPR_CHARS = 200  # a one-line summary, not a dump of the parameter arrays


@pytest.fixture(scope="module")
def actor(tmp_path_factory):
    """The actor of a tiny point-maze run, exported and loaded back as a user would."""
    from crl.policy import export_actor, load_actor
    from crl.train import train

    run_dir = tmp_path_factory.mktemp("run")
    train(tiny_config(run_dir=str(run_dir)), print_fn=None)
    return load_actor(export_actor(run_dir, tmp_path_factory.mktemp("actor")))


@pytest.mark.parametrize("shape", [(5, OBS_DIM - 1), (OBS_DIM + 1,), (), (OBS_DIM, 1)])
def test_a_wrong_observation_size_names_the_expected_one(actor, shape):
    with pytest.raises(ValueError) as err:
        actor(jnp.zeros(shape))
    assert str(err.value) == (
        f"point_u_maze's actor takes observations of size {OBS_DIM} = state_dim {STATE_DIM} + goal_dim {GOAL_DIM} "
        f"(concat(state, goal) on the last axis), got shape {shape}; build obs as "
        "jnp.concatenate([state, goal], axis=-1)")
    with pytest.raises(ValueError, match=f"size {OBS_DIM} = state_dim"):
        actor.sample(jnp.zeros(shape), jax.random.PRNGKey(0))


def test_leading_axes_are_batch_axes(actor):
    obs = jax.random.normal(jax.random.PRNGKey(1), (3, 5, OBS_DIM))
    batched = actor(obs)
    assert batched.shape == (3, 5, ACTION_SIZE) and actor(obs[0, 0]).shape == (ACTION_SIZE,)
    np.testing.assert_allclose(actor(obs[0, 0]), batched[0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(actor(obs.reshape(-1, OBS_DIM)), batched.reshape(-1, ACTION_SIZE), rtol=1e-5,
                               atol=1e-6)
    assert (jnp.abs(batched) <= 1.0).all()


def test_sampled_actions_spread_around_the_deterministic_one(actor):
    obs = jnp.tile(jnp.array([1.0, 1.0, 3.0, 1.0]), (256, 1))  # one observation, 256 draws
    sampled = actor.sample(obs, jax.random.PRNGKey(2))
    assert sampled.shape == (256, ACTION_SIZE) and (jnp.abs(sampled) <= 1.0).all()
    assert float(sampled.std(axis=0).min()) > 0.0  # the draws differ ...
    assert not jnp.array_equal(sampled[0], actor(obs[0]))  # ... from one another and from tanh(mu)
    np.testing.assert_array_equal(sampled, actor.sample(obs, jax.random.PRNGKey(2)))  # same key, same draws


def test_repr_is_a_short_summary(actor):
    params = sum(int(leaf.size) for leaf in jax.tree.leaves(actor.params))
    text = repr(actor)
    assert text == (f"ExportedActor(env='point_u_maze', epoch={TINY_RUN['num_epochs']}, actor depth "
                    f"{TINY_RUN['actor_depth']} x width {TINY_RUN['actor_width']}, obs {OBS_DIM} = state {STATE_DIM} + "
                    f"goal {GOAL_DIM}, action {ACTION_SIZE}, {params:,} parameters)")
    assert len(text) < MAX_REPR_CHARS and str(actor) == text


def test_load_actor_documents_the_observation_layout():
    from crl.policy import load_actor

    doc = load_actor.__doc__
    assert "concat(state, goal)" in doc and "tanh(mu(obs))" in doc and "(B, obs_dim)" in doc


def test_a_missing_run_dir_is_named_as_missing(tmp_path, capsys):
    from crl.policy import load_run_config

    missing = tmp_path / "no_such_run"
    with pytest.raises(ConfigError, match=r"no_such_run does not exist \(or is not a directory\); check the path"):
        load_run_config(missing)
    with pytest.raises(ConfigError, match="no config.yaml there"):
        load_run_config(tmp_path)  # it exists, but no run was written there
    assert main(["train", "--resume", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "ls runs/" in err and "config.yaml" not in err
