"""Ant object tasks `ant_ball` and `ant_push` (reference.md section 6): data over `ant.GoalAnt`.

Both are brax's packaged ant run by the same `GoalAnt` (no copy of its dynamics) plus bodies
added to the MJCF (ant_push also takes the reference's geom defaults), read through GoalAnt's
generic hooks (`extra_state_joints`, `goal_joints`,
`object_sampler`; joints indexed by name). The commanded goal is only in the observation's goal
part: neither model has the reference's `target` body (two slide joints, no collisions).

ant_ball (reference: JaxGCRL envs/ant_ball.py + assets/ant_ball.xml)
- Model: a ball of radius 0.5 centred at height 0.5 on two world-aligned slide joints `ball_x`,
  `ball_y` (body at xy 0, so their qpos = the ball's world xy; range [-10.3213, 10.3], armature
  1, no damping, mass of the reference's two spheres = density 1.1 x volume). The ball touches
  the floor, the feet and the torso sphere (the reference's colliding pairs, on walls.py's
  channels: torso contype 2; ball contype 1, conaffinity 1 | 2).
- State 31 = ant qpos 15 + ant qvel 14 + ball xy 2 (29:31). Goal = ball xy, goal_indices
  (29, 30). [Reference bug, fixed: it slices obs[28:30] = (last ant qvel, ball x).]
- Reset: target uniform on the circle of radius 5 around the origin; ball at 0.2 x target +
  (cos b, sin a) with b ~ U(0, 2 pi) and a the target's angle -- the reference's formula, whose
  second term was presumably meant to be sin b; kept for fidelity, `ball_offset='circle'` gives
  (cos b, sin b). The ball starts at rest. As in the reference, ~10% of resets put the ball
  within 0.75 m (torso + ball radii) of the torso centre; contacts eject it in the first steps.
- Backend spring, 0.005 s x 10 = 0.05 s, as the ant.

ant_push (reference: JaxGCRL envs/ant_push.py + assets/ant_push.xml, after HIRO's AntPush)
- Model: 7 fixed boxes (the reference's manually fused blocks A..G, 4 m high) and one movable
  box M (half size 3.6 x 3.6 x 1.8, mass 0.0002) on slide joints `movable_x`, `movable_y`,
  `movable_z` (body at xy 0, so qpos xy = world xy; init qpos (8, 8, 0) = the reference's
  body position (8, 8, 2)). Layout in 8 m cells, the ant at the origin (cell `_`, row 3, col 1):
      A A B C C          y 12..28: A x -12..4, B x 4..12 (y 20..28), C x 12..28
      A A _ C C
      D _ M _ E          y 4..12: D x -12..-4 (y -4..12), M x 4.4..11.6, E x 20..28
      D _ _ F F          F x 12..28, y -12..4
      G G G F F          G x -12..12, y -12..-4
  Contacts: fixed boxes contype 0, conaffinity 1 | 2 (walls.py); M contype 1, conaffinity
  1 | 2 (floor, fixed boxes, feet, torso); the torso sphere contype 2 (the reference's torso
  also touches the floor; ours does not, as `ant`). Geom defaults as the reference's model:
  density 40 (ant 8x heavier than `ant`'s density 5) and solimp (.995, .995, .01).
- State 31 = ant qpos 15 + ant qvel 14 + M's xy 2 (the reference's `x.pos[movable][:2]`;
  M's z and the target are not in the state). Goal = torso xy, goal_indices (0, 1).
- Reset: goal = (16, 8) or (8, 16) with probability 1/2 each, + U(0, 2)^2 noise (regions
  [16, 18] x [8, 10] right of M, [8, 10] x [16, 18] above M: both need M pushed away first).
  M keeps the reference's U(-0.1, 0.1) qpos noise and starts at rest (the reference leaves
  noise on M's x velocity).
- Backend: the reference uses MJX (timestep 0.01 x 5 = 0.05 s, Newton solver, 4 iterations,
  8 line-search iterations, Euler damping off; set in the MJCF <option>, spring ignores them).
  Spring runs at 0.005 x 10 = 0.05 s. CPU speed (shared 2-core machine under load 4-6 from
  other jobs; 256 envs, jitted 50-step scan of vmap(step) with random actions; env steps/s of
  the 2nd / 3rd call, two sessions): spring 552 / 1478 and 382 / 1022; mjx 392 / 496 and
  274 / 637 -- spring is ~1.5-3x faster. But spring is not faithful here: M (mass 0.0002)
  rests 6 cm (transiently 17 cm) inside the floor and the ant cannot shove it (torso launched
  at 3 m/s into M: M moves 0.2 m on spring, 4.8 m on mjx, where it slides freely as in the
  reference). Default: mjx, as the reference; `backend='spring'` stays available.

Deviations shared by both: the ant is `ant`'s (no torso/feet self-contacts, which the
reference's conaffinity 1 on torso and feet add; torso init z 0.55 where ant_push.xml has 0.75).
"""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import tasks
from .ant import N_FRAMES, PHYSICS_TIMESTEP, GoalAnt, ant_xml
from .walls import BODY_CHANNEL, FLOOR_CHANNEL, WALL_CONAFFINITY, WALL_CONTYPE

