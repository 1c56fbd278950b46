"""Contrastive critic, actor and entropy-temperature losses (reference section 1); float32 throughout.

Energies are written for broadcastable inputs reduced over the last axis, so one definition gives both
the paired (B,) energies and, broadcast (phi[:, None] vs psi[None]), the reference's B x B logits. The
B x B logits can be computed in matmul form instead (logits_form='matmul': squared norms and one phi psi^T
product at HIGHEST precision, so float32 on GPUs too), which never materialises B x B x repr_dim: at batch 512
the head is ~25x faster on CPU (docs/performance.md); it is the default. Its diagonal, the positives, is the
paired energy exactly, and given the goals it ties duplicate goals exactly, as the broadcast form does, so argmax
near-ties do not depend on how a batch is laid out (vmapped seeds, sharded devices).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from crl.config import TrainConfig
from crl.networks import CRLNetworks, log_likelihood_under, sample_from

Metrics = dict[str, jax.Array]

NORM_EPS = 1e-6  # inside sqrt of the 'norm' energy: finite gradient at phi == psi
COSINE_EPS = 1e-12  # inside rsqrt of the per-sample L2 normalisation: finite at zero vectors
Q_SCALE_EPS = 1e-6  # added to mean |Q| before dividing by it (OGBench's actor loss): finite at Q == 0


@flax.struct.dataclass
class Batch:
    """One SGD batch of relabelled transitions: state (B, S), action (B, A), goal (B, G)."""

    state: jax.Array
    action: jax.Array
    goal: jax.Array


def _sum_last(x: jax.Array) -> jax.Array:
    return jnp.sum(x, axis=-1)


def _normalise(x: jax.Array) -> jax.Array:
    """Per-sample L2 normalisation over the feature axis (not over the whole tensor)."""
    return x * jax.lax.rsqrt(_sum_last(jnp.square(x))[..., None] + COSINE_EPS)


def _neg_norm(x: jax.Array, y: jax.Array) -> jax.Array:
    return -jnp.sqrt(_sum_last(jnp.square(x - y)) + NORM_EPS)


def _neg_sq_dist(x: jax.Array, y: jax.Array) -> jax.Array:
    return -_sum_last(jnp.square(x - y))


def _dot(x: jax.Array, y: jax.Array) -> jax.Array:
    return _sum_last(x * y)


def _cosine(x: jax.Array, y: jax.Array) -> jax.Array:
    return _sum_last(_normalise(x) * _normalise(y))


def _neg_mrn(x: jax.Array, y: jax.Array) -> jax.Array:
    """-d(x, y) for the metric residual network quasimetric (Liu et al. 2022): the first half of the features
    gives a symmetric Euclidean distance, the second half the asymmetric max_i relu(x_i - y_i)."""
    half = x.shape[-1] // 2
    symmetric = jnp.sqrt(_sum_last(jnp.square(x[..., :half] - y[..., :half])) + NORM_EPS)
    asymmetric = jnp.max(jax.nn.relu(x[..., half:] - y[..., half:]), axis=-1)
    return -(symmetric + asymmetric)


def _cross(x: jax.Array, y: jax.Array) -> jax.Array:
    """(B, B) x_i . y_j as one float32 matmul (HIGHEST: no TF32 / bf16 passes on accelerators)."""
    return jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST)


def _pairwise_sq_dist(x: jax.Array, y: jax.Array) -> jax.Array:
    """(B, B) ||x_i - y_j||^2 = ||x_i||^2 + ||y_j||^2 - 2 x_i . y_j, clamped at 0 (rounding can go below)."""
    sq = _sum_last(jnp.square(x))[:, None] + _sum_last(jnp.square(y))[None, :] - 2.0 * _cross(x, y)
    return jnp.maximum(sq, 0.0)


# f(x, y) for broadcastable x, y, reduced over the last (representation) axis
ENERGIES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "norm": _neg_norm,
    "l2": _neg_sq_dist,
    "dot": _dot,
    "cosine": _cosine,
    "mrn": _neg_mrn,
}


# (B, B) f(x_i, y_j) in matmul form, for the energies that have one ('mrn''s max-relu half has none)
MATMUL_ENERGIES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "norm": lambda x, y: -jnp.sqrt(_pairwise_sq_dist(x, y) + NORM_EPS),
    "l2": lambda x, y: -_pairwise_sq_dist(x, y),
    "dot": _cross,
    "cosine": lambda x, y: _cross(_normalise(x), _normalise(y)),
}
LOGITS_FORMS = ("matmul", "broadcast")  # TrainConfig.logits_form


def _check_kind(kind: str, table: dict[str, Any], what: str) -> None:
    if kind not in table:
        raise ValueError(f"unknown {what} '{kind}'; choose one of {', '.join(table)}")


def pairwise_energy(phi: jax.Array, psi: jax.Array, kind: str, form: str = "matmul",
                    goals: jax.Array | None = None) -> jax.Array:
    """(B, B) logits L_ij = f(phi_i, psi_j), float32.

    form 'broadcast' is the reference's elementwise form; 'matmul' (for energies in MATMUL_ENERGIES; others
    fall back to broadcast) agrees with it within float32 rounding off the diagonal and exactly on it. goals
    (B, goal_dim), the inputs of psi: with them the matmul form ties exactly where the broadcast form does (see
    _tie_equal_goals); without them only the diagonal is exact.
    """
    _check_kind(kind, ENERGIES, "energy")
    _check_kind(form, dict.fromkeys(LOGITS_FORMS), "logits form")
    phi, psi = phi.astype(jnp.float32), psi.astype(jnp.float32)
    if form == "broadcast" or kind not in MATMUL_ENERGIES:
        return ENERGIES[kind](phi[:, None, :], psi[None, :, :])
    logits = MATMUL_ENERGIES[kind](phi, psi)
    positive = jnp.eye(phi.shape[0], psi.shape[0], dtype=bool)
    if goals is not None:
        logits, positive = _tie_equal_goals(logits, goals, positive)
    return jnp.where(positive, paired_energy(phi, psi, kind)[:, None], logits)


def _tie_equal_goals(logits: jax.Array, goals: jax.Array, diagonal: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Columns of equal goals made exactly equal: (logits, where goal_j equals row i's own goal).

    A matmul kernel rounds each column by its place in the batch (and vmapped or sharded kernels by other
    places), so duplicate goals, common in relabelled batches, would get logits an ulp apart and argmax near-ties
    (categorical_accuracy) would depend on the batch layout; the broadcast form ties them exactly. Each column is
    replaced by the first column with the same goal, and entries whose goal is row i's own take the paired energy.
    Both are the same values in exact arithmetic, so the loss and its gradients are unchanged beyond rounding. The
    gather also pools equal goals' gradients into one column; routing them straight through to each column instead
    brought the flips back (docs/performance.md), so keep the gather.
    """
    equal = jnp.all(goals[:, None, :] == goals[None, :, :], axis=-1) | diagonal  # | diagonal: NaN goals
    return logits[:, jnp.argmax(equal, axis=1)], equal


