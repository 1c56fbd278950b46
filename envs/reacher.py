"""Goal-conditioned reacher: bring the fingertip of brax's 2-link planar arm to a target (reference.md 6).

Model: brax's packaged `reacher.xml` without its `target` body (the reference's target never
collides and never moves, so the goal is data here; the arm's dynamics are unchanged).
State (10) = cos(joint0, joint1) (2), sin(joint0, joint1) (2), fingertip xyz (3), fingertip
velocity (3); goal = fingertip xyz = state[4:7]; obs = concat(state, goal) (13).
Goal at reset: where the reference's target body sits: the target body origin (0, 0, 0.01) +
(r cos a, r sin a, 0) with r = 0.2 U(0, 1) and a = 2 pi U(0, 1) -- r uniform, so goals are
denser near the centre (NOT uniform on the disk, as the reference). Reset: arm joints
init + U(-0.1, 0.1), joint velocities U(-0.005, 0.005). Success: dist < 0.05 (easy 0.2, a
crl addition: 4 x the radius as for the ant). No termination; episodes of 1000 steps.

Timing: control dt = 0.04 s on every backend. Spring (the paper's backend): 0.005 s x 8 frames,
gear 25 (brax's spring approximation of the reacher). The reference asks for 0.005 s x 4 on
spring through `opt.timestep`; reference.md 6 gives 0.04 s as what the paper's runs (brax
0.10.1) effectively used, i.e. the model's 0.01 s x 4 (crl's inference: that brax read `sys.dt`,
not verified against its source). On
today's brax spring diverges at 0.01 s (NaN within 20 steps, with or without the target body),
so crl keeps the paper's 0.04 s control dt with the reference's stable 0.005 s physics step
(8 frames). Generalized / mjx integrate the MuJoCo model itself (gear 200) at 0.01 s x 4.

Backend choice (CPU env steps/s, 256 envs, jitted 50-step scan of vmapped step with random
actions in [-1, 1], second call; measured on a shared 2-core CPU under load from other jobs, so
+-2x noise): spring 127K, generalized 30K, mjx 23K. Default: spring -- the paper's backend and
clearly the fastest (spring is brax's approximation of the model, as in the paper).

Deviations from the reference: (1) fingertip velocity is the true velocity of the fingertip
point (v_body1 + w x (tip - body1)); the reference transforms body1's velocity by the offset
(0.11, 0, 0) in the world frame instead of the rotated offset, which is wrong unless body1
points along +x (a state feature only: goal and success are unaffected). (2) reward = -dist
(crl convention) instead of the reference's sparse success.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from .goal_pipeline import (
    GoalPipelineEnv,
    Physics,
    body_pos,
    build_system,
    numeric,
    physics_for,
    set_numeric,
    strip_bodies,
)
from .model import link_index, qpos_index, qvel_index

REACHER_XML_PATH = epath.resource_path("brax") / "envs/assets/reacher.xml"
ARM_JOINTS = ("joint0", "joint1")
ARM_LINKS = ("body0", "body1")
PER_LINK_NUMERICS = ("constraint_stiffness", "constraint_vel_damping")  # spring parameters, one per body
TIP_LINK = "body1"  # the fingertip body is fused into body1 by brax
TIP_BODY = "fingertip"
TARGET_BODY = "target"
BACKEND = "spring"
SPRING_TIMESTEP = 0.005  # the reference's spring step; the model's 0.01 s diverges on spring
SPRING_N_FRAMES = 8  # 0.005 x 8 = 0.04 s, the paper's effective control dt
SPRING_GEAR = (25.0, 25.0)  # brax's spring reacher
MODEL_TIMESTEP = 0.01
MODEL_N_FRAMES = 4  # 0.01 x 4 = 0.04 s
PHYSICS = {
    "spring": Physics(SPRING_TIMESTEP, SPRING_N_FRAMES, gear=SPRING_GEAR),
    "positional": Physics(SPRING_TIMESTEP, SPRING_N_FRAMES, gear=SPRING_GEAR),
    "generalized": Physics(MODEL_TIMESTEP, MODEL_N_FRAMES),
    "mjx": Physics(MODEL_TIMESTEP, MODEL_N_FRAMES),
}
GOAL_MAX_RADIUS = 0.2
SUCCESS_RADIUS = 0.05
RESET_Q_NOISE = 0.1
RESET_QD_NOISE = 0.005
STATE_DIM = 10
GOAL_INDICES = (4, 5, 6)


@functools.cache
def reacher_model() -> tuple[str, np.ndarray, np.ndarray]:
    """(arm-only MJCF, target body origin, fingertip offset in body1's frame) from brax's reacher."""
    xml = REACHER_XML_PATH.read_text()
    target_origin = body_pos(xml, TARGET_BODY)
    tip_offset = body_pos(xml, TIP_BODY)
    arm_xml = strip_bodies(xml, [TARGET_BODY])
    # brax's per-body / per-qpos custom values list the target last: keep the arm's entries
    for name, n_kept in (("init_qpos", len(ARM_JOINTS)), *((p, len(ARM_LINKS)) for p in PER_LINK_NUMERICS)):
        arm_xml = set_numeric(arm_xml, name, numeric(xml, name)[:n_kept])
    return arm_xml, target_origin, tip_offset


def sample_target_offset(key: jax.Array, max_radius: float = GOAL_MAX_RADIUS) -> jax.Array:
    """(x, y) with radius max_radius * U(0, 1) and angle 2 pi U(0, 1) (the reference's law)."""
    k_r, k_a = jax.random.split(key)
    r = max_radius * jax.random.uniform(k_r)
    a = 2.0 * jnp.pi * jax.random.uniform(k_a)
    return jnp.stack([r * jnp.cos(a), r * jnp.sin(a)])


class Reacher(GoalPipelineEnv):
    """brax's 2-link reacher; the goal is a fingertip position in a disk of radius 0.2."""

    def __init__(self, *, name: str = "reacher", backend: str = BACKEND, episode_length: int = 1000):
        physics = physics_for(PHYSICS, backend, name)
        xml, target_origin, tip_offset = reacher_model()
        sys = build_system(xml, physics)
        super().__init__(sys=sys, backend=backend, physics=physics, name=name, state_dim=STATE_DIM,
                         goal_indices=GOAL_INDICES, success_radius=SUCCESS_RADIUS, episode_length=episode_length)
        self._arm_q = qpos_index(sys, ARM_JOINTS)
        self._arm_qd = qvel_index(sys, ARM_JOINTS)
        self._tip_link = link_index(sys, TIP_LINK)
        self._tip_offset = jnp.asarray(tip_offset)
        self._target_origin = jnp.asarray(target_origin)

    def _initial(self, rng):
        k_q, k_qd, k_goal = jax.random.split(rng, 3)
        noise = RESET_Q_NOISE * jax.random.uniform(k_q, (self.sys.q_size(),), minval=-1.0, maxval=1.0)
        q = self.sys.init_q + noise
        qd = RESET_QD_NOISE * jax.random.uniform(k_qd, (self.sys.qd_size(),), minval=-1.0, maxval=1.0)
        offset = sample_target_offset(k_goal)
        goal = self._target_origin + jnp.concatenate([offset, jnp.zeros((1,))])
        return q, qd, goal

    def fingertip(self, pipeline_state) -> tuple[jax.Array, jax.Array]:
        """(world position, world velocity) of the fingertip point."""
        x = pipeline_state.x.take(self._tip_link)
        xd = pipeline_state.xd.take(self._tip_link)
        lever = x.do(type(x).create(pos=self._tip_offset)).pos - x.pos
        return x.pos + lever, xd.vel + jnp.cross(xd.ang, lever)

    def _state(self, pipeline_state):
        theta = pipeline_state.q[self._arm_q]
        tip_pos, tip_vel = self.fingertip(pipeline_state)
        return jnp.concatenate([jnp.cos(theta), jnp.sin(theta), tip_pos, tip_vel])


def register_all(register) -> None:
    register("reacher", Reacher)
