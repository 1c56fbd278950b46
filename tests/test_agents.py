"""The algorithm interface (crl/agents): SAC and TD3 critic targets and losses, TD3 smoothing and delayed
updates, Polyak targets, the BC log-likelihood, the mrn energy, HER relabelling statistics, the registry and
the baselines' config checks. Each against an independent numpy computation on tiny networks (no training)."""
import dataclasses
import functools
import math

import crl  # noqa: F401  (before jax)
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from stats import chi2_ok
from tiny_run import tiny_config

from crl import buffer as rb
from crl.agents import Agent, algorithm_names, build_agent, get_algorithm, register_algorithm
from crl.agents import hindsight as hs
from crl.agents import imitation, registry
from crl.agents.q_networks import NUM_Q, make_twin_q_networks
from crl.agents.sac import make_sac_losses
from crl.agents.td3 import make_td3_losses, smoothed_target_action
from crl.config import ConfigError, TrainConfig, validate
from crl.envs.spec import EnvSpec
from crl.losses import NORM_EPS, paired_energy, pairwise_energy
from crl.networks import ACTION_EDGE_EPS, TANH_LOG_DET_EPS
from crl.train import TrainingState, make_trainer

S, G, A, B = 4, 2, 3, 32  # state dim, goal dim, action size, batch
SPEC = EnvSpec(name="tiny", backend="none", state_dim=S, goal_indices=(0, 1), action_size=A, episode_length=20,
               dt=0.1, success_radius=0.5)
CFG = TrainConfig(critic_depth=4, critic_width=16, actor_depth=4, actor_width=16, repr_dim=8, batch_size=B,
                  discount=0.9, actor_lr=1e-2, critic_lr=1e-2, alpha_lr=1e-2)
TOL = dict(rtol=1e-5, atol=1e-5)
SIGMAS = 6.0  # binomial bound: |k - n p| <= 6 sd


def f64(x):
    return np.asarray(x, np.float64)


def random_batch(key, batch=B):
    """A relabelled-transition batch as the HER pool gives it, with a mask that has zeros."""
    ks = jax.random.split(key, 6)
    mask = (jax.random.uniform(ks[5], (batch,)) < 0.7).astype(jnp.float32).at[:3].set(jnp.array([0.0, 1.0, 0.0]))
    return {
        rb.STATE_KEY: jax.random.normal(ks[0], (batch, S)),
        rb.ACTION_KEY: jnp.tanh(jax.random.normal(ks[1], (batch, A))),
        rb.GOAL_KEY: jax.random.normal(ks[2], (batch, G)),
        hs.NEXT_STATE_KEY: jax.random.normal(ks[3], (batch, S)),
        hs.REWARD_KEY: (jax.random.uniform(ks[4], (batch,)) < 0.5).astype(jnp.float32),
        hs.MASK_KEY: mask,
        hs.RELABELLED_KEY: jnp.zeros((batch,), jnp.float32),
    }


def obs_of(state, goal):
    return jnp.concatenate([state, goal], axis=-1)


def masked_half_mse(q, target, mask):
    """0.5 * mean over critics and rows with mask 1 of (q - target)^2, numpy float64."""
    keep = f64(mask) == 1.0
    return 0.5 * np.mean(np.square(f64(q) - f64(target)[None])[:, keep])


