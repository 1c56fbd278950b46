"""`crl render`: one evaluation episode as brax's interactive HTML viewer and as an MP4 from MuJoCo's renderer.

Rendering needs an OpenGL context without a display: crl sets MUJOCO_GL=egl (Mesa's EGL on a CPU
machine, the NVIDIA driver's EGL on a GPU one) unless the user chose a backend (docs/visualisation.md).
The goal is drawn as a translucent sphere of the success radius; the HTML gets it as a static world geom.
A maze is filmed straight from above by an orthographic camera, the whole grid in frame, so no wall ever hides
the agent (an oblique camera lost it behind walls for most of an episode); a camera tracks the robot elsewhere.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from crl.viz.episodes import Episodes, describe_episode, most_informative_episode
from crl.viz.run_view import RunView, VizError

DEFAULT_SIZE = (480, 640)  # (height, width) of the MP4
DEFAULT_FPS = 30
TRACKING_ELEVATION = -60.0  # degrees: a robot outside a maze is seen from above at an angle
TOP_DOWN_ELEVATION = -90.0  # degrees: a maze is seen straight from above, where walls hide nothing
MAZE_CAMERA_AZIMUTH = 180.0  # image up = world -x: world x runs down the frame and y across, as in the viz figures
MAZE_FRAME_MARGIN = 1.05  # the maze's grid fills the frame but for a 5% border
ROBOT_ROOT_BODY = 1  # body 0 is the world; the robot's (or the point's) root body comes first
GOAL_RGBA = (1.0, 0.1, 0.1, 0.5)
CameraMaker = Callable[[Any], Any]  # a copy of the render model -> the MjvCamera that films it (may set its fovy)
HTML_HEIGHT = 480
FLAT_GOAL_DIM = 2  # an xy goal is drawn at the success radius above the floor


@dataclasses.dataclass(frozen=True)
class Scene:
    """What draws an env: a brax System (its mj_model renders the MP4) and the qpos of a pipeline state."""

    sys: Any
    qpos: Callable[[Any], jax.Array]
    maze_bounds: tuple[np.ndarray, np.ndarray] | None  # (low xy, high xy) of a maze to film from above, else None


def maze_bounds_of(env) -> tuple[np.ndarray, np.ndarray] | None:
    """(low xy, high xy) of the env's maze grid, walls included, or None for an env without a maze."""
    if not hasattr(env, "layout"):
        return None
    return env.layout.world_bounds(float(env.cell_size))


def scene_of(env) -> Scene:
    """The env's own render model (the physics-free point maze builds one) or its physics System."""
    from brax.io import mjcf

    if hasattr(env, "render_xml"):
        return Scene(mjcf.loads(env.render_xml()), env.render_qpos, maze_bounds_of(env))
    if hasattr(env, "sys"):
        return Scene(env.sys, lambda pipeline_state: pipeline_state.q, maze_bounds_of(env))
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


def top_down_camera(model, bounds: tuple[np.ndarray, np.ndarray], size: tuple[int, int]):
    """An orthographic camera straight above the maze's centre, framing the whole grid (sets the model's fovy).

    Parallel rays straight down: no wall can stand between the camera and the agent, and cells keep their size.
    """
    import mujoco

    low, high = (np.asarray(b, np.float64) for b in bounds)
    height, width = size
    span_x, span_y = high - low  # world x runs down the frame, world y across it
    frame_height = MAZE_FRAME_MARGIN * max(span_x, span_y * height / width)
    model.vis.global_.fovy = frame_height  # an orthographic camera's fovy is its frame's height in length units
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.orthographic = 1
    camera.lookat[:] = [*(low + high) / 2, 0.0]
    camera.elevation, camera.azimuth = TOP_DOWN_ELEVATION, MAZE_CAMERA_AZIMUTH
    camera.distance = frame_height  # above every wall; the frame does not depend on it
    return camera


def tracking_camera(model):
    """MuJoCo's default free camera turned into one that follows the robot's root body from above at an angle."""
    import mujoco

    camera = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(model, camera)
    camera.elevation = TRACKING_ELEVATION
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = ROBOT_ROOT_BODY
    return camera


def camera_maker(scene: Scene, size: tuple[int, int]) -> CameraMaker:
    """How a scene is filmed: top-down over a maze, tracking the robot otherwise."""
    if scene.maze_bounds is None:
        return tracking_camera
    return functools.partial(top_down_camera, bounds=scene.maze_bounds, size=size)


