"""Goal-conditioned humanoid on brax's spring backend (reference.md section 6, row `humanoid`).

Model: brax's packaged humanoid.xml (17 motors, ctrl range [-0.4, 0.4]) turned into the paper's
model as data (ElementTree edits, nothing copied). Actions in [-1, 1] map linearly to the ctrl
range; on spring the motor gears are brax's spring gears (350 x 11 legs/abdomen, 100 x 6 arms),
as brax's and the paper's humanoid do.

Contacts (`contacts=`): 'all' (default) is the paper's humanoid.xml, whose geom default is
contype 1: every body geom touches the floor and maze walls (never each other). 'feet' is
brax's packaged file (geom default contype 0): only the two foot spheres touch anything, so a
falling torso sinks through the floor and limbs pass into walls. 'all' costs speed (CPU, 256
envs, 50-step scan, 2 shared cores: humanoid 8.0K vs 13.0K env steps/s; humanoid_u_maze 0.65K
vs 5.6K, since spring/MJX collide every geom with every wall box). See DEFAULT_CONTACTS.

State layouts (`state_layout=`; obs = concat(state, goal), goal = (x, y, GOAL_Z)):
- 'paper' (default, 268): qpos + qvel + com inertia (links x 10) + com velocity (links x 6) +
  actuator joint forces (qvel-sized), computed as brax's own humanoid does for every backend
  (from x/xd and the link inertias; spring and positional use their scaled inertias). The model
  carries the paper's `target` body (a non-colliding 1 kg sphere on slide joints target_x,
  target_y at height GOAL_Z), set to the commanded goal at reset, so the state holds the
  commanded goal (its slide joints; its link in the com terms) [the paper's bug: the critic sees
  the goal inside s]. On brax 0.14.2 the joint-less foot bodies fuse into the shins, leaving 11
  humanoid links + target = 12: q 26 (7 + 17 + 2) + qd 25 (6 + 17 + 2) + 12 x 10 + 12 x 6 +
  25 = 268.
- 'clean' (246): the same terms for the model without the target body (not in the physics at
  all): q 24 + qd 23 + 11 x 10 + 11 x 6 + 23 = 246; the goal is only in obs[246:].
'paper' is the default for every `humanoid*` id: Table 1 and the paper's parameter counts
assume the 268-d state. Clean twins are the robot `humanoid_clean`: ids `humanoid_clean`,
`humanoid_clean_<layout>`, `humanoid_clean_<layout>_gen_<cfg>` (humanoid_maze.py).

Task: achieved goal = torso xyz = state[0:3] (qpos address of the free joint 'root', looked up
by name). Goal at reset: distance U(1, 5) and angle U(0, 2 pi) from the start (the origin),
z = GOAL_Z = 1.25 (not uniform on the annulus: favours near goals, as the reference). Success
radius 0.5, success_easy 2.0 (the reference's). Termination when the torso z leaves
[1.0, 2.0]. Episode 1000. Reset noise U(-s, s) on qpos and qvel with s = 0.0 as the paper's
runs (brax's humanoid: 0.01); the root xy is set exactly to the task's start. `reset_to(rng,
start, goal_xy)` resets to a given task.

Backend and timing: `backend` kwarg, default 'spring' (the paper's); 'mjx' also works (brax's
MJX solver settings: Newton, 1 iteration, 4 line-search steps, no Euler damping; CPU 1.4K env
steps/s for humanoid; its pipeline x lags q by one substep, so read positions from q). Control
dt = opt.timestep x n_frames = 0.003 x 10 = 0.03 s for `humanoid` (reference.md's table), the
same on every backend so backends compare at equal dt. NOTE: every JaxGCRL / scaling-crl
humanoid.py we could read sets opt.timestep 0.0015 on spring, i.e. 0.015 s like the mazes; see
PHYSICS_TIMESTEP. Mazes: 0.0015 x 10 = 0.015 s (humanoid_maze.py).

Deviations from the reference code: the commanded goal in obs is the sampled goal itself (the
reference reads it back from the target link: the same up to float error); termination reads
the root joint z (the reference reads link 0's z: the same number on spring); the root xy and
target joints are set exactly rather than noised (the noise is 0 in the paper's runs anyway).
"""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import mujoco
from brax import actuator, base
from brax.envs.base import PipelineEnv, State
from etils import epath

from . import tasks
from .model import load_system, qpos_index, qvel_index
from .spec import EnvSpec, goal_metrics

