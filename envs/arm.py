"""Goal-conditioned arm manipulation on MJX: reach, push, binpick, grasp (reference.md 6 and 6.3).

One arm (`ArmEnv`, model assets/arm.xml); the six tasks are data: an `ArmTask` = a `Scene`
(arm_scenes.py), an `Objective` (which features form the state and the goal, and how success is
measured), where the cube starts and where goals are drawn.

State features (reference 6.3): cube position (3), the 7 arm joint angles, end-effector position
(3) and linear velocity (3), finger distance (1); grasp adds both fingertip positions and their
distance. The end effector is link7's origin, as in the reference (brax fuses the hand into
link7 there). Dimensions: reach 13 (goal = end effector, 7:10), push / binpick 17 (goal = cube,
0:3), grasp 23 (goal = fingertips + opening, 16:23). obs = concat(state, goal).

Action (4 for reach, 5 otherwise) in [-1, 1]: targets of joints 1, 2, 4, 6 between ACTION_LOW and
ACTION_HIGH, joints 3, 5 held at 0 and joint 7 at 1.4487; the 5th value closes the gripper when
> 0 and opens it otherwise. Physics: MJX, 0.002 s x 25 = 0.05 s per control step.

Goals: reach (0, 0.5, 0.3) + 0.2 U(-1, 1)^3; push / binpick the second region's centre + noise in
xy at cube height; grasp: fingertips 0.0375 m either side of the cube (in x) and opening 0.075,
following the cube every step (as the reference). A mocap goal marker (no state, no collisions)
is moved to the goal for rendering. Metrics: success, success_easy, success_hard (0.1 / 0.3 /
0.03 m; grasp: fingertip midpoint within 0.05 / 0.15 / 0.02 of the cube and opening within
0.02 / 0.05 / 0.005) and dist. No termination; 1000-step episodes (the reference's internal
horizons only fed a time feature that the paper's 17-d state does not contain).
Deviation: reward = -dist (crl convention; learning uses no reward).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .arm_scenes import GOAL_RGBA, Bin, Patch, Scene, scene_xml
from .goal_pipeline import GoalPipelineEnv, Physics, physics_for
from .model import link_index, load_system, qpos_index

BACKEND = "mjx"
PHYSICS = {"mjx": Physics(0.002, 25)}
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_joint1", "finger_joint2")
CUBE_JOINT = "cube"
EEF_LINK = "link7"
FINGER_LINKS = ("left_finger", "right_finger")
FINGERTIP_SITES = ("left_fingertip", "right_fingertip")
MARKER_BODY = "goal_marker"
START_POSE = (1.571, 0.742, 0.0, -1.571, 0.0, 3.054, 1.449)  # 7 arm joints
FINGER_START = (0.04, 0.04)
ACTED_JOINTS = (0, 1, 3, 5)  # joints 1, 2, 4, 6 (0-based)
ACTION_LOW = (0.3491, 0.0, -3.0718, 2.3562)
ACTION_HIGH = (2.7925, 1.48353, -0.0698, 3.7525)
HELD_TARGETS = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.4487)  # joints 3 and 5 at 0, joint 7 at 1.4487
GRIPPER_OPEN, GRIPPER_CLOSED = 255.0, 0.0  # finger actuator controls
CUBE_HALF = 0.03
GRASP_TIP_OFFSET = 0.0375  # fingertip goals: cube +- this along x
GRASP_OPENING = 0.075  # commanded fingertip distance (the cube is 0.06 wide)
EPISODE_LENGTH = 1000
METRIC_NAMES = ("success", "success_easy", "success_hard", "dist")


# --- state features: name -> (size, reader(env, pipeline_state)) ------------------------------

def _tip(i: int):
    return lambda env, ps: ps.site_xpos[env._tips[i]]


FEATURES: dict[str, tuple[int, Callable]] = {
    "cube_pos": (3, lambda env, ps: ps.q[env._cube_q:env._cube_q + 3]),
    "joints": (7, lambda env, ps: ps.q[env._arm_q]),
    "eef_pos": (3, lambda env, ps: ps.x.pos[env._eef]),
    "eef_vel": (3, lambda env, ps: ps.xd.vel[env._eef]),
    "finger_dist": (1, lambda env, ps: jnp.linalg.norm(ps.x.pos[env._fingers[0]] - ps.x.pos[env._fingers[1]])[None]),
    "left_tip": (3, _tip(0)),
    "right_tip": (3, _tip(1)),
    "tip_dist": (1, lambda env, ps: jnp.linalg.norm(ps.site_xpos[env._tips[0]] - ps.site_xpos[env._tips[1]])[None]),
}


# --- objectives -------------------------------------------------------------------------------

def _levels(success: tuple[float, ...], easy: tuple[float, ...], hard: tuple[float, ...]) -> dict:
    return {"success": success, "success_easy": easy, "success_hard": hard}


def distance_metrics(levels: dict) -> Callable:
    """metrics(achieved, goal) for a position goal: success_* when the distance is below each radius."""

    def metrics(achieved, goal):
        dist = jnp.linalg.norm(achieved - goal)
        return dist, {**{k: (dist < r).astype(jnp.float32) for k, (r,) in levels.items()}, "dist": dist}

    return metrics


def grasp_metrics(levels: dict) -> Callable:
    """metrics for (left tip, right tip, opening) goals: tip midpoint near the goal's and opening near the goal's."""

    def metrics(achieved, goal):
        mid = lambda g: (g[0:3] + g[3:6]) / 2  # noqa: E731
        dist = jnp.linalg.norm(mid(achieved) - mid(goal))
        opening_error = jnp.abs(achieved[6] - goal[6])
        return dist, {**{k: ((dist < r) & (opening_error < tol)).astype(jnp.float32) for k, (r, tol) in levels.items()},
                      "dist": dist}

    return metrics


def grasp_goal(cube_pos: jax.Array) -> jax.Array:
    """Fingertips either side of the cube along x, and the opening that holds it."""
    offset = jnp.array([GRASP_TIP_OFFSET, 0.0, 0.0])
    return jnp.concatenate([cube_pos + offset, cube_pos - offset, jnp.array([GRASP_OPENING])])


@dataclasses.dataclass(frozen=True)
class Objective:
    """What the state and goal are, how success is measured and where the marker goes."""

    state: tuple[str, ...]
    goal: tuple[str, ...]
    metrics: Callable
    success_radius: float
    success_easy_radius: float
    marker: Callable = lambda goal: goal[:3]  # goal -> marker position
    goal_of_cube: Callable | None = None  # if set, the goal follows the cube every step


DISTANCE_LEVELS = _levels((0.1,), (0.3,), (0.03,))
GRASP_LEVELS = _levels((0.05, 0.02), (0.15, 0.05), (0.02, 0.005))
REACH = Objective(state=("joints", "eef_pos", "eef_vel"), goal=("eef_pos",),
                  metrics=distance_metrics(DISTANCE_LEVELS), success_radius=0.1, success_easy_radius=0.3)
MOVE_CUBE = Objective(state=("cube_pos", "joints", "eef_pos", "eef_vel", "finger_dist"), goal=("cube_pos",),
                      metrics=distance_metrics(DISTANCE_LEVELS), success_radius=0.1, success_easy_radius=0.3)
GRASP = Objective(state=("cube_pos", "joints", "eef_pos", "eef_vel", "left_tip", "right_tip", "tip_dist"),
                  goal=("left_tip", "right_tip", "tip_dist"), metrics=grasp_metrics(GRASP_LEVELS),
                  success_radius=0.05, success_easy_radius=0.15,
                  marker=lambda goal: (goal[0:3] + goal[3:6]) / 2, goal_of_cube=grasp_goal)


# --- tasks --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ArmTask:
    """One arm task as data: scene, objective, cube start region and goal region (centre +- noise)."""

    scene: Scene
    objective: Objective
    cube_start: tuple[float, float] = (0.0, 0.6)
    cube_noise: float = 0.0
    goal_centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    goal_noise: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _two_regions(a: tuple[float, float], b: tuple[float, float], noise: float, objective=MOVE_CUBE, **scene) -> dict:
    return dict(objective=objective, cube_start=a, cube_noise=noise, goal_centre=(*b, CUBE_HALF),
                goal_noise=(noise, noise, 0.0), **scene)


def _patches(a, b, half):
    return Scene(patches=(Patch(a, half), Patch(b, half, GOAL_RGBA)))


def _bins(a, b, length):
    return Scene(bins=(Bin(a, length), Bin(b, length, GOAL_RGBA)), impratio=10.0)


TASKS: dict[str, ArmTask] = {
    "arm_reach": ArmTask(scene=Scene(cube=False, gripper=False), objective=REACH,
                         goal_centre=(0.0, 0.5, 0.3), goal_noise=(0.2, 0.2, 0.2)),
    "arm_push_easy": ArmTask(scene=_patches((-0.1, 0.6), (0.1, 0.6), 0.1), **_two_regions((-0.1, 0.6), (0.1, 0.6), 0.1)),
    "arm_push_hard": ArmTask(scene=_patches((-0.25, 0.65), (0.25, 0.65), 0.25),
                             **_two_regions((-0.25, 0.65), (0.25, 0.65), 0.25)),
    "arm_binpick_easy": ArmTask(scene=_bins((-0.17, 0.6), (0.17, 0.6), 0.29),
                                **_two_regions((-0.17, 0.6), (0.17, 0.6), 0.09)),
    "arm_binpick_hard": ArmTask(scene=_bins((-0.3, 0.6), (0.3, 0.6), 0.39),
                                **_two_regions((-0.3, 0.6), (0.3, 0.6), 0.15)),
    "arm_grasp": ArmTask(scene=Scene(patches=(Patch((0.0, 0.6), 0.3),)), objective=GRASP,
                         cube_start=(0.0, 0.6), cube_noise=0.3),
}


def feature_layout(names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """name -> (start, stop) of each feature in the concatenated state."""
    layout, start = {}, 0
    for name in names:
        size = FEATURES[name][0]
        layout[name] = (start, start + size)
        start += size
    return layout


class ArmEnv(GoalPipelineEnv):
    """The arm on one `ArmTask`; see the module docstring for state, action, goals and metrics."""

    def __init__(self, task: ArmTask, *, name: str, backend: str = BACKEND, episode_length: int = EPISODE_LENGTH):
        physics = physics_for(PHYSICS, backend, name)
        sys = load_system(scene_xml(task.scene), physics.timestep, fuse=False)
        objective = task.objective
        layout = feature_layout(objective.state)
        goal_indices = tuple(i for f in objective.goal for i in range(*layout[f]))
        gripper = task.scene.gripper
        super().__init__(sys=sys, backend=backend, physics=physics, name=name, state_dim=max(b for _, b in layout.values()),
                         goal_indices=goal_indices, success_radius=objective.success_radius,
                         success_easy_radius=objective.success_easy_radius, episode_length=episode_length,
                         action_size=len(ACTED_JOINTS) + int(gripper), metric_names=METRIC_NAMES,
                         cpu_legacy_fusion=True)  # a 7-joint chain (reference 6.4)
        self.task = task
        mj = sys.mj_model
        self._arm_q = qpos_index(sys, ARM_JOINTS)
        self._finger_q = qpos_index(sys, FINGER_JOINTS) if gripper else np.zeros((0,), np.int32)
        self._cube_q = int(mj.jnt_qposadr[mj.joint(CUBE_JOINT).id]) if task.scene.cube else -1
        self._eef = link_index(sys, EEF_LINK)
        self._fingers = tuple(link_index(sys, n) for n in FINGER_LINKS) if gripper else ()
        self._tips = tuple(mj.site(n).id for n in FINGERTIP_SITES) if gripper else ()
        self._marker = int(mj.body_mocapid[mj.body(MARKER_BODY).id])
        self._readers = tuple(FEATURES[f][1] for f in objective.state)
        low, high = np.array(ACTION_LOW), np.array(ACTION_HIGH)
        self._action_mid, self._action_half = jnp.asarray((low + high) / 2), jnp.asarray((high - low) / 2)

    def _initial(self, rng):
        k_cube, k_goal = jax.random.split(rng)
        q = jnp.asarray(self.sys.init_q).at[self._arm_q].set(jnp.asarray(START_POSE))
        q = q.at[self._finger_q].set(jnp.asarray(FINGER_START)[: len(self._finger_q)])
        if self.task.scene.cube:
            noise = self.task.cube_noise * jax.random.uniform(k_cube, (2,), minval=-1.0, maxval=1.0)
            cube = jnp.array([*self.task.cube_start, CUBE_HALF]).at[:2].add(noise)
            q = q.at[self._cube_q:self._cube_q + 3].set(cube)
        goal = jnp.asarray(self.task.goal_centre) + jnp.asarray(self.task.goal_noise) * jax.random.uniform(
            k_goal, (3,), minval=-1.0, maxval=1.0)
        if self.task.objective.goal_of_cube is not None:
            goal = self.task.objective.goal_of_cube(q[self._cube_q:self._cube_q + 3])
        return q, jnp.zeros(self.sys.qd_size()), goal

    def _ctrl(self, action):
        arm = jnp.asarray(HELD_TARGETS).at[jnp.asarray(ACTED_JOINTS)].set(
            self._action_mid + action[: len(ACTED_JOINTS)] * self._action_half)
        if not self.task.scene.gripper:
            return arm
        fingers = jnp.where(action[len(ACTED_JOINTS)] > 0, GRIPPER_CLOSED, GRIPPER_OPEN)
        return jnp.concatenate([arm, jnp.full((len(FINGER_JOINTS),), fingers)])

    def _commanded(self, pipeline_state, goal):
        if self.task.objective.goal_of_cube is not None:
            goal = self.task.objective.goal_of_cube(pipeline_state.q[self._cube_q:self._cube_q + 3])
        marker = pipeline_state.mocap_pos.at[self._marker].set(self.task.objective.marker(goal))
        return pipeline_state.replace(mocap_pos=marker), goal

    def _metrics(self, achieved, goal):
        return self.task.objective.metrics(achieved, goal)

    def _state(self, pipeline_state):
        return jnp.concatenate([read(self, pipeline_state) for read in self._readers])


def register_all(register) -> None:
    for name, task in TASKS.items():
        register(name, functools.partial(ArmEnv, task, name=name))