def random_params(networks, seed):
    """Params shaped as networks.init's, drawn in numpy: compiling flax's init of the scanned residual MLPs takes
    ~10 s on a 2-core CPU, per network. Kernels ~ N(0, 1/fan_in), LayerNorm scales ~ 1, biases small."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = path[-1].key
        if name == "kernel":
            value = rng.normal(0.0, 1.0 / math.sqrt(leaf.shape[-2]), leaf.shape)
        elif name == "scale":
            value = 1.0 + 0.1 * rng.normal(size=leaf.shape)
        else:
            value = 0.1 * rng.normal(size=leaf.shape)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, jax.eval_shape(networks.init, jax.random.key(0)))


def learner_state(agent, params):
    """A TrainingState without buffer or envs, as crl.train.init_learner_state builds it, from given params."""
    opt, log_alpha = agent.optimizers, jnp.zeros((), jnp.float32)
    return TrainingState(
        actor_params=params["actor"], critic_params=params["critic"], log_alpha=log_alpha,
        actor_opt_state=opt.actor.init(params["actor"]), critic_opt_state=opt.critic.init(params["critic"]),
        alpha_opt_state=opt.alpha.init(log_alpha), buffer=None, env_state=None, key=jax.random.key(0),
        env_steps=jnp.zeros((), jnp.int32), grad_steps=jnp.zeros((), jnp.int32),
        target_params=agent.init_targets(params))


def leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def leaves_differ(a, b):
    """Every leaf changed somewhere (an optimiser step with a generic gradient moves every leaf)."""
    return all(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ---------------------------------------------------------------- SAC critic target and loss

@pytest.fixture(scope="module")
def sac_setup():
    """Networks, random params and target critics, the critic loss with its gradient w.r.t. (critic, target
    critic, actor, alpha) as one jitted program, and the network outputs the numpy reference needs as another."""
    nets = make_twin_q_networks(SPEC, CFG)
    params, target_critic = random_params(nets, 0), random_params(nets, 1)["critic"]
    critic_loss, _ = make_sac_losses(nets, CFG.discount)
    loss_and_grads = jax.jit(jax.value_and_grad(critic_loss, argnums=(0, 1, 2, 3), has_aux=True))

    @jax.jit
    def forward(params, target_critic, batch, key):
        next_action, next_logp = nets.sample_action(
            params["actor"], obs_of(batch[hs.NEXT_STATE_KEY], batch[rb.GOAL_KEY]), key)
        next_q = nets.q_values(target_critic, batch[hs.NEXT_STATE_KEY], next_action, batch[rb.GOAL_KEY])
        q = nets.q_values(params["critic"], batch[rb.STATE_KEY], batch[rb.ACTION_KEY], batch[rb.GOAL_KEY])
        return next_logp, next_q, q

    def run(batch, key, alpha):
        (loss, metrics), grads = loss_and_grads(params["critic"], target_critic, params["actor"], jnp.float32(alpha),
                                                batch, key)
        return loss, metrics, grads

    return run, functools.partial(forward, params, target_critic)


def sac_numpy_loss(forward, alpha, batch, key, min_over_twins=True, entropy=True):
    """The SAC critic loss in numpy from the networks' outputs: target r + discount * (min_i Q'_i - alpha logp')."""
    next_logp, next_q, q = (f64(x) for x in forward(batch, key))
    assert next_q.shape == q.shape == (NUM_Q, B)
    soft = (next_q.min(axis=0) if min_over_twins else next_q.mean(axis=0)) - (alpha * next_logp if entropy else 0)
    target = f64(batch[hs.REWARD_KEY]) + CFG.discount * soft
    return masked_half_mse(q, target, batch[hs.MASK_KEY]), target


def test_sac_critic_loss_matches_numpy(sac_setup):
    run, forward = sac_setup
    batch, key, alpha = random_batch(jax.random.key(2)), jax.random.key(3), 0.7
    loss, metrics, _ = run(batch, key, alpha)
    want, target = sac_numpy_loss(forward, alpha, batch, key)
    np.testing.assert_allclose(loss, want, **TOL)
    np.testing.assert_allclose(metrics["target_q"], target.mean(), **TOL)
    assert metrics["critic_loss"] == loss
    # the inputs tell the ingredients apart: a mean over twins or a missing entropy term gives another loss
    for wrong in (dict(min_over_twins=False), dict(entropy=False)):
        other, _ = sac_numpy_loss(forward, alpha, batch, key, **wrong)
        assert abs(other - want) > 1e3 * TOL["rtol"] * abs(want), wrong


