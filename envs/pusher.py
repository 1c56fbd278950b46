"""Goal-conditioned pusher (`pusher_easy`, `pusher_hard`): push brax's cylinder to a goal (reference.md 6).

Model: brax's packaged `pusher.xml` (7-joint arm; object on two slide joints, no gravity)
without its `goal` body (never collides, never moves in the reference; the goal is data here).
State (20) = arm joint angles (7), arm "tip" = centre of mass of link r_wrist_flex_link (3, as
the reference), object centre of mass xyz (3), arm joint velocities (7); goal = object xyz =
state[10:13]; obs = concat(state, goal) (23).

Goal and object at reset, as the reference. The reference fills qpos[-4:] = (c0, c1, g0, g1)
whose joints are, in model order, obj_slidey, obj_slidex, goal_slidey, goal_slidex: its "x"
samples move the bodies along world y and its "y" samples along world x. With d = offset from
the common body origin (0.45, -0.05):
- object: d_y = c0 ~ U(-0.3, 0), d_x = c1 ~ U(-0.2, 0.2), z = -0.275;
- goal (the reference's target-body centre, z = -0.323): easy d_y = g0 ~ U(-0.55, -0.25),
  d_x = g1 ~ U(-0.2, 0.2); hard d_y ~ U(-0.65, 0.35), d_x ~ U(-0.55, 0.45) (the table's
  "x"/"y" ranges are these g0/g1);
- if |c - g| < 0.17 the object offset c is scaled by 0.17 / |c - g| (the reference's rule: it
  scales the offset from the origin, so it does not guarantee the minimum distance; kept since
  it shapes the start distribution the paper trained on).
The goal's z is 0.048 below the object's (the reference reads both body centres), so the 3-D
distance is never below 0.048 and success (dist < 0.1) needs an xy error below ~0.088; kept as
the reference (the paper's success numbers depend on it). Arm: init pose, joint velocities
U(-0.005, 0.005); object at rest. Success easy 0.4 (crl addition: 4 x radius). No termination.

Timing: generalized (the paper's backend for pusher_easy/_hard): the model's 0.01 s x 5 frames
= 0.05 s. mjx: the same. spring: brax's approximation (gear 20, 0.001 s x 50 = 0.05 s).

Backend choice (CPU env steps/s, 256 envs, jitted 50-step scan of vmapped step with random
actions in [-1, 1], second call; measured on a shared 2-core CPU under load from other jobs,
XLA flag --xla_cpu_use_fusion_emitters=false): generalized 1.3K, mjx 0.75K, spring 1.6K.
Default: generalized -- the paper's backend; mjx (same model) is slower, spring is an
approximation (other gears and step) and not clearly faster.

Note: the paper's own training script (scaling-crl train.py, id "pusher") builds the pusher with
backend="spring", where the 0.001 s step request was ignored by brax 0.10.1 (0.01 s x 50 = 0.5 s
per control step); crl follows reference.md's generalized row.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from brax import base
from etils import epath

from .goal_pipeline import (
    GoalPipelineEnv,
    Physics,
    body_pos,
    build_system,
    physics_for,
    strip_bodies,
)
from .model import link_index, qpos_index, qvel_index

PUSHER_XML_PATH = epath.resource_path("brax") / "envs/assets/pusher.xml"
ARM_JOINTS = (
    "r_shoulder_pan_joint",
    "r_shoulder_lift_joint",
    "r_upper_arm_roll_joint",
    "r_elbow_flex_joint",
    "r_forearm_roll_joint",
    "r_wrist_flex_joint",
    "r_wrist_roll_joint",
)
OBJECT_JOINTS = ("obj_slidex", "obj_slidey")  # world x, world y
TIP_LINK = "r_wrist_flex_link"  # the reference's arm tip (tips_arm is fused into r_wrist_roll_link)
OBJECT_LINK = "object"
GOAL_BODY = "goal"
BACKEND = "generalized"
MODEL_TIMESTEP = 0.01
PHYSICS = {
    "generalized": Physics(MODEL_TIMESTEP, 5),
    "mjx": Physics(MODEL_TIMESTEP, 5),
    "spring": Physics(0.001, 50, gear=(20.0,) * len(ARM_JOINTS)),
    "positional": Physics(0.001, 50, gear=(20.0,) * len(ARM_JOINTS)),
}
# (low, high) of the offsets from the body origin along world (x, y); see the module docstring
OBJECT_OFFSET_RANGE = ((-0.2, 0.2), (-0.3, 0.0))
GOAL_OFFSET_RANGES = {
    "easy": ((-0.2, 0.2), (-0.55, -0.25)),
    "hard": ((-0.55, 0.45), (-0.65, 0.35)),
}
MIN_OBJECT_GOAL_DIST = 0.17
SUCCESS_RADIUS = 0.1
RESET_QD_NOISE = 0.005
STATE_DIM = 20
GOAL_INDICES = (10, 11, 12)


@functools.cache
def pusher_model() -> tuple[str, np.ndarray]:
    """(MJCF without the goal body, world position of the reference's goal body origin)."""
    xml = PUSHER_XML_PATH.read_text()
    return strip_bodies(xml, [GOAL_BODY]), body_pos(xml, GOAL_BODY)


def uniform_box(key: jax.Array, box) -> jax.Array:
    """A point uniform in the axis-aligned box ((low, high), ...) (one row per axis)."""
    low, high = jnp.asarray(box, dtype=jnp.float32).T
    return jax.random.uniform(key, low.shape, minval=low, maxval=high)


def separate(obj: jax.Array, goal: jax.Array, min_dist: float = MIN_OBJECT_GOAL_DIST) -> jax.Array:
    """The reference's rule: scale the object offset by min_dist / |obj - goal| when closer than min_dist."""
    norm = jnp.linalg.norm(obj - goal)
    return obj * jnp.where(norm < min_dist, min_dist / jnp.maximum(norm, 1e-12), 1.0)


class Pusher(GoalPipelineEnv):
    """brax's pusher; `goal_box` = ((x low, x high), (y low, y high)) of the goal offset (data)."""

    def __init__(self, *, name: str, goal_box, backend: str = BACKEND, episode_length: int = 1000):
        goal_box = np.asarray(goal_box, dtype=np.float32)
        if goal_box.shape != (2, 2) or np.any(goal_box[:, 0] > goal_box[:, 1]):
            raise ValueError(f"goal_box must be ((x low, x high), (y low, y high)), got {goal_box.tolist()}")
        physics = physics_for(PHYSICS, backend, name)
        xml, goal_origin = pusher_model()
        sys = build_system(xml, physics)
        super().__init__(sys=sys, backend=backend, physics=physics, name=name, state_dim=STATE_DIM,
                         goal_indices=GOAL_INDICES, success_radius=SUCCESS_RADIUS, episode_length=episode_length,
                         cpu_legacy_fusion=True)  # a 7-joint chain (reference 6.4)
        self.goal_box = goal_box
        self._goal_origin = jnp.asarray(goal_origin)
        self._arm_q = qpos_index(sys, ARM_JOINTS)
        self._arm_qd = qvel_index(sys, ARM_JOINTS)
        self._object_q = qpos_index(sys, OBJECT_JOINTS)
        self._tip_link = link_index(sys, TIP_LINK)
        self._object_link = link_index(sys, OBJECT_LINK)

    def _initial(self, rng):
        k_obj, k_goal, k_qd = jax.random.split(rng, 3)
        goal_xy = uniform_box(k_goal, self.goal_box)
        obj_xy = separate(uniform_box(k_obj, OBJECT_OFFSET_RANGE), goal_xy)
        q = self.sys.init_q.at[self._object_q].set(obj_xy)
        arm_qd = RESET_QD_NOISE * jax.random.uniform(k_qd, (len(ARM_JOINTS),), minval=-1.0, maxval=1.0)
        qd = jnp.zeros((self.sys.qd_size(),)).at[self._arm_qd].set(arm_qd)
        goal = self._goal_origin + jnp.concatenate([goal_xy, jnp.zeros((1,))])
        return q, qd, goal

    def centres_of_mass(self, pipeline_state) -> jax.Array:
        """World centre of mass of every link (num_links, 3)."""
        com = base.Transform.create(pos=self.sys.link.inertia.transform.pos)
        return pipeline_state.x.vmap().do(com).pos

    def _state(self, pipeline_state):
        com = self.centres_of_mass(pipeline_state)
        return jnp.concatenate([
            pipeline_state.q[self._arm_q],
            com[self._tip_link],
            com[self._object_link],
            pipeline_state.qd[self._arm_qd],
        ])


def make_pusher(kind: str, **kwargs) -> Pusher:
    """`pusher_<kind>` with the goal offsets of GOAL_OFFSET_RANGES[kind]."""
    if kind not in GOAL_OFFSET_RANGES:
        raise ValueError(f"unknown pusher kind {kind!r}; choose one of {sorted(GOAL_OFFSET_RANGES)}")
    return Pusher(name=f"pusher_{kind}", goal_box=GOAL_OFFSET_RANGES[kind], **kwargs)


def register_all(register) -> None:
    for kind in GOAL_OFFSET_RANGES:
        register(f"pusher_{kind}", functools.partial(make_pusher, kind))
