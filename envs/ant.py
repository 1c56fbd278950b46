"""Goal-conditioned ant on brax's spring backend (reference.md section 6, row `ant`).

State = qpos (15) + qvel (14) = 29 of the packaged brax ant (no target body: the goal is not
part of the physics); goal = torso xy = state[0:2] (indexed by the free joint 'root');
obs = concat(state, goal). Goal at reset: uniform on the circle of radius 10 around the origin.
Success radius 0.5 (easy 2.0). Termination when the torso z leaves [0.2, 1.0]. Control dt =
0.005 s x 10 frames = 0.05 s. Reset noise as the reference: q = init_q + U(-0.1, 0.1),
qd = 0.1 N(0, 1).

`GoalAnt` is data-driven -- the model is an MJCF string and the (start, goal) pair comes from a
`tasks.TaskSampler` -- so ant mazes (walls as boxes in the MJCF, start = R cell, goal = G cells)
and stitching tasks (start and goal drawn together) reuse it unchanged.

Object tasks (ant_objects.py: ant_ball, ant_push) add bodies to the MJCF and use three generic
hooks, all by joint name (brax fuses bodies and may reorder qpos, reference 6.4):
- The robot = the joints of the subtree of the body holding the free joint 'root'; the state
  always starts with the robot's qpos then qvel (15 + 14 for the ant). Joints of other bodies
  (objects) are not in the state unless named in `extra_state_joints` (1-dof slide/hinge joints
  whose qpos are appended after the robot's qvel, in the given order).
- `goal_joints`: the achieved goal = the state entries of these extra joints (default None: the
  torso xy, state[0:2]); `env.goal_qpos` holds their qpos addresses, for independent checks.
- `object_sampler(key, goal)`: initial qpos of `extra_state_joints` (default: the model's
  init_qpos + the reset noise). Every non-robot dof starts at rest (qvel 0), as the reference.
With no objects the state is exactly qpos + qvel of the model, as before.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import PipelineEnv, State
from etils import epath

from . import tasks
from .model import load_system
from .spec import EnvSpec, goal_metrics

ANT_XML_PATH = epath.resource_path("brax") / "envs/assets/ant.xml"
BACKEND = "spring"
PHYSICS_TIMESTEP = 0.005
N_FRAMES = 10  # control dt = 0.005 * 10 = 0.05 s
CONTROL_DT = PHYSICS_TIMESTEP * N_FRAMES
GOAL_RADIUS = 10.0
SUCCESS_RADIUS = 0.5
SUCCESS_EASY_RADIUS = 2.0
HEALTHY_Z_RANGE = (0.2, 1.0)
RESET_NOISE_SCALE = 0.1
EPISODE_LENGTH = 1000
ROOT_JOINT = "root"  # the torso's free joint
ONE_DOF_JOINT_TYPES = (2, 3)  # mjtJoint: slide, hinge (one qpos and one qvel each)

ObjectSampler = Callable[[jax.Array, jax.Array], jax.Array]  # (key, goal) -> qpos of extra_state_joints


@functools.cache
def ant_xml() -> str:
    """The MJCF text of brax's packaged ant."""
    return ANT_XML_PATH.read_text()


