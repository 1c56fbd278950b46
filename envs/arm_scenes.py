"""Arm scenes: the one arm model (assets/arm.xml) varied by data (reference.md 6.3).

A `Scene` says whether the cube and the gripper are present, which bins (colliding walls) and
floor patches (visual only) to add, and the solver's impratio. `scene_xml` edits the packaged
MJCF accordingly: bin walls get explicit contact pairs with the cube, the hand and both fingers,
and any contact pair, actuator or equality that names a removed geom or joint is dropped.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import xml.etree.ElementTree as ET

ARM_XML = "assets/arm.xml"
CUBE_BODY = "cube"
GRIPPER_BODIES = ("left_finger", "right_finger")
BIN_WALL_PARTNERS = ("cube", "hand", "left_finger", "right_finger")  # geoms that collide with bin walls
BIN_THICKNESS = 0.01
BIN_HEIGHT = 0.066
PATCH_THICKNESS = 0.001
START_RGBA = (0.0, 0.2, 0.8, 1.0)  # blue: where the cube starts
GOAL_RGBA = (0.8, 0.0, 0.0, 1.0)  # red: where the goal is drawn


@dataclasses.dataclass(frozen=True)
class Bin:
    """A square open bin standing on the table: 4 colliding walls of `length` x thickness x height."""

    centre: tuple[float, float]
    length: float
    rgba: tuple[float, ...] = START_RGBA


@dataclasses.dataclass(frozen=True)
class Patch:
    """A square floor patch (visual only) of side 2 x `half_size`."""

    centre: tuple[float, float]
    half_size: float
    rgba: tuple[float, ...] = START_RGBA


@dataclasses.dataclass(frozen=True)
class Scene:
    """What is on the table besides the arm."""

    cube: bool = True
    gripper: bool = True
    bins: tuple[Bin, ...] = ()
    patches: tuple[Patch, ...] = ()
    impratio: float = 1.0


def _vec(values) -> str:
    return " ".join(repr(float(v)) for v in values)


@functools.cache
def arm_xml() -> str:
    """The packaged arm model (read through the package, so it works from any directory or install)."""
    return importlib.resources.files(__package__).joinpath(ARM_XML).read_text()


def _remove_body(root: ET.Element, name: str) -> None:
    parents = {child: parent for parent in root.iter() for child in parent}
    body = root.find(f".//body[@name='{name}']")
    if body is None:
        raise KeyError(f"no body named {name!r} in the arm model")
    parents[body].remove(body)


def bin_walls(b: Bin, prefix: str) -> list[dict[str, str]]:
    """Geom attributes of the 4 walls of bin `b`: two of full length along x, two between them along y."""
    half_len, half_t, half_h = b.length / 2, BIN_THICKNESS / 2, BIN_HEIGHT / 2
    offset = half_len - half_t
    x, y = b.centre
    walls = [((x, y - offset), (half_len, half_t)), ((x, y + offset), (half_len, half_t)),
             ((x - offset, y), (half_t, half_len - 2 * half_t)), ((x + offset, y), (half_t, half_len - 2 * half_t))]
    return [dict(name=f"{prefix}_wall{k}", type="box", pos=_vec((cx, cy, half_h)), size=_vec((sx, sy, half_h)),
                 contype="0", conaffinity="0", rgba=_vec(b.rgba))
            for k, ((cx, cy), (sx, sy)) in enumerate(walls)]


def _prune(root: ET.Element) -> None:
    """Drop contact pairs, actuators and joint equalities that name a geom or joint no longer present."""
    geoms = {g.get("name") for g in root.iter("geom")}
    joints = {j.get("name") for j in root.iter("joint")} | {j.get("name") for j in root.iter("freejoint")}
    for section, tag, keys, names in (("contact", "pair", ("geom1", "geom2"), geoms),
                                      ("actuator", "general", ("joint",), joints),
                                      ("equality", "joint", ("joint1", "joint2"), joints)):
        parent = root.find(section)
        for element in list(parent.findall(tag)):
            if any(element.get(key) not in names for key in keys):
                parent.remove(element)


def scene_xml(scene: Scene) -> str:
    """MJCF of the arm model with `scene` applied."""
    root = ET.fromstring(arm_xml())
    if not scene.cube:
        _remove_body(root, CUBE_BODY)
    if not scene.gripper:
        for body in GRIPPER_BODIES:
            _remove_body(root, body)
    worldbody, contact = root.find("worldbody"), root.find("contact")
    geoms = {g.get("name") for g in root.iter("geom")}
    for i, patch in enumerate(scene.patches):
        ET.SubElement(worldbody, "geom", name=f"patch{i}", type="box", contype="0", conaffinity="0",
                      pos=_vec((*patch.centre, PATCH_THICKNESS)),
                      size=_vec((patch.half_size, patch.half_size, PATCH_THICKNESS)), rgba=_vec(patch.rgba))
    for i, b in enumerate(scene.bins):
        for wall in bin_walls(b, f"bin{i}"):
            ET.SubElement(worldbody, "geom", **wall)
            for partner in BIN_WALL_PARTNERS:
                if partner in geoms:
                    ET.SubElement(contact, "pair", geom1=partner, geom2=wall["name"])
    root.find("option").set("impratio", repr(float(scene.impratio)))
    _prune(root)
    return ET.tostring(root, encoding="unicode")
