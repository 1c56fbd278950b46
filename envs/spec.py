"""EnvSpec: what every goal-conditioned environment declares, so the trainer hard-codes nothing."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Shapes, timing and success criteria of one registered environment.

    Observations are concat(state, commanded goal); the achieved goal is state[goal_indices].
    Each step the env reports every name in `metric_names` in `State.metrics` (per env, float).
    """

    name: str
    backend: str  # 'jax' (physics-free), 'spring', 'generalized', 'mjx'
    state_dim: int
    goal_indices: tuple[int, ...]
    action_size: int
    episode_length: int
    dt: float
    success_radius: float
    success_easy_radius: float | None = None
    metric_names: tuple[str, ...] = ("success", "success_easy", "dist")
    headline_metric: str = "success"  # summed over an episode -> time at goal
    # True where XLA:CPU's newer fusion emitters make the physics pathologically slow (deep joint chains: the arms,
    # pusher; reference 6.4): programs that step this env then keep the legacy emitters (crl._platform)
    cpu_legacy_fusion: bool = False

    @property
    def goal_dim(self) -> int:
        return len(self.goal_indices)

    @property
    def obs_dim(self) -> int:
        return self.state_dim + self.goal_dim


def goal_metrics(spec: EnvSpec, achieved, goal):
    """(dist, per-step metrics) for an achieved and commanded goal: the names EnvSpec declares by default."""
    dist = jnp.linalg.norm(achieved - goal)
    metrics = {"success": (dist < spec.success_radius).astype(jnp.float32), "dist": dist}
    if spec.success_easy_radius is not None:
        metrics["success_easy"] = (dist < spec.success_easy_radius).astype(jnp.float32)
    return dist, metrics