def test_sac_critic_loss_ignores_masked_rows(sac_setup):
    run, forward = sac_setup
    batch, key, alpha = random_batch(jax.random.key(4)), jax.random.key(5), 0.2
    masked = f64(batch[hs.MASK_KEY]) == 0.0
    assert 0 < masked.sum() < B
    loss, _, _ = run(batch, key, alpha)
    # garbage in the masked rows (huge rewards, far-away next states) must not change the loss
    junk = dict(batch)
    junk[hs.REWARD_KEY] = jnp.where(masked, 1e4, batch[hs.REWARD_KEY])
    junk[hs.NEXT_STATE_KEY] = jnp.where(masked[:, None], 50.0, batch[hs.NEXT_STATE_KEY])
    junk[rb.STATE_KEY] = jnp.where(masked[:, None], -50.0, batch[rb.STATE_KEY])
    junk_loss, _, _ = run(junk, key, alpha)
    np.testing.assert_allclose(junk_loss, loss, rtol=1e-6)
    # ... while unmasking them does (the rows really were excluded, not merely small)
    unmasked = dict(junk, **{hs.MASK_KEY: jnp.ones((B,), jnp.float32)})
    all_loss, _, _ = run(unmasked, key, alpha)
    assert float(all_loss) > 100 * float(loss)
    want, _ = sac_numpy_loss(forward, alpha, unmasked, key)
    np.testing.assert_allclose(all_loss, want, rtol=1e-5)


def test_sac_critic_loss_gradient_skips_the_target(sac_setup):
    run, _ = sac_setup
    _, _, (critic_grad, target_grad, actor_grad, alpha_grad) = run(random_batch(jax.random.key(6)),
                                                                   jax.random.key(7), 0.5)
    assert all(np.all(g == 0) for g in jax.tree.leaves(target_grad))
    assert all(np.all(g == 0) for g in jax.tree.leaves(actor_grad))  # the next action is inside the target too
    assert alpha_grad == 0
    assert all(np.any(g != 0) for g in jax.tree.leaves(critic_grad))


# ---------------------------------------------------------------- TD3 smoothing and critic loss

@pytest.mark.parametrize("noise, noise_clip", [(0.2, 0.5), (10.0, 0.3)])
def test_td3_smoothed_target_action_matches_numpy(noise, noise_clip):
    n = 4096
    key_a, key = jax.random.split(jax.random.key(8))
    action = jax.random.uniform(key_a, (n, A), minval=-1.0, maxval=1.0)
    got = jax.jit(smoothed_target_action, static_argnums=(2, 3))(action, key, noise, noise_clip)
    normal = f64(jax.random.normal(key, (n, A), jnp.float32))
    eps = np.clip(noise * normal, -noise_clip, noise_clip)
    want = np.clip(f64(action) + eps, -1.0, 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert got.dtype == jnp.float32 and np.all(np.abs(f64(got)) <= 1.0)
    if noise > 1:  # both clips bind, each way
        assert np.sum(eps == noise_clip) > n and np.sum(eps == -noise_clip) > n
        assert np.sum(f64(got) == 1.0) > 100 and np.sum(f64(got) == -1.0) > 100
        assert np.all(np.abs(f64(got) - f64(action)) <= noise_clip + 1e-6)


def test_td3_critic_loss_matches_numpy():
    cfg = dataclasses.replace(CFG, target_noise=0.3, target_noise_clip=0.4)
    nets = make_twin_q_networks(SPEC, cfg, deterministic=True)
    params, target_params = random_params(nets, 9), random_params(nets, 10)
    targets = {"actor": target_params["actor"], "critic": target_params["critic"]}
    critic_loss, _ = make_td3_losses(nets, cfg)
    batch, key = random_batch(jax.random.key(11)), jax.random.key(12)
    (loss, metrics), (critic_grad, target_grad) = jax.jit(
        jax.value_and_grad(critic_loss, argnums=(0, 1), has_aux=True))(params["critic"], targets, batch, key)

    # numpy reference: pi'(s') from the target actor, smoothing noise from the same key, Q' from the target critics
    mu = f64(jax.jit(nets.deterministic_action)(targets["actor"], obs_of(batch[hs.NEXT_STATE_KEY], batch[rb.GOAL_KEY])))
    eps = np.clip(cfg.target_noise * f64(jax.random.normal(key, mu.shape, jnp.float32)),
                  -cfg.target_noise_clip, cfg.target_noise_clip)
    next_action = jnp.asarray(np.clip(mu + eps, -1.0, 1.0), jnp.float32)
    q_values = jax.jit(nets.q_values)
    next_q = f64(q_values(targets["critic"], batch[hs.NEXT_STATE_KEY], next_action, batch[rb.GOAL_KEY]))
    q = q_values(params["critic"], batch[rb.STATE_KEY], batch[rb.ACTION_KEY], batch[rb.GOAL_KEY])
    target = f64(batch[hs.REWARD_KEY]) + cfg.discount * next_q.min(axis=0)  # no entropy term
    want = masked_half_mse(q, target, batch[hs.MASK_KEY])
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["target_q"], target.mean(), rtol=1e-5, atol=1e-6)
    # the inputs tell min from mean over the twins
    other = masked_half_mse(q, f64(batch[hs.REWARD_KEY]) + cfg.discount * next_q.mean(axis=0), batch[hs.MASK_KEY])
    assert abs(other - want) > 1e-3 * abs(want)
    assert all(np.all(g == 0) for g in jax.tree.leaves(target_grad))  # no gradient through the target networks
    assert all(np.any(g != 0) for g in jax.tree.leaves(critic_grad))


