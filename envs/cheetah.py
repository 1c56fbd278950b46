"""Goal-conditioned half cheetah: run the torso to x = 5 (reference.md 6, row `cheetah`).

Model: brax's packaged `half_cheetah.xml` with the reference's masses. The reference adds a
target body (a sphere of mass 1 on a slide joint, no collisions) to that model, and its
`settotalmass="14"` then scales every body, target included, to a total of 14: the reference's
cheetah weighs 14 M0 / (M0 + 1) = 13.37 kg (M0 = 21.18, the geoms' own mass), not 14. crl drops
the target body (the goal is data) and scales the default geom density by 13.37 / M0 instead
(every mass comes from geom volume x density, so this is exactly settotalmass's uniform scaling
of masses and inertias, without MuJoCo's deprecation warning and its MUJOCO_LOG.TXT in the
working directory): every cheetah body has the reference's mass and inertia (checked in
tests/test_small_tasks.py).
State (18) = qpos (9: rootx, rootz, rooty, 6 leg joints) + qvel (9), torso x included; goal =
torso x = state[0]; obs = concat(state, goal) (19). Goal at reset: x = 5 always. Reset:
qpos = init + U(-0.1, 0.1), qvel = 0.1 N(0, 1). Success: |x - 5| < 0.5 (easy 2.0, as the
reference). No termination; episodes of 1000 steps.

Timing: mjx (the paper's backend): the model's 0.01 s x 5 frames = 0.05 s; generalized the same;
spring: brax's approximation (0.003125 s x 16 = 0.05 s, gears 120 90 60 120 100 100).

Backend choice (CPU env steps/s, 256 envs, jitted 50-step scan of vmapped step with random
actions in [-1, 1], second call; measured on a shared 2-core CPU under load from other jobs, so
+-2x noise): mjx 0.63K, generalized 0.95K, spring 4.2K. Default: mjx -- the paper's backend.
Generalized is only ~1.5x faster within that noise and resolves the foot-floor contacts with
brax's own solver, not MuJoCo's; spring is ~7x faster but an approximation (other gears, step
and joint model), so neither keeps the paper's physics. Pass backend="spring" for fast CPU
smoke runs.

Deviation: reward = -dist (crl convention) instead of the reference's sparse success.
"""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import mujoco
from etils import epath

from .goal_pipeline import GoalPipelineEnv, Physics, build_system, physics_for
from .model import qpos_index, qvel_index

CHEETAH_XML_PATH = epath.resource_path("brax") / "envs/assets/half_cheetah.xml"
JOINTS = ("rootx", "rootz", "rooty", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
X_JOINT = "rootx"
BACKEND = "mjx"
MODEL_TIMESTEP = 0.01
PHYSICS = {
    "mjx": Physics(MODEL_TIMESTEP, 5),
    "generalized": Physics(MODEL_TIMESTEP, 5),
    "spring": Physics(0.003125, 16, gear=(120.0, 90.0, 60.0, 120.0, 100.0, 100.0)),
    "positional": Physics(0.003125, 16, gear=(120.0, 90.0, 60.0, 120.0, 100.0, 100.0)),
}
REFERENCE_TOTAL_MASS = 14.0  # settotalmass of the reference model, target included
MUJOCO_DEFAULT_DENSITY = 1000.0  # kg/m^3: the density of every half_cheetah.xml geom (none sets its own)
REFERENCE_TARGET_MASS = 1.0  # mass of the reference's target sphere before that scaling
GOAL_X = 5.0
SUCCESS_RADIUS = 0.5
SUCCESS_EASY_RADIUS = 2.0
RESET_NOISE_SCALE = 0.1
STATE_DIM = 18
GOAL_INDICES = (0,)


def _geom_mass(root: ET.Element) -> float:
    """Total body mass of the model `root` without settotalmass (MuJoCo's own compile)."""
    root.find("compiler").attrib.pop("settotalmass", None)
    return float(mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode")).body_mass.sum())


def reference_cheetah_mass(xml: str) -> float:
    """Total cheetah mass once settotalmass scales cheetah + the reference's target (mass 1) to 14."""
    own = _geom_mass(ET.fromstring(xml))
    return REFERENCE_TOTAL_MASS * own / (own + REFERENCE_TARGET_MASS)


@functools.cache
def cheetah_xml() -> str:
    """brax's half cheetah with the reference's total cheetah mass (geom density scaled)."""
    xml = CHEETAH_XML_PATH.read_text()
    root = ET.fromstring(xml)
    scale = reference_cheetah_mass(xml) / _geom_mass(root)  # also drops settotalmass from root
    root.find("default/geom").set("density", repr(MUJOCO_DEFAULT_DENSITY * scale))
    return ET.tostring(root, encoding="unicode")


class Cheetah(GoalPipelineEnv):
    """brax's half cheetah; the goal is the torso x position 5."""

    def __init__(self, *, name: str = "cheetah", backend: str = BACKEND, goal_x: float = GOAL_X,
                 episode_length: int = 1000):
        physics = physics_for(PHYSICS, backend, name)
        sys = build_system(cheetah_xml(), physics)
        super().__init__(sys=sys, backend=backend, physics=physics, name=name, state_dim=STATE_DIM,
                         goal_indices=GOAL_INDICES, success_radius=SUCCESS_RADIUS,
                         success_easy_radius=SUCCESS_EASY_RADIUS, episode_length=episode_length)
        self._q = qpos_index(sys, JOINTS)
        self._qd = qvel_index(sys, JOINTS)
        if len(self._q) != sys.q_size() or len(self._qd) != sys.qd_size():
            raise ValueError("the cheetah model must have exactly the joints " + ", ".join(JOINTS))
        self.goal_x = float(goal_x)

    def _initial(self, rng):
        k_q, k_qd = jax.random.split(rng)
        low, high = -RESET_NOISE_SCALE, RESET_NOISE_SCALE
        q = self.sys.init_q + jax.random.uniform(k_q, (self.sys.q_size(),), minval=low, maxval=high)
        qd = high * jax.random.normal(k_qd, (self.sys.qd_size(),))
        return q, qd, jnp.full((1,), self.goal_x)

    def _state(self, pipeline_state):
        return jnp.concatenate([pipeline_state.q[self._q], pipeline_state.qd[self._qd]])


def register_all(register) -> None:
    register("cheetah", Cheetah)