HUMANOID_XML_PATH = epath.resource_path("brax") / "envs/assets/humanoid.xml"
BACKEND = "spring"
PHYSICS_TIMESTEP = 0.003  # reference.md: 0.003 x 10 = 0.03 s (JaxGCRL's code reads 0.0015 x 10)
N_FRAMES = 10
GOAL_MIN_DIST, GOAL_MAX_DIST = 1.0, 5.0
GOAL_Z = 1.25  # the paper's target height: about the standing torso height
SUCCESS_RADIUS = 0.5
SUCCESS_EASY_RADIUS = 2.0  # the reference's success_easy threshold
HEALTHY_Z_RANGE = (1.0, 2.0)
RESET_NOISE_SCALE = 0.0  # the paper's runs (brax's humanoid: 0.01)
EPISODE_LENGTH = 1000
ROOT_JOINT = "root"  # the torso's free joint
TORSO_BODY = "torso"
COM_INERTIA_SIZE = 10  # per link: 3 x 3 inertia about the centre of mass + mass
COM_VELOCITY_SIZE = 6  # per link: mass-weighted linear velocity + angular velocity

# brax's spring gears for the humanoid: 11 leg/abdomen motors then 6 arm motors (brax and paper)
SPRING_BACKENDS = ("spring", "positional")
SPRING_LEG_GEAR, SPRING_ARM_GEAR = 350.0, 100.0
N_LEG_MOTORS, N_ARM_MOTORS = 11, 6
# brax's MJX solver settings for the humanoid (brax/envs/humanoid.py; the paper's as well)
MJX_OPTIONS = {
    "opt.solver": mujoco.mjtSolver.mjSOL_NEWTON,
    "opt.disableflags": mujoco.mjtDisableBit.mjDSBL_EULERDAMP,
    "opt.iterations": 1,
    "opt.ls_iterations": 4,
}

# state layouts
PAPER_LAYOUT, CLEAN_LAYOUT = "paper", "clean"
STATE_LAYOUTS = (PAPER_LAYOUT, CLEAN_LAYOUT)
# contacts: 'all' = the paper's humanoid.xml (contype 1 on every body geom: floor and walls);
# 'feet' = brax's packaged humanoid.xml (only the two foot spheres touch floor and walls)
ALL_CONTACTS, FEET_CONTACTS = "all", "feet"
CONTACT_MODES = (ALL_CONTACTS, FEET_CONTACTS)
DEFAULT_CONTACTS = ALL_CONTACTS  # paper-faithful; FEET_CONTACTS: ~1.6x (humanoid), ~8x (mazes) faster on CPU
BODY_CONTYPE = 1  # the paper's geom default: contype 1, conaffinity 0 (floor/walls, no self contact)

# the paper's commanded-goal body: a non-colliding 0.5 m sphere of mass 1 on two slide joints
TARGET_BODY = "target"
TARGET_JOINTS = ("target_x", "target_y")
TARGET_AXES = ("1 0 0", "0 1 0")
TARGET_RANGE = 100.0  # slide limit (m): larger than any goal of any layout
TARGET_RADIUS, TARGET_MASS = 0.5, 1.0


