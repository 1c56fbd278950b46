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
"""
from __future__ import annotations

import functools
import warnings
import jax
import jax.numpy as jnp
from brax.envs.base import PipelineEnv, State
from brax.io import mjcf
from etils import epath

from . import tasks
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


@functools.cache
def ant_xml() -> str:
    """The MJCF text of brax's packaged ant."""
    return ANT_XML_PATH.read_text()


def load_system(xml: str, timestep: float):
    """brax System from MJCF text with the physics step set on opt.timestep (reference 6.4)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
        sys = mjcf.loads(xml)
    return sys.tree_replace({"opt.timestep": timestep})


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
    ):
        sys = load_system(xml if xml is not None else ant_xml(), timestep)
        super().__init__(sys=sys, backend=backend, n_frames=n_frames)
        mj = sys.mj_model
        root = mj.joint(ROOT_JOINT)
        self._root_q = int(mj.jnt_qposadr[root.id])  # x, y, z, quaternion
        # default: start at the model's init xy, goal uniform on the circle of radius GOAL_RADIUS
        self._task_sampler = task_sampler or tasks.independent(tasks.origin, tasks.circle(GOAL_RADIUS))
        self._healthy_z_range = tuple(float(z) for z in healthy_z_range)
        self._reset_noise_scale = float(reset_noise_scale)
        state_dim = sys.q_size() + sys.qd_size()
        self.spec = EnvSpec(
            name=name,
            backend=backend,
            state_dim=state_dim,
            goal_indices=(self._root_q, self._root_q + 1),
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
        k_q, k_qd, k_task = jax.random.split(rng, 3)
        start, goal = self._task_sampler(k_task)
        low, high = -self._reset_noise_scale, self._reset_noise_scale
        q = self.sys.init_q + jax.random.uniform(k_q, (self.sys.q_size(),), minval=low, maxval=high)
        q = q.at[self._root_q : self._root_q + 2].add(start)
        qd = high * jax.random.normal(k_qd, (self.sys.qd_size(),))
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

    def _obs(self, pipeline_state, goal: jax.Array) -> jax.Array:
        return jnp.concatenate([pipeline_state.q, pipeline_state.qd, goal])

    def _metrics(self, pipeline_state, goal: jax.Array):
        return goal_metrics(self.spec, pipeline_state.q[self._root_q : self._root_q + 2], goal)


def make_ant(**kwargs) -> GoalAnt:
    """`ant`: reference.md section 6 row `ant`."""
    return GoalAnt(name="ant", **kwargs)


def register_all(register) -> None:
    register("ant", make_ant)