TORSO_GEOM = "torso_geom"
OBJECT_CONTYPE = FLOOR_CHANNEL  # objects rest on the floor and touch fixed boxes
OBJECT_CONAFFINITY = FLOOR_CHANNEL | BODY_CHANNEL  # ... and are touched by the feet and torso
X_AXIS, Y_AXIS, Z_AXIS = (1, 0, 0), (0, 1, 0), (0, 0, 1)

# ---- ant_ball (reference assets/ant_ball.xml)
BALL_RADIUS = 0.5
BALL_HEIGHT = 0.5  # centre z: the ball rests on the floor, z fixed (no z joint)
BALL_DENSITY = 1.1  # reference: an invisible density-1 sphere + a colliding density-0.1 sphere
BALL_RANGE = (-10.3213, 10.3)
BALL_JOINTS = ("ball_x", "ball_y")
BALL_GOAL_RADIUS = 5.0
BALL_TARGET_FRACTION = 0.2  # ball start = 0.2 x target + unit offset
BALL_OFFSETS = ("reference", "circle")

# ---- ant_push (reference assets/ant_push.xml)
PUSH_GEOM_DENSITY = 40.0
PUSH_GEOM_SOLIMP = ".995 .995 .01"
PUSH_MJX_OPTION = {"solver": "Newton", "iterations": "4", "ls_iterations": "8"}
PUSH_FIXED_BLOCKS = {  # name: (centre xyz, half sizes xyz)
    "block_A": ((-4.0, 20.0, 2.0), (8.0, 8.0, 2.0)),
    "block_B": ((8.0, 24.0, 2.0), (4.0, 4.0, 2.0)),
    "block_C": ((20.0, 20.0, 2.0), (8.0, 8.0, 2.0)),
    "block_D": ((-8.0, 4.0, 2.0), (4.0, 8.0, 2.0)),
    "block_E": ((24.0, 8.0, 2.0), (4.0, 4.0, 2.0)),
    "block_F": ((20.0, -4.0, 2.0), (8.0, 8.0, 2.0)),
    "block_G": ((0.0, -8.0, 2.0), (12.0, 4.0, 2.0)),
}
MOVABLE_GEOM = "block_M"
MOVABLE_START = (8.0, 8.0, 0.0)  # init qpos of MOVABLE_JOINTS (world xy; z offset from the body)
MOVABLE_BODY_Z = 2.0
MOVABLE_HALF_SIZE = (3.6, 3.6, 1.8)
MOVABLE_MASS = 0.0002
MOVABLE_JOINTS = ("movable_x", "movable_y", "movable_z")
PUSH_GOAL_CORNERS = np.array([[16.0, 8.0], [8.0, 16.0]])  # the reference permutes (16, 8)
PUSH_GOAL_NOISE = 2.0  # + U(0, 2) per coordinate
PUSH_TIMING = {"mjx": (0.01, 5), "spring": (PHYSICS_TIMESTEP, N_FRAMES), "generalized": (PHYSICS_TIMESTEP, N_FRAMES)}
DEFAULT_PUSH_BACKEND = "mjx"  # faithful block pushing; spring is faster but M sticks (module docstring)


