"""Issue 20's faster CRL update, each change against the implementation before it (docs/performance.md):
psi(g) computed once and shared by both losses, the matmul-form logits and the 'dense' block residual policy."""
import dataclasses

import types

import crl  # noqa: F401  (before jax)
import jax
import numpy as np
import optax
import pytest

from crl import _platform, env_catalog
from crl._platform import FUSION_EMITTERS_OPTION, training_compiler_options
from crl.agents import contrastive
from crl.agents.base import Optimizers, apply_updates
from crl.config import TrainConfig
from crl.envs.spec import EnvSpec
from crl.losses import make_losses
from crl.programs import epoch_compiler_options
from crl.train import init_learner_state

SPEC = EnvSpec(name="tiny", backend="none", state_dim=5, goal_indices=(0, 1), action_size=3, episode_length=20,
               dt=0.1, success_radius=0.5)
CFG = TrainConfig(critic_depth=8, critic_width=32, actor_depth=8, actor_width=32, repr_dim=16, batch_size=48,
                  actor_lr=1e-2, critic_lr=1e-2, alpha_lr=1e-2)
BEFORE = dict(logits_form="broadcast", block_residuals="all")  # the update's settings before issue 20
MATMUL = dict(logits_form="matmul")
STEPS = 3
SGD_LR = 1e-2


def step_before(losses, opt):
    """The SGD step as it was before issue 20: actor and alpha first (the goal encoder run inside the actor's
    loss), then the critic with its own goal-encoder pass."""

    def sgd_step(state, batch_and_key):
        batch, key = batch_and_key
        (_, actor_metrics), actor_grads = jax.value_and_grad(losses.actor_loss_fn, has_aux=True)(
            state.actor_params, state.critic_params, state.log_alpha, batch, key)
        (_, alpha_metrics), alpha_grad = jax.value_and_grad(losses.alpha_loss_fn, has_aux=True)(
            state.log_alpha, -actor_metrics["entropy"])
        (_, critic_metrics), critic_grads = jax.value_and_grad(losses.critic_loss_fn, has_aux=True)(
            state.critic_params, batch)
        actor_params, actor_opt = apply_updates(opt.actor, actor_grads, state.actor_opt_state, state.actor_params)
        log_alpha, alpha_opt = apply_updates(opt.alpha, alpha_grad, state.alpha_opt_state, state.log_alpha)
        critic_params, critic_opt = apply_updates(opt.critic, critic_grads, state.critic_opt_state,
                                                  state.critic_params)
        state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt, log_alpha=log_alpha,
                              alpha_opt_state=alpha_opt, critic_params=critic_params, critic_opt_state=critic_opt,
                              grad_steps=state.grad_steps + 1)
        return state, {**actor_metrics, **alpha_metrics, **critic_metrics}

    return sgd_step


def batches_and_keys(cfg):
    ks = jax.random.split(jax.random.key(3), 4)
    state = jax.random.normal(ks[0], (STEPS, cfg.batch_size, SPEC.state_dim))
    batch = contrastive.Batch(state=state,
                              action=jax.numpy.tanh(jax.random.normal(ks[1], (STEPS, cfg.batch_size, SPEC.action_size))),
                              goal=state[..., :2] + 0.1 * jax.random.normal(ks[2], (STEPS, cfg.batch_size, 2)))
    return batch, jax.random.split(ks[3], STEPS)


def run(cfg, make_step, optimizers=None, steps=STEPS, compiler_options=None):
    """`steps` SGD steps of a fresh learner, as training runs them (a scan): (final state, per-step metrics)."""
    agent = contrastive.build(SPEC, cfg)
    agent = dataclasses.replace(agent, optimizers=optimizers or agent.optimizers)
    step = make_step(make_losses(agent.networks, cfg, SPEC.action_size), agent.optimizers)
    state = init_learner_state(agent, jax.random.key(0))
    xs = jax.tree.map(lambda x: x[:steps], batches_and_keys(cfg))
    return jax.jit(lambda s, xs: jax.lax.scan(step, s, xs), compiler_options=compiler_options)(state, xs)


def learned(state):
    """What an SGD step changes: params, optimiser states and the entropy temperature."""
    return (state.actor_params, state.critic_params, state.log_alpha, state.actor_opt_state,
            state.critic_opt_state, state.alpha_opt_state)


def test_shared_goal_representation_changes_nothing():
    """Computing psi(g) once for both losses (and the critic's gradient first) gives the update before it, bit
    for bit, Adam included."""
    cfg = dataclasses.replace(CFG, **BEFORE)
    new_state, new_metrics = run(cfg, contrastive.make_sgd_step)
    old_state, old_metrics = run(cfg, step_before)
    jax.tree.map(np.testing.assert_array_equal, new_metrics, old_metrics)
    jax.tree.map(np.testing.assert_array_equal, learned(new_state), learned(old_state))


