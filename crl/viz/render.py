"""`crl render`: one evaluation episode as brax's interactive HTML viewer and as an MP4 from MuJoCo's renderer.

Rendering needs an OpenGL context without a display: crl sets MUJOCO_GL=egl (Mesa's EGL on a CPU
machine, the NVIDIA driver's EGL on a GPU one) unless the user chose a backend (docs/visualisation.md).
The goal is drawn as a translucent sphere of the success radius; the HTML gets it as a static world geom.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from crl.viz.episodes import Episodes
from crl.viz.run_view import RunView, VizError

DEFAULT_SIZE = (480, 640)  # (height, width) of the MP4
DEFAULT_FPS = 30
CAMERA_ELEVATION = -60.0  # degrees: looking down on a maze at an angle
MAZE_CAMERA_ZOOM = 0.8  # MuJoCo's default free camera stands 1.5 model extents away; a maze fills more of the frame
MAZE_CAMERA_AZIMUTH = 180.0  # looking along -x: world x runs down the frame and y across, as in the viz figures
GOAL_RGBA = (1.0, 0.1, 0.1, 0.5)
HTML_HEIGHT = 480
FLAT_GOAL_DIM = 2  # an xy goal is drawn at the success radius above the floor


@dataclasses.dataclass(frozen=True)
class Scene:
    """What draws an env: a brax System (its mj_model renders the MP4) and the qpos of a pipeline state."""

    sys: Any
    qpos: Callable[[Any], jax.Array]
    maze: bool  # frame the whole model (a maze) rather than follow the robot


def scene_of(env) -> Scene:
    """The env's own render model (the physics-free point maze builds one) or its physics System."""
    from brax.io import mjcf

    if hasattr(env, "render_xml"):
        return Scene(mjcf.loads(env.render_xml()), env.render_qpos, maze=True)
    if hasattr(env, "sys"):
        return Scene(env.sys, lambda pipeline_state: pipeline_state.q, maze=hasattr(env, "layout"))
    raise VizError(f"crl render: environment {env.spec.name!r} has neither a physics System nor a render model")


def goal_position(goal: np.ndarray, radius: float) -> np.ndarray:
    """xyz of the goal marker: an xy goal sits on the floor, a 3-D goal where it is."""
    if goal.shape[0] == FLAT_GOAL_DIM:
        return np.array([goal[0], goal[1], radius], np.float64)
    return np.asarray(goal[:3], np.float64)


def episode_frames(scene: Scene, episodes: Episodes, episode: int, every: int) -> np.ndarray:
    """(F, nq) qpos of one episode's states that belong to it, every `every`-th one (the last one always kept)."""
    steps = np.nonzero(episodes.in_episode[:, episode])[0]
    chosen = np.unique(np.append(steps[::every], steps[-1]))
    one = jax.tree.map(lambda x: x[chosen, episode], episodes.pipeline)
    return np.asarray(jax.vmap(scene.qpos)(one), np.float64)


def write_html(path: Path, scene: Scene, qpos: np.ndarray, goal_xyz: np.ndarray, radius: float) -> None:
    """brax's viewer with the frames' link transforms and the goal as a static sphere of the success radius."""
    from brax import kinematics
    from brax.io import html
    from brax.io import json as brax_json

    @dataclasses.dataclass
    class Frame:  # what brax's json export reads of a state: its link transforms
        x: Any

    qs = jnp.asarray(qpos, jnp.float32)
    xs, _ = jax.jit(jax.vmap(lambda q: kinematics.forward(scene.sys, q, jnp.zeros(scene.sys.qd_size()))))(qs)
    frames = [Frame(jax.tree.map(lambda a, k=k: a[k], xs)) for k in range(len(qpos))]
    system = json.loads(brax_json.dumps(scene.sys, frames))
    system["geoms"].setdefault("world", []).append(
        {"name": "Sphere", "link_idx": -1, "pos": list(goal_xyz), "rot": [1.0, 0.0, 0.0, 0.0],
         "rgba": list(GOAL_RGBA), "size": [radius, 0.0, 0.0]})
    path.write_text(html.render_from_json(json.dumps(system), HTML_HEIGHT, colab=False, base_url=None))


def render_frames(scene: Scene, qpos: np.ndarray, goal_xyz: np.ndarray, radius: float,
                  size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """(F, H, W, 3) uint8 images from MuJoCo's offscreen renderer, goal sphere added to each scene."""
    import mujoco

    model = scene.sys.mj_model
    height, width = size
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(model, camera)
    camera.elevation = CAMERA_ELEVATION
    if scene.maze:
        camera.distance *= MAZE_CAMERA_ZOOM
        camera.azimuth = MAZE_CAMERA_AZIMUTH
    else:  # follow the robot's root body
        camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        camera.trackbodyid = 1
    images = []
    try:
        renderer = mujoco.Renderer(model, height, width)
    except Exception as err:  # noqa: BLE001  (GL set-up fails with several exception types)
        raise VizError(f"crl render: MuJoCo could not open an OpenGL context ({err}); on a headless machine use "
                       "MUJOCO_GL=egl with Mesa's EGL installed (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri), "
                       "see docs/visualisation.md") from err
    with renderer:
        for q in qpos:
            data.qpos[:] = q
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera)
            _add_sphere(renderer.scene, goal_xyz, radius)
            images.append(renderer.render().copy())
    return np.stack(images)


def _add_sphere(scene, pos: np.ndarray, radius: float) -> None:
    import mujoco

    if scene.ngeom >= scene.maxgeom:
        return
    mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_SPHERE, np.array([radius, 0.0, 0.0]),
                        pos, np.eye(3).ravel(), np.asarray(GOAL_RGBA, np.float32))
    scene.ngeom += 1


def write_mp4(path: Path, images: np.ndarray, fps: int) -> None:
    """H.264 MP4 through mediapy with the ffmpeg binary that imageio-ffmpeg ships (no system ffmpeg needed)."""
    import imageio_ffmpeg
    import mediapy

    mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())
    mediapy.write_video(str(path), images, fps=fps)


def render_episode(view: RunView, episodes: Episodes, out_dir: Path, episode: int = 0, every: int = 1,
                   fps: int = DEFAULT_FPS, size: tuple[int, int] = DEFAULT_SIZE, html: bool = True,
                   mp4: bool = True) -> dict[str, Path]:
    """Write episode `episode` of `episodes` (collected with keep_pipeline) as HTML and/or MP4; returns the paths."""
    if every < 1:
        raise VizError(f"--every must be >= 1 (draw every N-th step), got {every}")
    if not 0 <= episode < episodes.goals.shape[0]:
        raise VizError(f"episode {episode} does not exist; {episodes.goals.shape[0]} were run")
    scene = scene_of(view.env)
    qpos = episode_frames(scene, episodes, episode, every)
    radius = view.spec.success_radius
    goal = goal_position(episodes.goals[episode], radius)
    stem = out_dir / f"episode{episode}_epoch{view.epoch}"
    written = {}
    if html:
        write_html(written.setdefault("html", stem.with_suffix(".html")), scene, qpos, goal, radius)
    if mp4:
        images = render_frames(scene, qpos, goal, radius, size)
        write_mp4(written.setdefault("mp4", stem.with_suffix(".mp4")), images, fps)
        np.savez_compressed(stem.with_suffix(".npz"), qpos=qpos, goal=goal, frame_means=images.mean(axis=(1, 2, 3)))
    return written
