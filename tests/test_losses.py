"""Energies, contrastive losses, metrics, actor / alpha losses and the tanh-Gaussian log-density, each
against an independent float64 numpy computation."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl.config import TrainConfig
from crl.config import LogitsForm
from crl.losses import (CONTRASTIVE_LOSSES, ENERGIES, LOGITS_FORMS, MATMUL_ENERGIES, NORM_EPS, Batch, critic_loss,
                        make_losses, paired_energy, pairwise_energy)
from crl.networks import TANH_LOG_DET_EPS, make_networks, tanh_gaussian_log_prob
from crl.envs.spec import EnvSpec

B, D = 7, 6  # D even: the mrn energy splits it in halves
PENALTY = 0.1
SPEC = EnvSpec(name="tiny", backend="jax", state_dim=4, goal_indices=(0, 1), action_size=3,
               episode_length=10, dt=0.1, success_radius=0.5)
CFG = TrainConfig(critic_depth=4, critic_width=8, actor_depth=4, actor_width=8, repr_dim=4)


# ---------------------------------------------------------------- numpy references

def np_pairwise(phi, psi, kind):
    phi, psi = np.asarray(phi, np.float64), np.asarray(psi, np.float64)
    out = np.empty((len(phi), len(psi)))
    for i, p in enumerate(phi):
        for j, q in enumerate(psi):
            if kind == "norm":
                out[i, j] = -math.sqrt(np.sum((p - q) ** 2) + NORM_EPS)
            elif kind == "l2":
                out[i, j] = -np.sum((p - q) ** 2)
            elif kind == "dot":
                out[i, j] = p @ q
            elif kind == "mrn":  # symmetric Euclidean half + asymmetric max-relu half
                h = len(p) // 2
                out[i, j] = -(math.sqrt(np.sum((p[:h] - q[:h]) ** 2) + NORM_EPS) + np.max(np.maximum(p[h:] - q[h:], 0)))
            else:
                out[i, j] = p @ q / (np.linalg.norm(p) * np.linalg.norm(q))
    return out


def np_lse(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis=axis))


def np_loss(logits, kind, penalty):
    logits = np.asarray(logits, np.float64)
    n = len(logits)
    diag = np.diag(logits)
    fwd = -np.mean(diag - np_lse(logits, 1))
    bwd = -np.mean(diag - np_lse(logits, 0))
    sig = 1 / (1 + np.exp(-logits))
    off = ~np.eye(n, dtype=bool)
    binary = -np.mean(np.log(np.diag(sig))) - np.mean(np.log(1 - sig[off]))
    base = {"fwd_infonce": fwd, "bwd_infonce": bwd, "sym_infonce": fwd + bwd, "binary_nce": binary}[kind]
    return base + penalty * np.mean(np_lse(logits, 1) ** 2)


def random_reprs(seed, scale=1.0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return scale * jax.random.normal(k1, (B, D)), scale * jax.random.normal(k2, (B, D))


# ---------------------------------------------------------------- energies and contrastive losses

def test_registries_cover_config_choices():
    assert set(ENERGIES) == {"norm", "l2", "dot", "cosine", "mrn"}
    assert set(CONTRASTIVE_LOSSES) == {"fwd_infonce", "bwd_infonce", "sym_infonce", "binary_nce"}


@pytest.mark.parametrize("form", LOGITS_FORMS)
@pytest.mark.parametrize("energy", sorted(ENERGIES))
def test_energies_match_numpy(energy, form):
    phi, psi = random_reprs(0)
    phi = phi.at[0].multiply(30.0)  # cosine must normalise per sample, not over the whole tensor
    want = np_pairwise(phi, psi, energy)
    logits = pairwise_energy(phi, psi, energy, form)
    assert logits.shape == (B, B) and logits.dtype == jnp.float32
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(paired_energy(phi, psi, energy), np.diag(want), rtol=1e-5, atol=1e-5)


def test_logits_forms_cover_config_choices():
    assert set(LOGITS_FORMS) == set(LogitsForm.__args__)
    assert set(MATMUL_ENERGIES) <= set(ENERGIES)


MATMUL_B, MATMUL_D = 96, 64  # the representation width of the paper's critic


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
@pytest.mark.parametrize("energy", sorted(ENERGIES))
def test_matmul_logits_match_broadcast(energy, scale):
    """The matmul form against the reference's broadcast form: the diagonal (positives) bit for bit, the rest and
    the critic loss's gradients within float32 rounding, also where psi_i is almost phi_i (where
    ||phi||^2 + ||psi||^2 - 2 phi.psi cancels most)."""
    k1, k2 = jax.random.split(jax.random.key(9))
    phi = scale * jax.random.normal(k1, (MATMUL_B, MATMUL_D))
    psi = jnp.concatenate([phi[:MATMUL_B // 2] + 1e-3 * scale * jax.random.normal(k2, (MATMUL_B // 2, MATMUL_D)),
                           scale * jax.random.normal(k2, (MATMUL_B - MATMUL_B // 2, MATMUL_D))])
    fast, exact = pairwise_energy(phi, psi, energy, "matmul"), pairwise_energy(phi, psi, energy, "broadcast")
    np.testing.assert_array_equal(jnp.diagonal(fast), jnp.diagonal(exact))
    if energy in MATMUL_ENERGIES:  # the positives are the actor's Q values exactly
        np.testing.assert_array_equal(jnp.diagonal(fast), paired_energy(phi, psi, energy))
    magnitude = float(jnp.max(jnp.abs(exact)))
    np.testing.assert_allclose(fast, exact, rtol=1e-5, atol=1e-6 * magnitude)
    if energy not in MATMUL_ENERGIES:  # falls back to the broadcast form: the same program
        np.testing.assert_array_equal(fast, exact)

    def loss(p, q, form):
        return critic_loss(pairwise_energy(p, q, energy, form) / magnitude, "fwd_infonce", PENALTY)[0]

    g_fast = jax.grad(loss, argnums=(0, 1))(phi, psi, "matmul")
    g_exact = jax.grad(loss, argnums=(0, 1))(phi, psi, "broadcast")
    for a, b in zip(g_fast, g_exact):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))


def goal_representations(goals, weights):
    """psi(g) computed elementwise, so equal goals give bit-equal rows whatever their place in the batch."""
    return jnp.tanh(jnp.tile(goals, MATMUL_D // goals.shape[1]) * weights)


@pytest.mark.parametrize("energy", sorted(MATMUL_ENERGIES))
def test_matmul_logits_tie_equal_goals_exactly(energy):
    """Given the goals, the matmul form ties duplicate goals exactly, as the broadcast form does: equal columns,
    and row i's own goal elsewhere in the batch scores its paired energy, so argmax (categorical_accuracy) agrees
    with the broadcast form's; a NaN goal ties with nothing; the loss's gradient agrees within rounding."""
    k1, k2, k3 = jax.random.split(jax.random.key(4), 3)
    goals = jax.random.normal(k1, (MATMUL_B, 2))
    duplicates = {5: 2, 9: 2, 11: 0, 40: 7}  # goal index -> the earlier goal it repeats
    for copy, original in duplicates.items():
        goals = goals.at[copy].set(goals[original])
    goals = goals.at[3].set(jnp.nan)
    weights = jax.random.normal(k2, (MATMUL_D,))
    psi = goal_representations(goals, weights)
    phi = jnp.where(jnp.isnan(psi), 0.0, psi) + 0.01 * jax.random.normal(k3, psi.shape)  # each row's max: a positive
    fast = pairwise_energy(phi, psi, energy, "matmul", goals)
    exact = pairwise_energy(phi, psi, energy, "broadcast")
    for copy, original in duplicates.items():
        np.testing.assert_array_equal(fast[:, copy], fast[:, original])
        np.testing.assert_array_equal(fast[original, copy], paired_energy(phi, psi, energy)[original])
    np.testing.assert_array_equal(jnp.diagonal(fast), paired_energy(phi, psi, energy))
    finite = np.isfinite(np.asarray(exact))
    np.testing.assert_array_equal(np.isfinite(np.asarray(fast)), finite)  # the NaN goal's column alone
    magnitude = float(jnp.max(jnp.abs(jnp.where(finite, exact, 0.0))))
    np.testing.assert_allclose(np.where(finite, fast, 0.0), np.where(finite, exact, 0.0), rtol=1e-5,
                               atol=1e-6 * magnitude)
    rows = np.array([i for i in range(MATMUL_B) if i != 3])
    fast, exact = np.asarray(fast)[rows][:, rows], np.asarray(exact)[rows][:, rows]
    np.testing.assert_array_equal(fast.argmax(axis=1), exact.argmax(axis=1))

    def loss(w, form):
        clean = jnp.where(jnp.isnan(goals), 0.0, goals)
        return critic_loss(pairwise_energy(phi, goal_representations(clean, w), energy, form, clean) / magnitude,
                           "fwd_infonce", PENALTY)[0]

    np.testing.assert_allclose(jax.grad(loss)(weights, "matmul"), jax.grad(loss)(weights, "broadcast"), rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize("energy", sorted(ENERGIES))
@pytest.mark.parametrize("loss_kind", sorted(CONTRASTIVE_LOSSES))
def test_every_energy_and_loss_match_numpy(energy, loss_kind):
    phi, psi = random_reprs(1)
    loss, metrics = critic_loss(pairwise_energy(phi, psi, energy), loss_kind, PENALTY)
    want = np_loss(np_pairwise(phi, psi, energy), loss_kind, PENALTY)
    np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-5)
    assert metrics["critic_loss"] == loss


@pytest.mark.parametrize("loss_kind", sorted(CONTRASTIVE_LOSSES))
def test_logsumexp_penalty_term(loss_kind):
    logits = jax.random.normal(jax.random.key(2), (B, B)) * 3.0
    without, _ = critic_loss(logits, loss_kind, 0.0)
    with_penalty, _ = critic_loss(logits, loss_kind, 0.7)
    row_lse = np_lse(np.asarray(logits, np.float64), 1)
    np.testing.assert_allclose(with_penalty - without, 0.7 * np.mean(row_lse ** 2), rtol=1e-5)
    np.testing.assert_allclose(without, np_loss(logits, loss_kind, 0.0), rtol=1e-5, atol=1e-6)


def test_binary_nce_averages_off_diagonal_only():
    """Confident positives, zero negatives: loss = log 2; a mean over all B*B entries would not be."""
    logits = jnp.zeros((4, 4)).at[jnp.diag_indices(4)].set(100.0)
    loss, _ = critic_loss(logits, "binary_nce", 0.0)
    np.testing.assert_allclose(loss, math.log(2.0), rtol=1e-5)


def test_metrics_match_numpy():
    logits = np.asarray(jax.random.normal(jax.random.key(3), (B, B)), np.float64)
    logits[np.arange(B), np.arange(B)] += np.array([5, 5, 5, -5, 5, -5, 5])  # 5 of 7 rows have argmax on diagonal
    _, metrics = critic_loss(jnp.asarray(logits, jnp.float32), "fwd_infonce", PENALTY)
    off = ~np.eye(B, dtype=bool)
    np.testing.assert_allclose(metrics["categorical_accuracy"], np.mean(logits.argmax(1) == np.arange(B)))
    np.testing.assert_allclose(metrics["categorical_accuracy"], 5 / 7, rtol=1e-6)
    np.testing.assert_allclose(metrics["logits_pos"], np.mean(np.diag(logits)), rtol=1e-5)
    np.testing.assert_allclose(metrics["logits_neg"], np.mean(logits[off]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["logsumexp"], np.mean(np_lse(logits, 1)), rtol=1e-5)
    assert set(metrics) == {"critic_loss", "logsumexp", "categorical_accuracy", "logits_pos", "logits_neg"}


def test_norm_gradient_finite_at_equal_representations():
    phi, _ = random_reprs(4)

    def loss(p):
        return critic_loss(pairwise_energy(p, phi, "norm"), "fwd_infonce", PENALTY)[0] + jnp.sum(
            paired_energy(p, phi, "norm"))

    grad = jax.grad(loss)(phi)
    assert jnp.all(jnp.isfinite(grad))
    np.testing.assert_allclose(paired_energy(phi, phi, "norm"), -math.sqrt(NORM_EPS), rtol=1e-4)


def test_unknown_kinds_rejected():
    with pytest.raises(ValueError, match="norm"):
        pairwise_energy(jnp.ones((2, 2)), jnp.ones((2, 2)), "euclid")
    with pytest.raises(ValueError, match="fwd_infonce"):
        critic_loss(jnp.ones((2, 2)), "infonce", 0.0)


# ---------------------------------------------------------------- tanh-Gaussian log-density

def np_normal_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_tanh_gaussian_log_prob_is_change_of_variables_density():
    """d/da P(tanh(u) <= a) by finite differences of the Gaussian CDF equals exp(log pi(a)) (1-D, then summed)."""
    mean = np.array([0.3, -1.2, 0.0])
    log_std = np.array([-0.5, 0.4, -2.0])
    pre = np.array([0.1, -0.7, 0.05])
    got = float(tanh_gaussian_log_prob(jnp.asarray(pre, jnp.float32), jnp.asarray(mean, jnp.float32),
                                       jnp.asarray(log_std, jnp.float32)))
    h = 1e-6
    want = 0.0
    for u, m, s in zip(pre, mean, np.exp(log_std)):
        a = math.tanh(u)
        cdf = lambda t: np_normal_cdf((math.atanh(t) - m) / s)  # noqa: E731
        want += math.log((cdf(a + h) - cdf(a - h)) / (2 * h))
    np.testing.assert_allclose(got, want, rtol=1e-4)  # eps inside the log-Jacobian is negligible here
    assert TANH_LOG_DET_EPS < 1e-4


# ---------------------------------------------------------------- actor, alpha and critic losses from the factory

@pytest.fixture(scope="module")
def setup():
    nets = make_networks(SPEC, CFG)
    params = jax.jit(nets.init)(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 3)
    batch = Batch(state=jax.random.normal(keys[0], (B, 4)), action=jnp.tanh(jax.random.normal(keys[1], (B, 3))),
                  goal=jax.random.normal(keys[2], (B, 2)))
    return nets, params, batch, make_losses(nets, CFG, SPEC.action_size)


def test_critic_loss_fn_matches_numpy(setup):
    nets, params, batch, losses = setup
    loss, metrics = jax.jit(losses.critic_loss_fn)(params["critic"], batch)
    phi = jax.jit(nets.sa_encode)(params["critic"], batch.state, batch.action)
    psi = jax.jit(nets.g_encode)(params["critic"], batch.goal)
    np.testing.assert_allclose(loss, np_loss(np_pairwise(phi, psi, CFG.energy), CFG.contrastive_loss,
                                             CFG.logsumexp_penalty), rtol=1e-5)
    grads = jax.jit(jax.grad(lambda p: losses.critic_loss_fn(p, batch)[0]))(params["critic"])
    assert float(jnp.abs(grads["g_encoder"]["head_0"]["kernel"]).sum()) > 0


def test_actor_loss_by_hand(setup):
    nets, params, batch, losses = setup
    key, log_alpha = jax.random.key(7), jnp.asarray(0.4)
    loss, metrics = jax.jit(losses.actor_loss_fn)(params["actor"], params["critic"], log_alpha, batch, key)
    obs = jnp.concatenate([batch.state, batch.goal], -1)
    action, log_prob = jax.jit(nets.sample_action)(params["actor"], obs, key)
    phi = jax.jit(nets.sa_encode)(params["critic"], batch.state, action)
    psi = jax.jit(nets.g_encode)(params["critic"], batch.goal)
    energy = np.diag(np_pairwise(phi, psi, CFG.energy))
    want = np.mean(math.exp(0.4) * np.asarray(log_prob, np.float64) - energy)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["entropy"], -np.mean(log_prob), rtol=1e-6)
    assert metrics["actor_loss"] == loss
    grad_alpha, grad_actor = jax.jit(jax.grad(
        lambda la, p: losses.actor_loss_fn(p, params["critic"], la, batch, key)[0], argnums=(0, 1)))(
        log_alpha, params["actor"])
    assert grad_alpha == 0  # alpha is a constant for the actor
    assert float(jnp.abs(grad_actor["head_0"]["kernel"]).sum()) > 0


@pytest.mark.parametrize("entropy_offset, alpha_should", [(+2.0, "fall"), (-2.0, "rise")])
def test_alpha_loss_formula_and_direction(setup, entropy_offset, alpha_should):
    _, _, _, losses = setup
    target = -CFG.target_entropy_scale * SPEC.action_size
    log_prob = jnp.asarray([-(target + entropy_offset) + d for d in (-0.3, 0.1, 0.2)])  # entropy = target + offset
    log_alpha = jnp.asarray(-0.2)
    loss, metrics = losses.alpha_loss_fn(log_alpha, log_prob)
    want = math.exp(-0.2) * np.mean(-np.asarray(log_prob, np.float64) - target)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["alpha"], math.exp(-0.2), rtol=1e-6)
    grad_alpha, grad_logp = jax.grad(lambda la, lp: losses.alpha_loss_fn(la, lp)[0], argnums=(0, 1))(
        log_alpha, log_prob)
    assert jnp.all(grad_logp == 0)
    stepped = log_alpha - 0.1 * grad_alpha  # one gradient-descent step
    assert (stepped < log_alpha) if alpha_should == "fall" else (stepped > log_alpha)


def test_batch_is_a_pytree():
    batch = Batch(state=jnp.ones((2, 4)), action=jnp.ones((2, 3)), goal=jnp.ones((2, 2)))
    doubled = jax.tree.map(lambda x: 2 * x, batch)
    assert isinstance(doubled, Batch) and float(doubled.goal[0, 0]) == 2.0