def _check_choice(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    """ValueError naming the allowed values when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def _add_target_body(worldbody: ET.Element) -> None:
    """Append the paper's target body (two slide joints, no collisions) at height GOAL_Z."""
    body = ET.SubElement(worldbody, "body", name=TARGET_BODY, pos=f"0 0 {GOAL_Z:g}")
    for name, axis in zip(TARGET_JOINTS, TARGET_AXES):
        ET.SubElement(body, "joint", name=name, type="slide", axis=axis, pos="0 0 0", limited="true",
                      range=f"{-TARGET_RANGE:g} {TARGET_RANGE:g}", armature="0", damping="0", stiffness="0")
    ET.SubElement(body, "geom", name=TARGET_BODY, type="sphere", pos="0 0 0", size=f"{TARGET_RADIUS:g}",
                  mass=f"{TARGET_MASS:g}", contype="0", conaffinity="0")


@functools.lru_cache(maxsize=None)
def humanoid_xml(state_layout: str = PAPER_LAYOUT, contacts: str = DEFAULT_CONTACTS) -> str:
    """brax's humanoid.xml with the paper's contacts and (paper layout) target body."""
    _check_choice("state_layout", state_layout, STATE_LAYOUTS)
    _check_choice("contacts", contacts, CONTACT_MODES)
    root = ET.fromstring(HUMANOID_XML_PATH.read_text())
    if contacts == ALL_CONTACTS:
        default_geom = root.find("default/geom")
        if default_geom is None:
            raise ValueError("brax humanoid.xml has no <default><geom>; cannot set the paper's contacts")
        default_geom.set("contype", str(BODY_CONTYPE))
    if state_layout == PAPER_LAYOUT:
        _add_target_body(root.find("worldbody"))
    return ET.tostring(root, encoding="unicode")


def distance_angle(min_dist: float, max_dist: float) -> tasks.Sampler:
    """xy at distance U(min, max) and angle U(0, 2 pi) from the origin (favours near points)."""

    def sample(key: jax.Array) -> jax.Array:
        k_dist, k_angle = jax.random.split(key)
        dist = jax.random.uniform(k_dist, (), minval=min_dist, maxval=max_dist)
        angle = jax.random.uniform(k_angle, (), minval=0.0, maxval=2.0 * jnp.pi)
        return dist * jnp.stack([jnp.cos(angle), jnp.sin(angle)])

    return sample


def _configure(sys, backend: str):
    """Per-backend model settings of brax's humanoid: spring gears, MJX solver options."""
    if backend in SPRING_BACKENDS:
        gear = jnp.array([SPRING_LEG_GEAR] * N_LEG_MOTORS + [SPRING_ARM_GEAR] * N_ARM_MOTORS)
        if sys.act_size() != gear.shape[0]:
            raise ValueError(f"humanoid model has {sys.act_size()} actuators, expected {gear.shape[0]}")
        return sys.replace(actuator=sys.actuator.replace(gear=gear))
    if backend == "mjx":
        return sys.tree_replace(MJX_OPTIONS)
    return sys


class GoalHumanoid(PipelineEnv):
    """A humanoid that must bring its torso xyz to a commanded goal; model and samplers are data."""

    def __init__(
        self,
        *,
        name: str = "humanoid",
        xml: str | None = None,
        state_layout: str = PAPER_LAYOUT,
        contacts: str = DEFAULT_CONTACTS,
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
        _check_choice("state_layout", state_layout, STATE_LAYOUTS)
        sys = _configure(load_system(xml if xml is not None else humanoid_xml(state_layout, contacts), timestep), backend)
        super().__init__(sys=sys, backend=backend, n_frames=n_frames)
        self.state_layout = state_layout
        mj = sys.mj_model
        self._root_q = int(mj.jnt_qposadr[mj.joint(ROOT_JOINT).id])  # x, y, z, quaternion
        self._target_q, self._target_qd = self._target_addresses(sys, state_layout)
        self._task_sampler = task_sampler or tasks.independent(tasks.origin, distance_angle(GOAL_MIN_DIST, GOAL_MAX_DIST))
        self._healthy_z_range = tuple(float(z) for z in healthy_z_range)
        self._reset_noise_scale = float(reset_noise_scale)
        # qpos + qvel + per-link com inertia and velocity + actuator joint forces (qvel-sized)
        state_dim = sys.q_size() + 2 * sys.qd_size() + sys.num_links() * (COM_INERTIA_SIZE + COM_VELOCITY_SIZE)
        self.spec = EnvSpec(
            name=name,
            backend=backend,
            state_dim=state_dim,
            goal_indices=tuple(range(self._root_q, self._root_q + 3)),
            action_size=sys.act_size(),
            episode_length=int(episode_length),
            dt=float(timestep) * int(n_frames),
            success_radius=float(success_radius),
            success_easy_radius=float(success_easy_radius),
        )

    @staticmethod
    def _target_addresses(sys, state_layout: str):
        """qpos and qvel addresses of the target's slide joints (paper layout), else empty."""
        if state_layout != PAPER_LAYOUT:
            return qpos_index(sys, ()), qvel_index(sys, ())
        try:
            return qpos_index(sys, TARGET_JOINTS), qvel_index(sys, TARGET_JOINTS)
        except KeyError:
            raise ValueError(f"state_layout {PAPER_LAYOUT!r} needs the target joints {TARGET_JOINTS} in the model "
                             f"(humanoid_xml({PAPER_LAYOUT!r}) adds them); use state_layout={CLEAN_LAYOUT!r}") from None

    @property
    def observation_size(self) -> int:
        return self.spec.obs_dim

    @property
    def target_q_indices(self) -> tuple[int, ...]:
        """State indices of the target's slide joints (paper layout; empty for clean)."""
        return tuple(int(i) for i in self._target_q)

    def reset(self, rng: jax.Array) -> State:
        k_noise, k_task = jax.random.split(rng)
        start, goal_xy = self._task_sampler(k_task)
        return self.reset_to(k_noise, start, goal_xy)

    def reset_to(self, rng: jax.Array, start: jax.Array, goal_xy: jax.Array) -> State:
        """Reset with the torso at xy `start` exactly and the goal (goal_xy, GOAL_Z); rng: joint noise."""
        k_q, k_qd = jax.random.split(rng)
        low, high = -self._reset_noise_scale, self._reset_noise_scale
        q = self.sys.init_q + jax.random.uniform(k_q, (self.sys.q_size(),), minval=low, maxval=high)
        qd = jax.random.uniform(k_qd, (self.sys.qd_size(),), minval=low, maxval=high)
        q = q.at[self._root_q : self._root_q + 2].set(start)
        if self.state_layout == PAPER_LAYOUT:  # the commanded goal enters the physics (paper)
            q = q.at[self._target_q].set(goal_xy)
            qd = qd.at[self._target_qd].set(0.0)
        pipeline_state = self.pipeline_init(q, qd)
        goal = jnp.concatenate([goal_xy, jnp.array([GOAL_Z])])
        state = self._state(pipeline_state, jnp.zeros(self.sys.act_size()))
        dist, metrics = goal_metrics(self.spec, state[self._goal_slice], goal)
        return State(pipeline_state=pipeline_state, obs=jnp.concatenate([state, goal]), reward=-dist,
                     done=jnp.zeros(()), metrics=metrics, info={"goal": goal})

    def step(self, state: State, action: jax.Array) -> State:
        ctrl = self._scale_action(action)
        pipeline_state = self.pipeline_step(state.pipeline_state, ctrl)
        goal = state.info["goal"]
        s = self._state(pipeline_state, ctrl)
        z = pipeline_state.q[self._root_q + 2]
        low, high = self._healthy_z_range
        done = jnp.where((z < low) | (z > high), 1.0, 0.0)
        dist, metrics = goal_metrics(self.spec, s[self._goal_slice], goal)
        return state.replace(pipeline_state=pipeline_state, obs=jnp.concatenate([s, goal]), reward=-dist,
                             done=done, metrics=metrics)

    @property
    def _goal_slice(self) -> slice:
        return slice(self._root_q, self._root_q + 3)

    def _scale_action(self, action: jax.Array) -> jax.Array:
        """[-1, 1] -> the motors' ctrl range, linearly (brax's and the paper's humanoid)."""
        low, high = self.sys.actuator.ctrl_range[:, 0], self.sys.actuator.ctrl_range[:, 1]
        return (action + 1.0) * (high - low) * 0.5 + low

    def _state(self, pipeline_state, ctrl: jax.Array) -> jax.Array:
        """qpos, qvel, com inertia, com velocity, actuator joint forces (brax humanoid's terms)."""
        com, inertia, mass_sum, x_i = self._com(pipeline_state)
        cinr = x_i.replace(pos=x_i.pos - com).vmap().do(inertia)
        com_inertia = jnp.hstack([cinr.i.reshape((cinr.i.shape[0], -1)), inertia.mass[:, None]])
        xd_i = base.Transform.create(pos=x_i.pos - pipeline_state.x.pos).vmap().do(pipeline_state.xd)
        com_velocity = jnp.hstack([inertia.mass[:, None] * xd_i.vel / mass_sum, xd_i.ang])
        qfrc_actuator = actuator.to_tau(self.sys, ctrl, pipeline_state.q, pipeline_state.qd)
        return jnp.concatenate([pipeline_state.q, pipeline_state.qd, com_inertia.ravel(),
                                com_velocity.ravel(), qfrc_actuator])

    def _com(self, pipeline_state):
        """(com, link inertias as the pipeline uses them, total mass, link inertial frames)."""
        inertia = self.sys.link.inertia
        if self.backend in SPRING_BACKENDS:  # spring/positional integrate with scaled inertias
            inertia = inertia.replace(
                i=jax.vmap(jnp.diag)(jax.vmap(jnp.diagonal)(inertia.i) ** (1 - self.sys.spring_inertia_scale)),
                mass=inertia.mass ** (1 - self.sys.spring_mass_scale),
            )
        mass_sum = jnp.sum(inertia.mass)
        x_i = pipeline_state.x.vmap().do(inertia.transform)
        com = jnp.sum(jax.vmap(jnp.multiply)(inertia.mass, x_i.pos), axis=0) / mass_sum
        return com, inertia, mass_sum, x_i


def make_humanoid(**kwargs) -> GoalHumanoid:
    """`humanoid`: reference.md section 6 row `humanoid` (paper state layout, 268)."""
    return GoalHumanoid(name="humanoid", **kwargs)


def make_humanoid_clean(**kwargs) -> GoalHumanoid:
    """`humanoid_clean`: `humanoid` without the target body (246-d state, goal only in obs)."""
    return GoalHumanoid(name="humanoid_clean", state_layout=CLEAN_LAYOUT, **kwargs)


def register_all(register) -> None:
    register("humanoid", make_humanoid)
    register("humanoid_clean", make_humanoid_clean)