def paired_energy(phi: jax.Array, psi: jax.Array, kind: str) -> jax.Array:
    """(B,) energies f(phi_i, psi_i): the diagonal of pairwise_energy without building B x B."""
    _check_kind(kind, ENERGIES, "energy")
    return ENERGIES[kind](phi.astype(jnp.float32), psi.astype(jnp.float32))


def _off_diagonal_mean(values: jax.Array) -> jax.Array:
    """Mean of the i != j entries of a square matrix (0 for a 1 x 1 matrix)."""
    n = values.shape[0]
    off = jnp.sum(values) - jnp.sum(jnp.diagonal(values))
    return off / max(n * (n - 1), 1)


def _fwd_infonce(logits: jax.Array) -> jax.Array:
    return -jnp.mean(jnp.diagonal(logits) - jax.nn.logsumexp(logits, axis=1))


def _bwd_infonce(logits: jax.Array) -> jax.Array:
    return -jnp.mean(jnp.diagonal(logits) - jax.nn.logsumexp(logits, axis=0))


def _sym_infonce(logits: jax.Array) -> jax.Array:
    return _fwd_infonce(logits) + _bwd_infonce(logits)


def _binary_nce(logits: jax.Array) -> jax.Array:
    positives = -jnp.mean(jax.nn.log_sigmoid(jnp.diagonal(logits)))
    negatives = -_off_diagonal_mean(jax.nn.log_sigmoid(-logits))  # log(1 - sigmoid(x)) = log_sigmoid(-x)
    return positives + negatives