def open_renderer(model, size: tuple[int, int]):
    """MuJoCo's offscreen renderer of `size` (height, width); a VizError that names the fix when GL is missing."""
    import mujoco

    height, width = size
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    try:
        return mujoco.Renderer(model, height, width)
    except Exception as err:  # noqa: BLE001  (GL set-up fails with several exception types)
        raise VizError(f"crl render: MuJoCo could not open an OpenGL context ({err}); on a headless machine use "
                       "MUJOCO_GL=egl with Mesa's EGL installed (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri), "
                       "see docs/visualisation.md") from err


def _posed_scenes(scene: Scene, qpos: np.ndarray, size: tuple[int, int], make_camera: CameraMaker | None,
                  segmentation: bool = False):
    """The renderer with its scene updated to each qpos in turn, for the caller to decorate and render.

    It films a copy of the render model, so the env's own model keeps its view settings.
    """
    import mujoco

    model = copy.copy(scene.sys.mj_model)
    camera = (make_camera or camera_maker(scene, size))(model)
    data = mujoco.MjData(model)
    with open_renderer(model, size) as renderer:
        if segmentation:
            renderer.enable_segmentation_rendering()
        for q in qpos:
            data.qpos[:] = q
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera)
            yield renderer


def render_frames(scene: Scene, qpos: np.ndarray, goal_xyz: np.ndarray, radius: float,
                  size: tuple[int, int] = DEFAULT_SIZE, make_camera: CameraMaker | None = None) -> np.ndarray:
    """(F, H, W, 3) uint8 images from MuJoCo's offscreen renderer, goal sphere added to each scene."""
    images = []
    for renderer in _posed_scenes(scene, qpos, size, make_camera):
        _add_sphere(renderer.scene, goal_xyz, radius)
        images.append(renderer.render().copy())
    return np.stack(images)


def agent_pixel_counts(scene: Scene, qpos: np.ndarray, size: tuple[int, int] = DEFAULT_SIZE,
                       make_camera: CameraMaker | None = None) -> np.ndarray:
    """(F,) pixels showing the robot's (or the point's) own geoms in each frame: 0 where the camera lost it."""
    import mujoco

    model = scene.sys.mj_model
    agent_geoms = np.nonzero(model.body_rootid[model.geom_bodyid] == ROBOT_ROOT_BODY)[0]
    counts = []
    for renderer in _posed_scenes(scene, qpos, size, make_camera, segmentation=True):
        ids, types = np.moveaxis(renderer.render(), -1, 0)
        counts.append(int((np.isin(ids, agent_geoms) & (types == mujoco.mjtObj.mjOBJ_GEOM)).sum()))
    return np.asarray(counts)


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


@dataclasses.dataclass(frozen=True)
class Rendered:
    """What a render wrote: the episode drawn, a line saying whether it reached its goal, and every file."""

    episode: int
    description: str
    files: dict[str, Path]  # kind (html, mp4, npz) -> path


def check_episode(episodes: Episodes, episode: int | None, goal_indices) -> int:
    """`episode` if it was run; without one, the most informative (the first to reach its goal, else the closest)."""
    count = episodes.goals.shape[0]
    if episode is None:
        return most_informative_episode(episodes, goal_indices)
    if not 0 <= episode < count:
        raise VizError(f"episode {episode} does not exist; {count} were run, pick 0..{count - 1}")
    return episode


def render_episode(view: RunView, episodes: Episodes, out_dir: Path, episode: int | None = None, every: int = 1,
                   fps: int = DEFAULT_FPS, size: tuple[int, int] = DEFAULT_SIZE, html: bool = True,
                   mp4: bool = True) -> Rendered:
    """Write one episode of `episodes` (collected with keep_pipeline) as HTML and/or MP4 (+ its frames' npz).

    Without `episode` the first that reached its goal is drawn, or, if none did, the one that came closest.
    """
    if every < 1:
        raise VizError(f"--every must be >= 1 (draw every N-th step), got {every}")
    goal_indices = view.spec.goal_indices
    episode = check_episode(episodes, episode, goal_indices)
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
        np.savez_compressed(written.setdefault("npz", stem.with_suffix(".npz")), qpos=qpos, goal=goal,
                            frame_means=images.mean(axis=(1, 2, 3)), episode=episode,
                            time_at_goal=episodes.time_at_goal[episode])
    return Rendered(episode, describe_episode(episodes, episode, goal_indices, view.length_unit), written)
