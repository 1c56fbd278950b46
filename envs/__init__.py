"""crl.envs: goal-conditioned environments, their registry, specs, wrappers and maze layouts.

Importing this package registers every built-in id (cheap: only factories are stored):
`point_<layout>` physics-free point-mass mazes (point_maze.py), `ant` (ant.py) and its mazes
`ant_<layout>` (ant_maze.py), `ant_ball`, `ant_push` (ant_objects.py),
`humanoid`, `humanoid_clean` (humanoid.py) and their mazes `humanoid[_clean]_<layout>` (humanoid_maze.py),
`reacher` (reacher.py), `pusher_easy`, `pusher_hard` (pusher.py), `cheetah` (cheetah.py) and the
MJX arm tasks `arm_reach`, `arm_push_*`, `arm_binpick_*`, `arm_grasp` (arm.py, arm_scenes.py, assets/arm.xml).
Every maze robot also has stitching ids `<robot>_<layout>_gen_<cfg>` (stitching.py, families.py).
Shared: layouts (maze.py), wall boxes for any MJCF (walls.py), start/goal samplers (tasks.py),
System loading and name lookups (model.py). The built-ins' specs are also written down in
crl/env_catalog.py (catalog.py), declared here so `list_specs` and `crl envs` build no env.
"""
import contextlib
import io

from crl import env_catalog as _env_catalog

# mujoco.mjx prints "Failed to import warp" to stdout on import when its optional GPU backend
# (MuJoCo Warp) is not installed; that is expected here, so keep it out of every command's output.
with contextlib.redirect_stdout(io.StringIO()):
    import mujoco.mjx  # noqa: F401

from . import ant as _ant
from . import arm as _arm
from . import ant_maze as _ant_maze
from . import ant_objects as _ant_objects
from . import cheetah as _cheetah
from . import humanoid as _humanoid
from . import humanoid_maze as _humanoid_maze
from . import point_maze as _point_maze
from . import pusher as _pusher
from . import reacher as _reacher
from .registry import (
    DuplicateEnvError,
    UnknownEnvError,
    check_name,
    declare_specs,
    list_envs,
    list_patterns,
    list_specs,
    make,
    register,
    register_pattern,
    spec,
    unregister,
)
from .spec import EnvSpec
from .wrappers import RESET_MODES, TRAJ_ID_KEY, wrap_for_eval, wrap_for_training

_point_maze.register_all(register)
_ant.register_all(register)
_ant_maze.register_all(register)
_ant_objects.register_all(register)
_reacher.register_all(register)
_pusher.register_all(register)
_cheetah.register_all(register)
_humanoid.register_all(register)
_humanoid_maze.register_all(register)
_arm.register_all(register)
declare_specs({name: EnvSpec(name=name, **fields) for name, fields in _env_catalog.SPECS.items()})

__all__ = [
    "DuplicateEnvError",
    "EnvSpec",
    "RESET_MODES",
    "TRAJ_ID_KEY",
    "UnknownEnvError",
    "check_name",
    "declare_specs",
    "list_envs",
    "list_patterns",
    "list_specs",
    "make",
    "register",
    "register_pattern",
    "spec",
    "unregister",
    "wrap_for_eval",
    "wrap_for_training",
]