# ---------------------------------------------------------------- BC log-likelihood

def np_tanh_gaussian_log_likelihood(action, mean, log_std):
    edge = np.float32(1.0 - ACTION_EDGE_EPS)  # clipped in float32 as the data are, then float64
    a = f64(np.clip(np.asarray(action, np.float32), -edge, edge))
    u, mean, log_std = np.arctanh(a), f64(mean), f64(log_std)
    std = np.exp(log_std)
    normal = -0.5 * np.square((u - mean) / std) - log_std - 0.5 * math.log(2 * math.pi)
    return np.sum(normal, axis=-1) - np.sum(np.log(1.0 - np.square(a) + TANH_LOG_DET_EPS), axis=-1)


def test_bc_log_likelihood_matches_numpy_tanh_gaussian():
    nets = imitation.build(SPEC, CFG).networks
    params = random_params(nets, 13)
    assert params["critic"] == {}
    ks = jax.random.split(jax.random.key(14), 3)
    obs = jax.random.normal(ks[0], (B, S + G))
    action = np.array(jax.random.uniform(ks[1], (B, A), minval=-0.95, maxval=0.95))
    edge = np.zeros(B, bool)
    edge[:4] = True
    action[0, 0], action[1, 2], action[2] = 1.0, -1.0, [1.0, -1.0, 1.0]  # tanh samples can hit +-1 in float32
    action[3, 1] = 0.9999999  # rounds to 1 in float32
    action = jnp.asarray(action, jnp.float32)
    log_likelihood = jax.jit(nets.log_likelihood)
    got = f64(log_likelihood(params["actor"], obs, action))
    mean, log_std = jax.jit(nets.actor_dist)(params["actor"], obs)
    want = np_tanh_gaussian_log_likelihood(action, mean, log_std)
    assert got.shape == (B,) and np.all(np.isfinite(got))
    np.testing.assert_allclose(got[~edge], want[~edge], rtol=1e-4, atol=1e-4)
    # at +-1 the clip keeps it finite; float32 rounds 1 - tanh(u)^2 ~ 2e-6 there (log off by < 0.05 per edge dim)
    np.testing.assert_allclose(got[edge], want[edge], rtol=1e-5, atol=0.2)
    # bc_loss is minus its mean
    batch = {rb.STATE_KEY: obs[:, :S], rb.GOAL_KEY: obs[:, S:], rb.ACTION_KEY: action}
    loss, metrics = jax.jit(functools.partial(imitation.bc_loss, nets))(params["actor"], batch)
    np.testing.assert_allclose(loss, -got.mean(), rtol=1e-5)
    det = f64(jnp.tanh(mean))
    np.testing.assert_allclose(metrics["action_mse"], np.mean(np.sum(np.square(det - f64(action)), -1)), rtol=1e-5)