# --------------------------------------------------------------------------- MJCF helpers
def _vec(values: Sequence[float]) -> str:
    return " ".join(f"{float(v):g}" for v in values)


def _parse(xml: str) -> tuple[ET.Element, ET.Element]:
    """(root, worldbody) of an MJCF text; ValueError if it has no worldbody."""
    root = ET.fromstring(xml)
    worldbody = root.find("worldbody")
    if worldbody is None:
        raise ValueError("MJCF has no <worldbody>")
    return root, worldbody


def _set_contacts(root: ET.Element, geom: str, contype: int, conaffinity: int) -> None:
    """Set a named geom's contact bits; ValueError if the model has no such geom."""
    found = [g for g in root.iter("geom") if g.get("name") == geom]
    if not found:
        raise ValueError(f"MJCF has no geom {geom!r}")
    found[0].set("contype", str(contype))
    found[0].set("conaffinity", str(conaffinity))


def _extend_init_qpos(root: ET.Element, values: Sequence[float]) -> None:
    """Append entries to brax's custom init_qpos (it must have one per qpos) for added joints."""
    for numeric in root.iter("numeric"):
        if numeric.get("name") == "init_qpos":
            numeric.set("data", numeric.get("data") + " " + _vec(values))
            return
    raise ValueError("MJCF has no custom numeric 'init_qpos' to extend")


def _add_slide_body(worldbody: ET.Element, name: str, pos, joints: Sequence[str], axes, **joint_attrs) -> ET.Element:
    """A body at `pos` with one slide joint per (name, axis); objects are appended after the ant,
    so their qpos follow the ant's."""
    body = ET.SubElement(worldbody, "body", name=name, pos=_vec(pos))
    for joint, axis in zip(joints, axes):
        ET.SubElement(body, "joint", name=joint, type="slide", pos="0 0 0", axis=_vec(axis), **joint_attrs)
    return body


# --------------------------------------------------------------------------- ant_ball
@functools.cache
def ball_xml() -> str:
    """brax's ant.xml + a ball on slide joints x, y that the torso and feet can push."""
    root, worldbody = _parse(ant_xml())
    _set_contacts(root, TORSO_GEOM, BODY_CHANNEL, 0)
    body = _add_slide_body(worldbody, "ball", (0.0, 0.0, BALL_HEIGHT), BALL_JOINTS, (X_AXIS, Y_AXIS),
                           range=_vec(BALL_RANGE), limited="true", damping="0")
    ET.SubElement(body, "geom", name="ball_geom", type="sphere", size=f"{BALL_RADIUS:g}", density=f"{BALL_DENSITY:g}",
                  contype=str(OBJECT_CONTYPE), conaffinity=str(OBJECT_CONAFFINITY), rgba="1 1 1 1")
    _extend_init_qpos(root, (0.0, 0.0))
    return ET.tostring(root, encoding="unicode")


def ball_start(offset: str = "reference"):
    """ObjectSampler: the ball's start xy from the target (see the module docstring)."""
    if offset not in BALL_OFFSETS:
        raise ValueError(f"ball_offset must be one of {BALL_OFFSETS}, got {offset!r}")

    def sample(key: jax.Array, goal: jax.Array) -> jax.Array:
        b = jax.random.uniform(key, (), minval=0.0, maxval=2.0 * jnp.pi)
        sin_y = goal[1] / jnp.linalg.norm(goal) if offset == "reference" else jnp.sin(b)
        return BALL_TARGET_FRACTION * goal + jnp.stack([jnp.cos(b), sin_y])

    return sample


