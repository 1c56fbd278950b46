"""Maze walls as MJCF box geoms, for any robot model (ant, humanoid): the layout is data.

`add_maze_walls(xml, layout, cell_size, body_geoms)` returns the robot's MJCF with one box per
merged wall rectangle (`MazeLayout.wall_boxes`) and wall contacts on a separate channel:
MuJoCo filtering makes geoms a, b collide iff contype_a & conaffinity_b or contype_b &
conaffinity_a. Walls get contype 0, conaffinity FLOOR_CHANNEL | BODY_CHANNEL, so every geom that
already touches the floor (contype 1: the feet) also touches the walls; the named `body_geoms`
get contype BODY_CHANNEL, conaffinity 0, so they touch walls but still neither the floor nor each
other (the robot's dynamics away from walls are unchanged), and walls do not touch the floor.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Sequence

from .maze import MazeLayout

FLOOR_CHANNEL = 1  # the packaged brax models' feet <-> floor channel
BODY_CHANNEL = 2
WALL_CONTYPE = 0
WALL_CONAFFINITY = FLOOR_CHANNEL | BODY_CHANNEL
WALL_RGBA = "0.7 0.5 0.3 1.0"


def add_maze_walls(
    xml: str, layout: MazeLayout, cell_size: float, body_geoms: Sequence[str] = (), merge: bool = True
) -> str:
    """`xml` with the layout's wall boxes in its worldbody and wall contacts on for `body_geoms`."""
    root = ET.fromstring(xml)
    worldbody = root.find("worldbody")
    if worldbody is None:
        raise ValueError("robot MJCF has no <worldbody>; cannot add maze walls")
    geoms = {g.get("name"): g for g in root.iter("geom")}
    for name in body_geoms:
        if name not in geoms:
            raise ValueError(f"robot MJCF has no geom {name!r}; cannot enable its wall contacts")
        geoms[name].set("contype", str(BODY_CHANNEL))
        geoms[name].set("conaffinity", "0")
    centres, halves = layout.wall_boxes(cell_size, merge=merge)
    for k, (c, h) in enumerate(zip(centres, halves)):
        ET.SubElement(
            worldbody,
            "geom",
            name=f"wall_{k}",
            type="box",
            pos=" ".join(f"{float(v):g}" for v in c),
            size=" ".join(f"{float(v):g}" for v in h),
            contype=str(WALL_CONTYPE),
            conaffinity=str(WALL_CONAFFINITY),
            rgba=WALL_RGBA,
        )
    return ET.tostring(root, encoding="unicode")