# ---------------------------------------------------------------- mrn energy

def np_mrn(x, y):
    x, y = f64(x), f64(y)
    half = x.shape[-1] // 2
    symmetric = np.sqrt(np.sum(np.square(x[..., :half] - y[..., :half]), -1) + NORM_EPS)
    asymmetric = np.max(np.maximum(x[..., half:] - y[..., half:], 0.0), -1)
    return -(symmetric + asymmetric)


def test_mrn_energy_matches_numpy_and_is_asymmetric():
    n, d = 9, 8
    kx, ky = jax.random.split(jax.random.key(15))
    x, y = jax.random.normal(kx, (n, d)), jax.random.normal(ky, (n, d))
    paired = paired_energy(x, y, "mrn")
    np.testing.assert_allclose(paired, np_mrn(x, y), **TOL)
    reverse = f64(paired_energy(y, x, "mrn"))
    np.testing.assert_allclose(reverse, np_mrn(y, x), **TOL)
    assert np.all(np.abs(reverse - f64(paired)) > 1e-3)  # f(x, y) != f(y, x) for generic vectors
    # only the second half is asymmetric: with equal second halves, f is symmetric
    z = x.at[:, d // 2:].set(y[:, d // 2:])
    np.testing.assert_allclose(paired_energy(z, y, "mrn"), paired_energy(y, z, "mrn"), rtol=1e-6)
    np.testing.assert_allclose(paired_energy(z, y, "mrn"), -np.sqrt(np.sum(np.square(f64(z - y)), -1) + NORM_EPS),
                               **TOL)
    # the asymmetric half: max relu, so 0 where y dominates x everywhere
    w = y.at[:, d // 2:].add(-1.0 - jnp.abs(x[:, d // 2:] - y[:, d // 2:]))  # w_a < y_a everywhere
    np.testing.assert_allclose(paired_energy(w, y, "mrn"), np_mrn(w, y), **TOL)
    np.testing.assert_array_less(f64(paired_energy(y, w, "mrn")), f64(paired_energy(w, y, "mrn")))
    # pairwise (i, j) is paired(x_i, y_j)
    pairwise = f64(pairwise_energy(x, y, "mrn"))
    assert pairwise.shape == (n, n)
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    np.testing.assert_allclose(pairwise, f64(paired_energy(x[ii.ravel()], y[jj.ravel()], "mrn")).reshape(n, n),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pairwise, np_mrn(f64(x)[:, None], f64(y)[None]), **TOL)


# ---------------------------------------------------------------- HER relabelling statistics

HER_ENVS, HER_WINDOW, HER_STATE = 256, 16, 3
HER_GOALS = (0, 2)  # achieved goal = state[[0, 2]]
HER_FRACTION, HER_RADIUS = 0.6, 0.5


def her_windows(seed=0):
    """Windows with several episodes each (some of one step), distinct continuous achieved goals along a random
    walk of steps ~ the success radius, and commanded goals near the next achieved goal (rewards of both kinds)."""
    rng = np.random.default_rng(seed)
    starts = rng.random((HER_ENVS, HER_WINDOW)) < 0.25
    traj_id = (np.cumsum(starts, axis=1) + 100 * np.arange(HER_ENVS)[:, None]).astype(np.int32)
    state = np.cumsum(rng.normal(0, 0.4, (HER_ENVS, HER_WINDOW, HER_STATE)), axis=1)
    nxt = np.concatenate([state[:, 1:], state[:, -1:]], axis=1)[..., list(HER_GOALS)]
    commanded = nxt + rng.normal(0, 0.4, nxt.shape)
    obs = np.concatenate([state, commanded], axis=-1).astype(np.float32)
    action = rng.uniform(-1, 1, (HER_ENVS, HER_WINDOW, 2)).astype(np.float32)
    return {rb.OBS_KEY: jnp.asarray(obs), rb.ACTION_KEY: jnp.asarray(action), rb.TRAJ_ID_KEY: jnp.asarray(traj_id)}


# fraction is traced (jnp.float32), so the three fractions tested share one compile
her_relabel = jax.jit(functools.partial(hs.hindsight_transitions, state_dim=HER_STATE, goal_indices=HER_GOALS,
                                        success_radius=HER_RADIUS))


@pytest.fixture(scope="module")
def her():
    windows = her_windows()
    out = {k: np.asarray(v).reshape((HER_ENVS, HER_WINDOW - 1) + v.shape[1:])
           for k, v in her_relabel(windows, jax.random.key(16), fraction=jnp.float32(HER_FRACTION)).items()}
    return {k: np.asarray(v) for k, v in windows.items()}, out


def test_her_fields_mask_and_reward(her):
    windows, out = her
    obs, traj = windows[rb.OBS_KEY], windows[rb.TRAJ_ID_KEY]
    assert set(out) == {rb.STATE_KEY, rb.ACTION_KEY, rb.GOAL_KEY, hs.NEXT_STATE_KEY, hs.REWARD_KEY, hs.MASK_KEY,
                        hs.RELABELLED_KEY}
    np.testing.assert_array_equal(out[rb.STATE_KEY], obs[:, :-1, :HER_STATE])
    np.testing.assert_array_equal(out[hs.NEXT_STATE_KEY], obs[:, 1:, :HER_STATE])
    np.testing.assert_array_equal(out[rb.ACTION_KEY], windows[rb.ACTION_KEY][:, :-1])
    # mask is 0 exactly where t + 1 starts a new episode
    boundary = traj[:, 1:] != traj[:, :-1]
    np.testing.assert_array_equal(out[hs.MASK_KEY], (~boundary).astype(np.float32))
    assert 0.15 < boundary.mean() < 0.35
    # reward is 1 exactly when the next achieved goal is within the success radius of the goal
    dist = np.linalg.norm(f64(obs[:, 1:][..., list(HER_GOALS)]) - f64(out[rb.GOAL_KEY]), axis=-1)
    clear = np.abs(dist - HER_RADIUS) > 1e-5
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(out[hs.REWARD_KEY][clear], (dist < HER_RADIUS)[clear].astype(np.float32))
    assert 0.1 < out[hs.REWARD_KEY].mean() < 0.9
    for relabelled in (0.0, 1.0):  # both kinds of goal give both rewards
        rewards = out[hs.REWARD_KEY][out[hs.RELABELLED_KEY] == relabelled]
        assert 0 < rewards.mean() < 1


def test_her_goals_come_from_the_same_trajectory_later(her):
    windows, out = her
    obs, traj = windows[rb.OBS_KEY], windows[rb.TRAJ_ID_KEY]
    achieved = obs[..., list(HER_GOALS)]
    relabelled = out[hs.RELABELLED_KEY] == 1.0
    goal = out[rb.GOAL_KEY]
    np.testing.assert_array_equal(goal[~relabelled], obs[:, :-1, HER_STATE:][~relabelled])
    offsets_by_remaining = {}
    for e, t in zip(*np.nonzero(relabelled)):
        later = [u for u in range(t + 1, HER_WINDOW) if traj[e, u] == traj[e, t]]
        hits = [u for u in later if np.array_equal(goal[e, t], achieved[e, u])]
        assert len(hits) == 1, (e, t, goal[e, t])  # a strictly later step of the same episode
        offsets_by_remaining.setdefault(len(later), []).append(hits[0] - t)
    # the later step is uniform over the rest of the episode (HER 'future'), for each number of steps left
    tested = 0
    for remaining, offsets in offsets_by_remaining.items():
        if len(offsets) >= 10 * remaining and remaining > 1:
            counts = np.bincount(offsets, minlength=remaining + 1)[1:]
            ok, stat = chi2_ok(counts, np.full(remaining, 1.0 / remaining))
            assert ok, (remaining, counts, stat)
            tested += 1
    assert tested >= 3


def test_her_relabels_the_configured_fraction_of_valid_transitions(her):
    windows, out = her
    traj = windows[rb.TRAJ_ID_KEY]
    valid = out[hs.MASK_KEY] == 1.0  # t + 1 in the same episode, so a future step exists
    relabelled = out[hs.RELABELLED_KEY] == 1.0
    # a step with no later step of its episode (the last of it) keeps its commanded goal
    has_future = np.array([[np.any(traj[e, t + 1:] == traj[e, t]) for t in range(HER_WINDOW - 1)]
                           for e in range(HER_ENVS)])
    np.testing.assert_array_equal(has_future, valid)
    assert not np.any(relabelled & ~valid)
    n, k = int(valid.sum()), int(relabelled.sum())
    sd = math.sqrt(n * HER_FRACTION * (1 - HER_FRACTION))
    assert n > 2000 and abs(k - n * HER_FRACTION) <= SIGMAS * sd, (k, n)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_her_fraction_extremes(fraction):
    windows = her_windows(seed=1)
    out = her_relabel(windows, jax.random.key(17), fraction=jnp.float32(fraction))
    np.testing.assert_array_equal(np.asarray(out[hs.RELABELLED_KEY]), fraction * np.asarray(out[hs.MASK_KEY]))


def test_uniform_future_offsets_are_uniform():
    traj = jnp.asarray([0] * 9 + [1] * 4 + [2] + [3] * 2, jnp.int32)  # single-step episode in the middle
    length, draws = traj.shape[0], 3000
    offsets = np.asarray(jax.jit(jax.vmap(rb.uniform_future_offsets, (None, 0)))(
        traj, jax.random.split(jax.random.key(18), draws)))
    ends = np.array([max(u for u in range(length) if np.all(np.asarray(traj[t:u + 1]) == int(traj[t])))
                     for t in range(length)])
    remaining = ends - np.arange(length)
    assert remaining.tolist() == [8, 7, 6, 5, 4, 3, 2, 1, 0, 3, 2, 1, 0, 0, 1, 0]
    for t, m in enumerate(remaining):
        if m == 0:
            assert np.all(offsets[:, t] == 0)
            continue
        assert offsets[:, t].min() >= 1 and offsets[:, t].max() <= m
        counts = np.bincount(offsets[:, t], minlength=m + 1)[1:]
        ok, stat = chi2_ok(counts, np.full(m, 1.0 / m))
        assert ok, (t, counts, stat)


# ---------------------------------------------------------------- Polyak targets and TD3's delay

def learner(algorithm, **changes):
    cfg = dataclasses.replace(CFG, algorithm=algorithm, **changes)
    agent = build_agent(SPEC, cfg)
    return agent, learner_state(agent, random_params(agent.networks, 19)), jax.jit(agent.sgd_step)


def test_sac_polyak_targets_follow_the_recursion():
    tau, steps = 0.3, 4
    agent, state, step = learner("sac", tau=tau)
    assert agent.name == "sac" and isinstance(agent, Agent)
    assert leaves_equal(state.target_params["critic"], state.critic_params)  # targets start at the critics
    want = jax.tree.map(f64, state.target_params["critic"])
    stale = want  # the same recursion on the pre-step critics: must be told apart
    for i in range(steps):
        before = jax.tree.map(f64, state.critic_params)
        state, metrics = step(state, (random_batch(jax.random.key(100 + i)), jax.random.key(200 + i)))
        after = jax.tree.map(f64, state.critic_params)
        assert leaves_differ(before, after)
        want = jax.tree.map(lambda t, c: (1 - tau) * t + tau * c, want, after)
        stale = jax.tree.map(lambda t, c: (1 - tau) * t + tau * c, stale, before)
        for got, w in zip(jax.tree.leaves(state.target_params["critic"]), jax.tree.leaves(want)):
            np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    assert int(state.grad_steps) == steps
    gap = max(float(np.max(np.abs(w - s))) for w, s in zip(jax.tree.leaves(want), jax.tree.leaves(stale)))
    assert gap > 1e-3
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_td3_delays_actor_and_targets():
    delay, steps = 3, 7
    agent, state, step = learner("td3", policy_delay=delay, tau=0.5)
    assert agent.name == "td3"
    assert leaves_equal(state.target_params, {"actor": state.actor_params, "critic": state.critic_params})
    updated = []
    for i in range(steps):
        before = state
        expect = int(before.grad_steps) % delay == 0
        state, metrics = step(state, (random_batch(jax.random.key(300 + i)), jax.random.key(400 + i)))
        assert int(state.grad_steps) == int(before.grad_steps) + 1
        assert float(metrics["actor_updated"]) == float(expect)
        assert leaves_differ(before.critic_params, state.critic_params), i  # the critics learn every step
        if expect:
            assert leaves_differ(before.actor_params, state.actor_params), i
            assert leaves_differ(before.target_params, state.target_params), i
            want = jax.tree.map(lambda t, o: 0.5 * f64(t) + 0.5 * f64(o), before.target_params,
                                {"actor": state.actor_params, "critic": state.critic_params})
            for got, w in zip(jax.tree.leaves(state.target_params), jax.tree.leaves(want)):
                np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
        else:
            assert leaves_equal(before.actor_params, state.actor_params), i
            assert leaves_equal(before.actor_opt_state, state.actor_opt_state), i
            assert leaves_equal(before.target_params, state.target_params), i
        updated.append(expect)
    assert updated == [True, False, False, True, False, False, True]


# ---------------------------------------------------------------- registry and config checks

def test_unknown_algorithm_lists_names_and_suggests():
    with pytest.raises(ConfigError) as info:
        make_trainer(tiny_config(algorithm="sac_hre"))
    message = str(info.value)
    assert "sac_hre" in message and "Did you mean 'sac_her'?" in message
    names = algorithm_names()
    assert {"crl", "sac", "sac_her", "td3", "td3_her", "gcbc", "gcsl"} <= set(names)
    listed = message.split("Known algorithms:")[1].split(" (")[0].strip().split(", ")
    assert listed == names


def test_register_algorithm_from_user_code():
    name = "my_bc_test"
    assert name not in algorithm_names()
    try:
        registered = register_algorithm(name, imitation.build, "behaviour cloning under another name")
        assert get_algorithm(name) is registered and registered.build is imitation.build
        assert name in algorithm_names()
        agent = build_agent(SPEC, dataclasses.replace(CFG, algorithm=name))
        assert isinstance(agent, Agent) and agent.name == "gcbc" and not agent.has_critic
        assert jax.eval_shape(agent.networks.init, jax.random.key(20))["critic"] == {}
        with pytest.raises(ValueError, match="already registered"):
            register_algorithm(name, imitation.build)
        with pytest.raises(ConfigError, match=name):  # the unknown-name message lists it too
            get_algorithm(name + "x")
    finally:
        registry._ALGORITHMS.pop(name, None)
    assert name not in algorithm_names()
    sac = get_algorithm("sac")
    with pytest.raises(ValueError, match="already registered"):
        register_algorithm("sac", imitation.build)
    assert get_algorithm("sac") is sac  # a refused registration leaves the built-in in place


@pytest.mark.parametrize("changes, field", [
    (dict(tau=0.0), "tau"), (dict(tau=1.5), "tau"), (dict(her_ratio=1.5), "her_ratio"),
    (dict(her_ratio=-0.1), "her_ratio"), (dict(policy_delay=0), "policy_delay"),
    (dict(energy="mrn", repr_dim=7), "repr_dim"), (dict(target_noise=-0.1), "target_noise"),
])
def test_bad_baseline_fields_are_rejected(changes, field):
    with pytest.raises(ConfigError, match=rf"\b{field} ="):
        validate(dataclasses.replace(TrainConfig(), **changes))


@pytest.mark.parametrize("changes", [dict(tau=1.0), dict(her_ratio=0.0), dict(her_ratio=1.0), dict(policy_delay=1),
                                     dict(energy="mrn", repr_dim=8)])
def test_edge_baseline_fields_are_accepted(changes):
    assert validate(dataclasses.replace(TrainConfig(), **changes)) is None