class AntBall(GoalAnt):
    """The ant must push a ball to a target on the circle of radius 5."""

    def __init__(self, *, name: str = "ant_ball", ball_offset: str = "reference", **kwargs):
        super().__init__(
            name=name,
            xml=ball_xml(),
            task_sampler=tasks.independent(tasks.origin, tasks.circle(BALL_GOAL_RADIUS)),
            extra_state_joints=BALL_JOINTS,
            goal_joints=BALL_JOINTS,
            object_sampler=ball_start(ball_offset),
            **kwargs,
        )


# --------------------------------------------------------------------------- ant_push
@functools.cache
def push_xml() -> str:
    """brax's ant.xml + 7 fixed boxes + the movable box, with the reference's geom defaults."""
    root, worldbody = _parse(ant_xml())
    default_geom = root.find("default/geom")
    default_geom.set("density", f"{PUSH_GEOM_DENSITY:g}")
    default_geom.set("solimp", PUSH_GEOM_SOLIMP)
    option = root.find("option")
    for key, value in PUSH_MJX_OPTION.items():
        option.set(key, value)
    ET.SubElement(option, "flag", eulerdamp="disable")
    _set_contacts(root, TORSO_GEOM, BODY_CHANNEL, 0)
    for name, (centre, half) in PUSH_FIXED_BLOCKS.items():
        ET.SubElement(worldbody, "geom", name=name, type="box", pos=_vec(centre), size=_vec(half),
                      contype=str(WALL_CONTYPE), conaffinity=str(WALL_CONAFFINITY), rgba="0.4 0.4 0.4 1")
    body = _add_slide_body(worldbody, "movable", (0.0, 0.0, MOVABLE_BODY_Z), MOVABLE_JOINTS, (X_AXIS, Y_AXIS, Z_AXIS),
                           limited="false", armature="0", damping="0")
    ET.SubElement(body, "geom", name=MOVABLE_GEOM, type="box", size=_vec(MOVABLE_HALF_SIZE), mass=f"{MOVABLE_MASS:g}",
                  contype=str(OBJECT_CONTYPE), conaffinity=str(OBJECT_CONAFFINITY), rgba="0.9 0.1 0.1 1")
    _extend_init_qpos(root, MOVABLE_START)
    return ET.tostring(root, encoding="unicode")


def push_goal(key: jax.Array) -> jax.Array:
    """One of the two goal corners with probability 1/2, + U(0, PUSH_GOAL_NOISE)^2."""
    k_corner, k_noise = jax.random.split(key)
    return tasks.choice(PUSH_GOAL_CORNERS)(k_corner) + PUSH_GOAL_NOISE * jax.random.uniform(k_noise, (2,))


class AntPush(GoalAnt):
    """The ant must reach a goal behind the movable box: push the box aside, avoid the fixed ones."""

    def __init__(self, *, name: str = "ant_push", backend: str = DEFAULT_PUSH_BACKEND, **kwargs):
        if backend not in PUSH_TIMING:
            raise ValueError(f"ant_push backend must be one of {sorted(PUSH_TIMING)}, got {backend!r}")
        timestep, n_frames = PUSH_TIMING[backend]
        kwargs.setdefault("timestep", timestep)
        kwargs.setdefault("n_frames", n_frames)
        super().__init__(
            name=name,
            xml=push_xml(),
            backend=backend,
            task_sampler=tasks.independent(tasks.origin, push_goal),
            extra_state_joints=MOVABLE_JOINTS[:2],
            **kwargs,
        )


def register_all(register) -> None:
    register("ant_ball", AntBall)
    register("ant_push", AntPush)
