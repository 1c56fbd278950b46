"""Shared pieces of the small goal-conditioned brax tasks (reacher.py, pusher.py, cheetah.py, arm.py).

`GoalPipelineEnv` is a brax PipelineEnv whose episode never terminates: a subclass says how to
draw the initial (q, qd, commanded goal) and how to read the state vector from the pipeline
state; the base builds obs = concat(state, goal), reward = -dist and the `goal_metrics` of the
EnvSpec. Optional hooks: `_ctrl` (action -> actuator controls), `_commanded` (a goal that follows
the scene, a marker to move) and `_metrics` (other success criteria). The commanded goal is data
(`info['goal']`), never a body in the physics: the reference's target bodies never collide and
never move, so they are stripped from the models (`strip_bodies`) and the goal is computed where
the reference's target body would sit.

`Physics` is the per-backend physics step, frames per control step and optional actuator gear
override (brax's spring approximations use other gears); control dt = timestep x n_frames.
"""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax.envs.base import PipelineEnv, State

from .model import load_system
from .spec import EnvSpec, goal_metrics

EPISODE_LENGTH = 1000
EASY_RADIUS_FACTOR = 4.0  # success_easy = 4 x success radius, as the ant (0.5 / 2.0) and cheetah references


@dataclasses.dataclass(frozen=True)
class Physics:
    """Physics step (s), frames per control step and an optional actuator gear override."""

    timestep: float
    n_frames: int
    gear: tuple[float, ...] | None = None

    @property
    def control_dt(self) -> float:
        return self.timestep * self.n_frames


def physics_for(table: Mapping[str, Physics], backend: str, env_name: str) -> Physics:
    """The Physics of `backend` from a per-backend table, with a clear error for other backends."""
    if backend not in table:
        raise ValueError(f"{env_name}: unsupported backend {backend!r}; choose one of {sorted(table)}")
    return table[backend]


def build_system(xml: str, physics: Physics):
    """brax System of `xml` with the physics step of `physics` and its gear override, if any."""
    sys = load_system(xml, physics.timestep)
    if physics.gear is None:
        return sys
    gear = jnp.asarray(physics.gear, dtype=jnp.float32)
    if gear.shape != sys.actuator.gear.shape:
        raise ValueError(f"gear override has {gear.shape[0]} values, the model has {sys.act_size()} actuators")
    return sys.replace(actuator=sys.actuator.replace(gear=gear))


def strip_bodies(xml: str, names: Sequence[str]) -> str:
    """`xml` without the named bodies (and their subtrees); KeyError naming any that are absent."""
    root = ET.fromstring(xml)
    parents = {child: parent for parent in root.iter() for child in parent}
    for name in names:
        body = root.find(f".//body[@name='{name}']")
        if body is None:
            raise KeyError(f"no body named {name!r} in the model")
        parents[body].remove(body)
    return ET.tostring(root, encoding="unicode")


def _numeric(root: ET.Element, name: str) -> ET.Element:
    numeric = root.find(f".//custom/numeric[@name='{name}']")
    if numeric is None:
        raise KeyError(f"no custom numeric named {name!r} in the model")
    return numeric


def set_numeric(xml: str, name: str, values: Sequence[float]) -> str:
    """`xml` with the brax custom `<numeric name=...>` data replaced by `values`."""
    root = ET.fromstring(xml)
    _numeric(root, name).set("data", " ".join(repr(float(v)) for v in values))
    return ET.tostring(root, encoding="unicode")


def numeric(xml: str, name: str) -> np.ndarray:
    """The values of the brax custom `<numeric name=...>` of `xml`."""
    return np.array(_numeric(ET.fromstring(xml), name).get("data").split(), dtype=np.float64)


def body_pos(xml: str, name: str) -> np.ndarray:
    """Position of body `name` relative to its parent, from the unfused MuJoCo model of `xml`."""
    return np.array(mujoco.MjModel.from_xml_string(xml).body(name).pos, dtype=np.float32)


class GoalPipelineEnv(PipelineEnv):
    """A never-terminating goal-conditioned PipelineEnv; subclasses give `_initial` and `_state`."""

    def __init__(
        self,
        *,
        sys,
        backend: str,
        physics: Physics,
        name: str,
        state_dim: int,
        goal_indices: tuple[int, ...],
        success_radius: float,
        success_easy_radius: float | None = None,
        episode_length: int = EPISODE_LENGTH,
        action_size: int | None = None,
        metric_names: tuple[str, ...] | None = None,
        cpu_legacy_fusion: bool = False,
    ):
        super().__init__(sys=sys, backend=backend, n_frames=physics.n_frames)
        if success_easy_radius is None:
            success_easy_radius = EASY_RADIUS_FACTOR * success_radius
        self.spec = EnvSpec(
            name=name,
            backend=backend,
            state_dim=int(state_dim),
            goal_indices=tuple(int(i) for i in goal_indices),
            action_size=int(sys.act_size() if action_size is None else action_size),
            episode_length=int(episode_length),
            dt=float(physics.control_dt),
            success_radius=float(success_radius),
            success_easy_radius=float(success_easy_radius),
            cpu_legacy_fusion=cpu_legacy_fusion,
            **({} if metric_names is None else {"metric_names": tuple(metric_names)}),
        )

    @property
    def observation_size(self) -> int:
        return self.spec.obs_dim

    @property
    def action_size(self) -> int:
        return self.spec.action_size

    def _initial(self, rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(q, qd, commanded goal) of a new episode."""
        raise NotImplementedError

    def _state(self, pipeline_state) -> jax.Array:
        """The state vector (state_dim,) of a pipeline state."""
        raise NotImplementedError

    def _ctrl(self, action: jax.Array) -> jax.Array:
        """Actuator controls of a policy action (default: the action itself)."""
        return action

    def _commanded(self, pipeline_state, goal: jax.Array):
        """(pipeline state, goal) after a reset or step: where a goal may follow the scene (default: unchanged)."""
        return pipeline_state, goal

    def _metrics(self, achieved: jax.Array, goal: jax.Array):
        """(dist, per-step metrics) of an achieved and commanded goal (default: `goal_metrics`)."""
        return goal_metrics(self.spec, achieved, goal)

    def reset(self, rng: jax.Array) -> State:
        q, qd, goal = self._initial(rng)
        pipeline_state, goal = self._commanded(self.pipeline_init(q, qd), goal)
        obs, dist, metrics = self._observe(pipeline_state, goal)
        return State(pipeline_state=pipeline_state, obs=obs, reward=-dist, done=jnp.zeros(()),
                     metrics=metrics, info={"goal": goal})

    def step(self, state: State, action: jax.Array) -> State:
        pipeline_state = self.pipeline_step(state.pipeline_state, self._ctrl(action))
        pipeline_state, goal = self._commanded(pipeline_state, state.info["goal"])
        obs, dist, metrics = self._observe(pipeline_state, goal)
        return state.replace(pipeline_state=pipeline_state, obs=obs, reward=-dist, done=jnp.zeros(()),
                             metrics=metrics, info={**state.info, "goal": goal})

    def _observe(self, pipeline_state, goal: jax.Array):
        """(obs, dist, metrics): the achieved goal is state[goal_indices]."""
        s = self._state(pipeline_state)
        if s.shape != (self.spec.state_dim,):
            raise ValueError(f"{self.spec.name}: state has shape {s.shape}, spec says ({self.spec.state_dim},)")
        dist, metrics = self._metrics(s[jnp.asarray(self.spec.goal_indices)], goal)
        return jnp.concatenate([s, goal]), dist, metrics