class GoalAnt(PipelineEnv):
    """An ant that must bring its torso xy to a commanded goal; model and samplers are data."""

    def __init__(
        self,
        *,
        name: str = "ant",
        xml: str | None = None,
        task_sampler: tasks.TaskSampler | None = None,
        backend: str = BACKEND,
        timestep: float = PHYSICS_TIMESTEP,
        n_frames: int = N_FRAMES,
        healthy_z_range: tuple[float, float] = HEALTHY_Z_RANGE,
        reset_noise_scale: float = RESET_NOISE_SCALE,
        success_radius: float = SUCCESS_RADIUS,
        success_easy_radius: float = SUCCESS_EASY_RADIUS,
        episode_length: int = EPISODE_LENGTH,
        extra_state_joints: Sequence[str] = (),
        goal_joints: Sequence[str] | None = None,
        object_sampler: ObjectSampler | None = None,
    ):
        sys = load_system(xml if xml is not None else ant_xml(), timestep)
        super().__init__(sys=sys, backend=backend, n_frames=n_frames)
        mj = sys.mj_model
        root = mj.joint(ROOT_JOINT)
        self._root_q = int(mj.jnt_qposadr[root.id])  # x, y, z, quaternion
        self._robot_q, self._robot_qd = robot_indices(mj)
        self._object_qd = np.setdiff1d(np.arange(sys.qd_size()), self._robot_qd)
        self._extra_q = one_dof_qpos_indices(mj, extra_state_joints)
        self.extra_state_joints = tuple(extra_state_joints)
        if np.isin(self._extra_q, self._robot_q).any():
            raise ValueError(f"extra_state_joints {self.extra_state_joints} must not be the robot's own joints")
        self._object_sampler = object_sampler
        if object_sampler is not None and not self.extra_state_joints:
            raise ValueError("object_sampler sets the qpos of extra_state_joints, but none were given")
        # default: start at the model's init xy, goal uniform on the circle of radius GOAL_RADIUS
        self._task_sampler = task_sampler or tasks.independent(tasks.origin, tasks.circle(GOAL_RADIUS))
        self._healthy_z_range = tuple(float(z) for z in healthy_z_range)
        self._reset_noise_scale = float(reset_noise_scale)
        robot_dim = len(self._robot_q) + len(self._robot_qd)
        state_dim = robot_dim + len(self._extra_q)
        if goal_joints is None:  # torso xy: the root's x, y inside the robot's qpos
            root_at = int(np.flatnonzero(self._robot_q == self._root_q)[0])
            goal_indices = (root_at, root_at + 1)
            self.goal_qpos = (self._root_q, self._root_q + 1)
        else:
            at = [_position(self.extra_state_joints, j, "extra_state_joints") for j in goal_joints]
            goal_indices = tuple(robot_dim + k for k in at)
            self.goal_qpos = tuple(int(self._extra_q[k]) for k in at)  # qpos addresses of the achieved goal
        self.spec = EnvSpec(
            name=name,
            backend=backend,
            state_dim=state_dim,
            goal_indices=goal_indices,
            action_size=sys.act_size(),
            episode_length=int(episode_length),
            dt=float(timestep) * int(n_frames),
            success_radius=float(success_radius),
            success_easy_radius=float(success_easy_radius),
        )

    @property
    def observation_size(self) -> int:
        return self.spec.obs_dim

    def reset(self, rng: jax.Array) -> State:
        # four keys (the first three are the ant's as before: threefry split keys do not depend on n)
        k_q, k_qd, k_task, k_object = jax.random.split(rng, 4)
        start, goal = self._task_sampler(k_task)
        low, high = -self._reset_noise_scale, self._reset_noise_scale
        q = self.sys.init_q + jax.random.uniform(k_q, (self.sys.q_size(),), minval=low, maxval=high)
        q = q.at[self._root_q : self._root_q + 2].add(start)
        qd = high * jax.random.normal(k_qd, (self.sys.qd_size(),))
        if self._object_sampler is not None:
            q = q.at[self._extra_q].set(self._object_sampler(k_object, goal))
        if self._object_qd.size:
            qd = qd.at[self._object_qd].set(0.0)  # objects start at rest
        pipeline_state = self.pipeline_init(q, qd)
        dist, metrics = self._metrics(pipeline_state, goal)
        return State(
            pipeline_state=pipeline_state,
            obs=self._obs(pipeline_state, goal),
            reward=-dist,
            done=jnp.zeros(()),
            metrics=metrics,
            info={"goal": goal},
        )

    def step(self, state: State, action: jax.Array) -> State:
        pipeline_state = self.pipeline_step(state.pipeline_state, action)
        goal = state.info["goal"]
        z = pipeline_state.q[self._root_q + 2]
        low, high = self._healthy_z_range
        done = jnp.where((z < low) | (z > high), 1.0, 0.0)
        dist, metrics = self._metrics(pipeline_state, goal)
        return state.replace(
            pipeline_state=pipeline_state,
            obs=self._obs(pipeline_state, goal),
            reward=-dist,
            done=done,
            metrics=metrics,
        )

    def state_vector(self, pipeline_state) -> jax.Array:
        """The state s: robot qpos, robot qvel, then the qpos of `extra_state_joints`."""
        q, qd = pipeline_state.q, pipeline_state.qd
        parts = [_take(q, self._robot_q), _take(qd, self._robot_qd)]
        if self._extra_q.size:
            parts.append(_take(q, self._extra_q))
        return jnp.concatenate(parts)

    def achieved_goal(self, pipeline_state) -> jax.Array:
        """state[goal_indices]: the torso xy, or the qpos of `goal_joints`."""
        return _take(self.state_vector(pipeline_state), np.asarray(self.spec.goal_indices))

    def _obs(self, pipeline_state, goal: jax.Array) -> jax.Array:
        return jnp.concatenate([self.state_vector(pipeline_state), goal])

    def _metrics(self, pipeline_state, goal: jax.Array):
        return goal_metrics(self.spec, self.achieved_goal(pipeline_state), goal)


