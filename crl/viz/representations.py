"""PCA of the critic's phi(s, a) along evaluation trajectories (the paper's Fig. 10), with psi(goal) projected alike."""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from crl.viz.episodes import Episodes
from crl.viz.run_view import RunView, VizError

PCA_COMPONENTS = 3


@dataclasses.dataclass
class Projection:
    """phi of every alive step and psi of each episode's goal, in the first PCA_COMPONENTS principal axes of phi."""

    phi: np.ndarray  # (M, 3)
    psi: np.ndarray  # (E, 3)
    time: np.ndarray  # (M,) step t of each point
    distance: np.ndarray  # (M,) ||achieved goal - goal|| at that step
    episode: np.ndarray  # (M,) which episode
    mean: np.ndarray  # (repr_dim,) the centre of phi
    components: np.ndarray  # (3, repr_dim) principal axes, rows unit norm
    explained_variance_ratio: np.ndarray  # (3,)

    @property
    def episodes(self) -> int:
        return len(self.psi)

    def save(self, path, **meta) -> None:
        np.savez_compressed(path, **dataclasses.asdict(self), **meta)


def principal_axes(x: np.ndarray, k: int = PCA_COMPONENTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, the k leading principal axes (k, D), their share of the total variance) of the rows of x."""
    if x.shape[0] < 2 or x.shape[1] < k:
        raise VizError(f"PCA to {k} components needs at least 2 points of dimension >= {k}, got {x.shape}")
    mean = x.mean(axis=0)
    _, singular, axes = np.linalg.svd(x - mean, full_matrices=False)
    variance = singular**2
    return mean, axes[:k], variance[:k] / variance.sum()


def project(view: RunView, episodes: Episodes, count: int) -> Projection:
    """phi(s_t, a_t) over the alive steps of the first `count` episodes, projected on their own principal axes."""
    if count < 1:
        raise VizError(f"need at least one episode for the representation PCA, got {count}")
    count = min(count, episodes.goals.shape[0])
    nets, critic = view.trainer.networks, view.critic_params
    if not hasattr(nets, "sa_encode"):
        raise VizError(f"algorithm '{view.cfg.algorithm}' has no phi(s, a) / psi(g) encoders to project; the "
                       f"representation figure takes CRL runs")
    states, actions = episodes.states[:-1, :count], episodes.actions[:, :count]
    alive = episodes.alive[:, :count].astype(bool)
    time_index, episode_index = np.nonzero(alive)
    phi = np.asarray(jax.jit(nets.sa_encode)(critic, states[alive], actions[alive]), np.float64)
    psi = np.asarray(jax.jit(nets.g_encode)(critic, episodes.goals[:count]), np.float64)
    achieved = episodes.achieved(view.spec.goal_indices)[:-1, :count][alive]
    distance = np.linalg.norm(achieved - episodes.goals[episode_index], axis=-1)
    mean, axes, ratio = principal_axes(phi)
    return Projection(phi=(phi - mean) @ axes.T, psi=(psi - mean) @ axes.T, time=time_index, distance=distance,
                      episode=episode_index, mean=mean, components=axes, explained_variance_ratio=ratio)