# loss(logits) without the logsumexp penalty; positives on the diagonal
CONTRASTIVE_LOSSES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "fwd_infonce": _fwd_infonce,
    "bwd_infonce": _bwd_infonce,
    "sym_infonce": _sym_infonce,
    "binary_nce": _binary_nce,
}


def critic_loss(logits: jax.Array, kind: str, penalty: float) -> tuple[jax.Array, Metrics]:
    """Contrastive loss of B x B logits plus penalty * mean_i (logsumexp_j L_ij)^2, and its metrics."""
    _check_kind(kind, CONTRASTIVE_LOSSES, "contrastive loss")
    logits = logits.astype(jnp.float32)
    row_lse = jax.nn.logsumexp(logits, axis=1)
    loss = CONTRASTIVE_LOSSES[kind](logits) + penalty * jnp.mean(jnp.square(row_lse))
    diag = jnp.diagonal(logits)
    metrics = {
        "critic_loss": loss,
        "logsumexp": jnp.mean(row_lse),
        "categorical_accuracy": jnp.mean(jnp.argmax(logits, axis=1) == jnp.arange(logits.shape[0])),
        "logits_pos": jnp.mean(diag),
        "logits_neg": _off_diagonal_mean(logits),
    }
    return loss, metrics


def alpha_loss(log_alpha: jax.Array, log_prob: jax.Array, entropy_target: float) -> tuple[jax.Array, Metrics]:
    """alpha * mean(stopgrad(-log pi - H_target)): raises alpha when entropy is below the target (CRL and SAC)."""
    alpha = jnp.exp(log_alpha)
    loss = alpha * jnp.mean(jax.lax.stop_gradient(-log_prob - entropy_target))
    return loss, {"alpha_loss": loss, "alpha": alpha}


def target_entropy(cfg: TrainConfig, action_size: int) -> float:
    """H_target = -target_entropy_scale * action_size (reference: -0.5 * action_dim)."""
    return -cfg.target_entropy_scale * action_size


class Losses(NamedTuple):
    """Pure loss functions closed over the networks and config (see make_losses).

    critic_actor_fn is critic_loss_fn + actor_loss_fn as one function of both networks' params, so an SGD step
    takes both gradients at once: psi(g) computed once, the three networks' first passes in one scan.
    """

    critic_loss_fn: Callable[..., tuple[jax.Array, Metrics]]
    actor_loss_fn: Callable[..., tuple[jax.Array, Metrics]]
    alpha_loss_fn: Callable[..., tuple[jax.Array, Metrics]]
    critic_actor_fn: Callable[..., tuple[jax.Array, tuple[Metrics, Metrics]]]