def robot_indices(mj) -> tuple[np.ndarray, np.ndarray]:
    """(qpos, qvel) addresses of the joints in the subtree of the body holding ROOT_JOINT, ascending."""
    root_body = int(mj.jnt_bodyid[mj.joint(ROOT_JOINT).id])
    in_subtree = np.zeros(mj.nbody, bool)
    in_subtree[root_body] = True
    for b in range(root_body + 1, mj.nbody):  # MuJoCo orders bodies depth-first: parents first
        in_subtree[b] = in_subtree[mj.body_parentid[b]]
    q, qd = [], []
    for j in range(mj.njnt):
        if in_subtree[mj.jnt_bodyid[j]]:
            q.extend(range(mj.jnt_qposadr[j], mj.jnt_qposadr[j] + _joint_width(mj, j, mj.nq, mj.jnt_qposadr)))
            qd.extend(range(mj.jnt_dofadr[j], mj.jnt_dofadr[j] + _joint_width(mj, j, mj.nv, mj.jnt_dofadr)))
    return np.asarray(sorted(q), np.int32), np.asarray(sorted(qd), np.int32)


def one_dof_qpos_indices(mj, names: Sequence[str]) -> np.ndarray:
    """qpos addresses of named slide/hinge joints; ValueError for unknown or multi-dof joints."""
    known = [mj.joint(j).name for j in range(mj.njnt)]
    out = []
    for name in names:
        if name not in known:
            raise ValueError(f"model has no joint {name!r}; joints: {', '.join(known)}")
        j = known.index(name)
        if int(mj.jnt_type[j]) not in ONE_DOF_JOINT_TYPES:
            raise ValueError(f"joint {name!r} must be a slide or hinge joint (one qpos) to be a state entry")
        out.append(int(mj.jnt_qposadr[j]))
    return np.asarray(out, np.int32)


def _joint_width(mj, j: int, total: int, adr) -> int:
    """Number of qpos (or qvel) entries of joint j: distance to the next joint's address."""
    return int((adr[j + 1] if j + 1 < mj.njnt else total) - adr[j])


def _position(names: tuple[str, ...], name: str, what: str) -> int:
    if name not in names:
        raise ValueError(f"goal joint {name!r} must be one of {what} {names}")
    return names.index(name)


def _take(x: jax.Array, idx: np.ndarray) -> jax.Array:
    """x[idx] for a static index array; a plain slice when idx is contiguous (cheaper under jit)."""
    if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
        return x[int(idx[0]) : int(idx[0]) + idx.size]
    return x[idx]


def make_ant(**kwargs) -> GoalAnt:
    """`ant`: reference.md section 6 row `ant`."""
    return GoalAnt(name="ant", **kwargs)


def register_all(register) -> None:
    register("ant", make_ant)
