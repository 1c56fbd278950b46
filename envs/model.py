"""Loading brax Systems from MJCF text and finding joints and links by name, for every robot.

brax's MJCF loader fuses joint-less bodies into their parents and can reorder qpos (reference
6.4), so environments index qpos/qvel and links by name through these helpers, never by position.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import mujoco
import numpy as np
from brax.io import mjcf


def load_system(xml: str, timestep: float, *, fuse: bool = True):
    """brax System from MJCF text with the physics step set on opt.timestep (reference 6.4).

    fuse=False compiles the MJCF as MuJoCo does, keeping joint-less bodies (e.g. mocap goal
    markers, which brax's fusing would weld to the world); only the mjx backend steps such models.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
        sys = mjcf.loads(xml) if fuse else mjcf.load_model(mujoco.MjModel.from_xml_string(xml))
    return sys.tree_replace({"opt.timestep": timestep})


def qpos_index(sys, names: Sequence[str]) -> np.ndarray:
    """qpos addresses of 1-dof joints by name (KeyError for an unknown joint)."""
    return np.array([int(sys.mj_model.jnt_qposadr[sys.mj_model.joint(n).id]) for n in names], np.int32)


def qvel_index(sys, names: Sequence[str]) -> np.ndarray:
    """qvel addresses of 1-dof joints by name (KeyError for an unknown joint)."""
    return np.array([int(sys.mj_model.jnt_dofadr[sys.mj_model.joint(n).id]) for n in names], np.int32)


def link_index(sys, name: str) -> int:
    """Index of the brax link (= non-fused body) `name` in pipeline_state.x."""
    if name not in sys.link_names:
        raise KeyError(f"no link named {name!r}; links are {sys.link_names}")
    return sys.link_names.index(name)