def make_losses(networks: CRLNetworks, cfg: TrainConfig, action_size: int) -> Losses:
    """Critic, actor and alpha losses for a config; kinds are checked now, not at trace time."""
    _check_kind(cfg.energy, ENERGIES, "energy")
    _check_kind(cfg.contrastive_loss, CONTRASTIVE_LOSSES, "contrastive loss")
    _check_kind(cfg.logits_form, dict.fromkeys(LOGITS_FORMS), "logits form")
    entropy_target = target_entropy(cfg, action_size)

    def critic_terms(phi: jax.Array, psi: jax.Array, goal: jax.Array) -> tuple[jax.Array, Metrics]:
        """The contrastive loss of given representations: positives (s_i, a_i, g_i), negatives the other goals."""
        logits = pairwise_energy(phi, psi, cfg.energy, cfg.logits_form, goal)
        return critic_loss(logits, cfg.contrastive_loss, cfg.logsumexp_penalty)

    def critic_loss_fn(critic_params: Any, batch: Batch) -> tuple[jax.Array, Metrics]:
        """The contrastive loss over the batch and its metrics."""
        phi, psi = networks.encode(critic_params, batch.state, batch.action, batch.goal)
        return critic_terms(phi, psi, batch.goal)

    def actor_terms(dist: tuple[jax.Array, jax.Array], critic_params: Any, log_alpha: jax.Array, batch: Batch,
                    key: jax.Array, psi: jax.Array) -> tuple[jax.Array, Metrics]:
        """actor_loss_fn given the actor's (mean, log_std) on concat(s, g) and psi(g)."""
        action, log_prob = sample_from(dist, key)
        energy = paired_energy(networks.sa_encode(critic_params, batch.state, action), psi, cfg.energy)
        alpha = jnp.exp(jax.lax.stop_gradient(log_alpha))
        if cfg.bc_weight == 0:  # the paper's loss, exactly
            loss = jnp.mean(alpha * log_prob - energy)
            return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}
        q_scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(energy))) + Q_SCALE_EPS
        bc = -jnp.mean(log_likelihood_under(dist, batch.action))
        loss = jnp.mean(alpha * log_prob) - jnp.mean(energy) / q_scale + cfg.bc_weight * bc
        return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob), "bc_loss": bc, "q_scale": q_scale}

    def actor_loss_fn(actor_params: Any, critic_params: Any, log_alpha: jax.Array, batch: Batch,
                      key: jax.Array) -> tuple[jax.Array, Metrics]:
        """mean(alpha * log pi(a|s,g) - f(s, a, g)) with a ~ pi reparameterised and alpha held fixed; with
        bc_weight > 0, the Q term is scaled by 1 / stopgrad(mean |Q|) and bc_weight * -mean log pi(a_data|s,g)
        is added (OGBench's CRL actor, with SAC's entropy term kept)."""
        dist = networks.actor_dist(actor_params, jnp.concatenate([batch.state, batch.goal], axis=-1))
        return actor_terms(dist, critic_params, log_alpha, batch, key, networks.g_encode(critic_params, batch.goal))

    def critic_actor_fn(critic_params: Any, actor_params: Any, log_alpha: jax.Array, batch: Batch,
                        key: jax.Array) -> tuple[jax.Array, tuple[Metrics, Metrics]]:
        """critic_loss_fn + actor_loss_fn at the same (pre-step) params, the actor's term seeing the critic only
        through stop_gradient: the sum's gradient is the critic loss's w.r.t. critic_params and the actor loss's
        w.r.t. actor_params, exactly; its first passes of the three networks share one scan, and psi(g) is
        computed once for both."""
        phi, psi, dist = networks.encode_and_act(critic_params, batch.state, batch.action, batch.goal, actor_params)
        critic, critic_metrics = critic_terms(phi, psi, batch.goal)
        actor, actor_metrics = actor_terms(dist, jax.lax.stop_gradient(critic_params), log_alpha, batch, key,
                                           jax.lax.stop_gradient(psi))
        return critic + actor, (critic_metrics, actor_metrics)

    def alpha_loss_fn(log_alpha: jax.Array, log_prob: jax.Array) -> tuple[jax.Array, Metrics]:
        """The entropy-temperature loss at this config's target entropy (see alpha_loss)."""
        return alpha_loss(log_alpha, log_prob, entropy_target)

    return Losses(critic_loss_fn, actor_loss_fn, alpha_loss_fn, critic_actor_fn)