@pytest.mark.parametrize("change", [MATMUL, {"block_residuals": "dense"}, {}, {"block_residuals": "dense", **MATMUL}])
def test_faster_update_matches_the_one_before(change):
    """Each change alone, the defaults and all changes together, against the update before issue 20: one plain
    SGD step (params - lr * gradient) and its metrics agree within float32 rounding.

    One step, and SGD, because both alternatives amplify rounding by design rather than measure the losses: Adam's
    first step moves each parameter by about lr * sign(gradient), and later actor steps go through tanh near
    saturation, where log(1 - tanh(u)^2) turns a 1e-9 change in the critic into a 1e-4 one in the actor loss."""
    cfg = dataclasses.replace(CFG, **{**BEFORE, **change}) if change else CFG
    assert cfg != dataclasses.replace(CFG, **BEFORE)
    sgd = Optimizers(*(optax.sgd(SGD_LR),) * 3)
    new_state, new_metrics = run(cfg, contrastive.make_sgd_step, sgd, steps=1)
    old_state, old_metrics = run(dataclasses.replace(CFG, **BEFORE), step_before, sgd, steps=1)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), new_metrics, old_metrics)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8), learned(new_state),
                 learned(old_state))
    moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), learned(new_state)[1],
                         init_learner_state(contrastive.build(SPEC, cfg), jax.random.key(0)).critic_params)
    assert min(jax.tree.leaves(moved)) > 0  # the step did change every critic leaf: the comparison has content


def test_vmapped_seeds_agree_with_separate_updates_under_the_matmul_logits():
    """Vmapped seeds with logits_form='matmul' (the default): one SGD step per seed, vmapped, equals each seed's own
    step within float32 rounding (its batched dots round differently); with half the goals repeated, as in relabelled
    batches, categorical_accuracy is equal exactly. The exact ties behind that are tested in test_losses.py
    (test_matmul_logits_tie_equal_goals_exactly); test_scale.py's epoch-long comparisons are where they matter."""
    cfg = dataclasses.replace(CFG, **MATMUL)
    agent = contrastive.build(SPEC, cfg)
    sgd = Optimizers(*(optax.sgd(SGD_LR),) * 3)  # plain SGD: see test_faster_update_matches_the_one_before
    step = contrastive.make_sgd_step(make_losses(agent.networks, cfg, SPEC.action_size), sgd)
    seeds = jax.random.split(jax.random.key(5), 2)
    states = jax.vmap(lambda k: init_learner_state(dataclasses.replace(agent, optimizers=sgd), k))(seeds)
    batch, keys = batches_and_keys(cfg)  # one batch and key per seed: the first two of STEPS
    batch = batch.replace(goal=batch.goal.at[:, 1::2].set(batch.goal[:, ::2]))  # relabelled batches repeat goals
    xs = jax.tree.map(lambda x: x[:2], (batch, keys))
    vmapped_state, vmapped_metrics = jax.jit(jax.vmap(step))(states, xs)
    for i in range(2):
        state_i, metrics_i = jax.jit(step)(jax.tree.map(lambda x: x[i], states), jax.tree.map(lambda x: x[i], xs))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6), vmapped_metrics,
                     metrics_i)
        assert vmapped_metrics["categorical_accuracy"][i] == metrics_i["categorical_accuracy"]
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-6, atol=1e-7), learned(vmapped_state),
                     learned(state_i))


@pytest.mark.skipif(not training_compiler_options(legacy_fusion=False), reason="no XLA:CPU fusion-emitter choice here")
def test_fusion_emitters_change_the_update_only_within_rounding():
    """The epoch's XLA:CPU fusion emitters against the legacy ones (the process default, and the update before):
    one SGD step's metrics and params agree within float32 rounding (one plain SGD step: see
    test_faster_update_matches_the_one_before)."""
    sgd = Optimizers(*(optax.sgd(SGD_LR),) * 3)
    new_state, new_metrics = run(CFG, contrastive.make_sgd_step, sgd, steps=1,
                                 compiler_options={FUSION_EMITTERS_OPTION: True})
    old_state, old_metrics = run(CFG, contrastive.make_sgd_step, sgd, steps=1,
                                 compiler_options={FUSION_EMITTERS_OPTION: False})
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), new_metrics, old_metrics)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8), learned(new_state),
                 learned(old_state))


def test_training_programs_choose_their_fusion_emitters(monkeypatch):
    """The epoch uses XLA:CPU's newer fusion emitters unless it steps an env declaring cpu_legacy_fusion (the
    7-joint arms and pusher) or its process drives several devices; offline epochs step no env; a jaxlib without
    the flag gets no option at all."""
    if jax.default_backend() != "cpu":
        pytest.skip("the option is for XLA:CPU")
    legacy = {name for name, fields in env_catalog.SPECS.items() if fields["cpu_legacy_fusion"]}
    assert legacy == {name for name in env_catalog.SPECS if name.startswith(("arm_", "pusher_"))}
    arm = EnvSpec(**{"name": "arm_reach", **env_catalog.SPECS["arm_reach"]})
    one, four = (types.SimpleNamespace(local_devices=[None] * n) for n in (1, 4))
    for spec, offline, mesh, emitters in [(SPEC, False, one, True), (arm, False, one, False), (arm, True, one, True),
                                          (SPEC, False, four, False)]:
        trainer = types.SimpleNamespace(spec=spec, offline=offline, mesh=mesh)
        assert epoch_compiler_options(trainer) == {FUSION_EMITTERS_OPTION: emitters}
    monkeypatch.setattr(_platform, "_jaxlib_version", lambda: (0, 11))  # jaxlib 0.11 aborts on the unknown flag
    assert training_compiler_options(legacy_fusion=False) == {}
