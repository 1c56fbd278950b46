"""crl viz / render / plot: each command writes its files from a small checkpoint, and what they hold is right.

The Q grid is checked against the critic evaluated directly; rollouts against `crl eval`'s score of the
same episodes; the Q map of a briefly trained point-maze agent against the maze's path distance.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import re
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

from crl import streams
from crl.cli import main
from crl.viz.cli import CHOSEN_EPISODE
from tiny_run import tiny_config

# A point-maze agent that trains in ~20 s on CPU and already has a goal-shaped critic.
LEARNED_RUN = dict(env="point_u_maze", eval_env="point_u_maze_eval", total_env_steps=150_000, num_epochs=2,
                   num_envs=64, max_replay_size=1000, min_replay_size=100, batch_size=256,
                   sgd_steps_per_train_step=16, num_eval_envs=16, critic_width=64, actor_width=64, repr_dim=64)
FAR_GOAL_CELLS = ((3, 1), (3, 2), (3, 3))  # point_u_maze's goals behind the wall, seen from the start (1, 1)
MIN_RANK_CORRELATION = 0.5  # mean Spearman rho of Q with -path distance over FAR_GOAL_CELLS (measured 0.73)
MIN_GAIN_OVER_INIT = 0.2  # ... and above the same network at initialisation (mean over INIT_SAMPLES inits)
INIT_SAMPLES = 4  # one random init's correlation varies (measured 0.36 and 0.48 for two inits)
SAMPLED_POINTS = 64
RENDER_EVERY = 4
RENDER_SIZE = ("--height", "96", "--width", "128")
BLANK_STD = 5.0  # grey levels: a frame with less spread than this is blank
EPISODES_IN_FRAME = 16  # the render default's episodes, every one checked for the agent in frame
IN_FRAME_EVERY = 10  # every 10th state of each episode (software GL renders ~30 small frames a second)
IN_FRAME_SIZE = (64, 80)  # (height, width): the point (radius 0.15 cells) covers a few pixels
MIN_AGENT_PIXELS = 2  # measured 5-12 with the top-down camera
HIDDEN_SHARE_OBLIQUE = 0.5  # the old camera lost a failing episode's point in over 90% of its frames


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    from crl.train import train

    run_dir = tmp_path_factory.mktemp("learned")
    train(tiny_config(**LEARNED_RUN, run_dir=str(run_dir)), print_fn=None)
    return run_dir


@pytest.fixture(scope="module")
def deeper(tmp_path_factory):
    from crl.train import train

    run_dir = tmp_path_factory.mktemp("deeper")
    train(tiny_config(critic_depth=8, run_dir=str(run_dir)), print_fn=None)
    return run_dir


def _cli(*argv) -> list[str]:
    """Run `crl ...` in process; the printed paths of the written files."""
    return _cli_with_notes(*argv)[0]


def _cli_with_notes(*argv) -> tuple[list[str], str]:
    """Run `crl ...` in process; (the paths printed on stdout, what it printed on stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(list(argv)) == 0
    return out.getvalue().split(), err.getvalue()


def test_q_grid_equals_the_critic_evaluated_directly(learned, tmp_path):
    from crl.viz.run_view import load_run_view

    png, npz = _cli("viz", "q", str(learned), "--goal-cell", "3,1", "--points-per-cell", "4", "--out", str(tmp_path))
    assert png.endswith(".png") and (tmp_path / png.split("/")[-1]).stat().st_size > 0
    data = np.load(npz)
    q, points, free, goal = data["q"][0], data["points"], data["free"], data["goal"]
    assert q.shape == free.shape == (20, 20) and points.shape == (20, 20, 2)
    np.testing.assert_allclose(goal, [3.0, 1.0])
    # grid geometry from the layout alone: sub-cell centres, nan exactly inside wall cells
    view = load_run_view(learned)
    walls = view.env.layout.walls
    centres = (np.arange(20) + 0.5) / 4 - 0.5
    np.testing.assert_allclose(points[..., 0], np.broadcast_to(centres[:, None], (20, 20)), atol=1e-6)
    np.testing.assert_allclose(points[..., 1], np.broadcast_to(centres[None, :], (20, 20)), atol=1e-6)
    cells = np.floor(points + 0.5).astype(int)
    np.testing.assert_array_equal(free, ~walls[cells[..., 0], cells[..., 1]])
    assert np.isnan(q[~free]).all() and np.isfinite(q[free]).all()
    # Q at sampled free points: -||phi(s, tanh(mu(s, g))) - psi(g)|| computed here with the raw flax modules
    nets = view.trainer.networks
    rows, cols = np.nonzero(free)
    pick = np.random.default_rng(0).choice(len(rows), SAMPLED_POINTS, replace=False)
    states = points[rows[pick], cols[pick]]  # the point maze's state is its xy
    obs = np.concatenate([states, np.broadcast_to(goal, states.shape)], axis=1)
    mean, _ = nets.actor.apply({"params": view.actor_params}, obs)
    actions = np.tanh(np.asarray(mean))
    (phi,) = nets.sa_encoder.apply({"params": view.critic_params["sa_encoder"]}, np.concatenate([states, actions], 1))
    (psi,) = nets.g_encoder.apply({"params": view.critic_params["g_encoder"]}, goal[None])
    want = -np.linalg.norm(np.asarray(phi) - np.asarray(psi), axis=1)
    np.testing.assert_allclose(q[rows[pick], cols[pick]], want, rtol=1e-4, atol=1e-4)


def test_best_of_k_keeps_the_best_sample(learned):
    from crl.viz.qmap import q_map
    from crl.viz.run_view import load_run_view

    view = load_run_view(learned)
    goal = np.array([3.0, 1.0], np.float32)
    one, best = q_map(view, goal, 2, best_of=1), q_map(view, goal, 2, best_of=16)
    free = best.free.ravel()
    # the stored action of each point really scores the stored Q
    nets = view.trainer.networks
    phi = nets.sa_encode(view.critic_params, best.states, best.actions)
    psi = nets.g_encode(view.critic_params, jnp.asarray(goal)[None])
    np.testing.assert_allclose(best.q.ravel()[free], -np.linalg.norm(phi - psi, axis=1)[free], rtol=1e-4, atol=1e-4)
    # the max of 16 samples beats one sample on average (the policy is still stochastic after 2 epochs)
    assert np.nanmean(best.q) > np.nanmean(one.q)


def test_side_by_side_q_maps_share_one_colour_scale(learned, deeper, tmp_path):
    from crl.viz import figures
    from crl.viz.qmap import q_map
    from crl.viz.run_view import load_run_view

    png, npz = _cli("viz", "q", str(learned), str(deeper), "--out", str(tmp_path))
    data = np.load(npz)
    assert data["q"].shape[0] == 2 and list(data["critic_depths"]) == [4, 8]
    views = [load_run_view(learned), load_run_view(deeper)]
    maps = [q_map(v, data["goal"]) for v in views]
    fig = figures.q_maps(views, maps)
    limits = {(im.norm.vmin, im.norm.vmax) for ax in fig.axes for im in ax.get_images()}
    low, high = min(np.nanmin(m.q) for m in maps), max(np.nanmax(m.q) for m in maps)
    assert limits == {(low, high)}
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert "critic depth 4" in titles[0] and "critic depth 8" in titles[1] and "epoch 2" in titles[0]
    assert [ax.get_ylabel() for ax in fig.axes if not ax.get_images()] == ["Q = -||phi(s,a) - psi(g)||"]


def test_q_map_of_a_trained_agent_follows_the_path_distance(learned):
    from crl.viz.qmap import goal_from_cell, path_distance, q_map
    from crl.viz.run_view import load_run_view

    def correlations(view):
        maze = view.maze("test")
        rhos = []
        for cell in FAR_GOAL_CELLS:
            goal = goal_from_cell(maze, cell)
            qm = q_map(view, goal)
            distance = path_distance(maze, goal, qm.points)
            rho = spearmanr(qm.q[qm.free], -distance[qm.free]).statistic
            assert qm.path_correlation == pytest.approx(rho)  # what the figure's title reports
            rhos.append(rho)
        return np.array(rhos)

    view = load_run_view(learned)
    # path distance in cells from goal (3, 1) along the U, by hand: (3,1) (3,2) (3,3) (2,3) (1,3) (1,2) (1,1)
    by_hand = {(3, 1): 0, (3, 2): 1, (3, 3): 2, (2, 3): 3, (1, 3): 4, (1, 2): 5, (1, 1): 6}
    centres = np.array([[i, j] for i, j in by_hand], np.float32)
    np.testing.assert_array_equal(path_distance(view.maze("test"), np.array([3.0, 1.0]), centres),
                                  list(by_hand.values()))
    trained = correlations(view)
    untrained = []  # the same network at initialisation: the run's own init and those of the next seeds
    for seed in range(view.cfg.seed, view.cfg.seed + INIT_SAMPLES):
        init = view.trainer.networks.init(streams.stream_key(seed, streams.PARAMS))
        untrained.append(correlations(dataclasses.replace(view, actor_params=init["actor"],
                                                          critic_params=init["critic"])))
    untrained = np.array(untrained)
    assert trained.mean() > MIN_RANK_CORRELATION, trained
    assert (trained > 0).all(), trained
    assert trained.mean() > untrained.mean() + MIN_GAIN_OVER_INIT, (trained, untrained)


def test_rollouts_are_the_episodes_crl_eval_scores(learned, tmp_path):
    from crl.policy import evaluate_checkpoint

    png, npz = _cli("viz", "rollouts", str(learned), "--episodes", "8", "--out", str(tmp_path))
    data = np.load(npz)
    assert data["xy"].shape[1] == 8 and png.endswith(".png")
    np.testing.assert_array_equal(data["reached"], data["time_at_goal"] > 0)
    scored = evaluate_checkpoint(learned, num_eval_envs=8)
    assert data["time_at_goal"].mean() == pytest.approx(scored["eval/episode_success"], abs=1e-5)
    # every path point is inside the maze and outside walls (the point maze rejects moves into walls)
    cells = np.floor(data["xy"][data["in_episode"]] + 0.5).astype(int)
    walls = np.asarray([[c == "#" for c in row.split()] for row in
                        "# # # # #\n# R . . #\n# # # . #\n# G G G #\n# # # # #".splitlines()])
    assert not walls[cells[:, 0], cells[:, 1]].any()
    # success means the point came within the success radius of its goal at some step
    dist = np.linalg.norm(data["xy"][1:] - data["goals"][None], axis=-1)
    np.testing.assert_array_equal(data["reached"], (dist < 0.25).any(axis=0))


def test_representation_pca(learned, tmp_path):
    from crl.viz.representations import principal_axes

    png, npz = _cli("viz", "repr", str(learned), "--episodes", "3", "--out", str(tmp_path))
    data = np.load(npz)
    assert data["phi"].shape[1] == 3 and data["psi"].shape == (3, 3)
    assert len(data["time"]) == len(data["distance"]) == len(data["phi"])
    np.testing.assert_allclose(data["components"] @ data["components"].T, np.eye(3), atol=1e-6)
    ratio = data["explained_variance_ratio"]
    assert (np.diff(ratio) <= 0).all() and 0 < ratio.sum() <= 1 + 1e-9
    # principal_axes finds a known dominant direction and its share of the variance
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0, 0.0, 0.0]) / 5.0
    x = rng.normal(size=(4000, 1)) * 10.0 * direction + rng.normal(size=(4000, 4))
    _, axes, share = principal_axes(x)
    assert abs(axes[0] @ direction) > 0.999
    assert share[0] == pytest.approx(101.0 / 104.0, abs=0.01)  # variances 100 + 1 along it, 1 along the others


def test_plot_curves_of_two_runs(learned, deeper, tmp_path):
    from crl.viz.curves import learning_curves, load_runs

    (png,) = _cli("plot", str(learned), str(deeper), "--out", str(tmp_path))
    assert png.endswith("curves.png")
    fig = learning_curves(load_runs([str(learned), str(deeper)]))
    headline = fig.axes[0]
    assert headline.get_xlabel() == "env steps" and "time at goal" in headline.get_ylabel()
    lines = [line for line in headline.get_lines() if line.get_label().startswith(("learned", "deeper"))]
    assert len(lines) == 2
    want = [json.loads(s)["eval/episode_success"] for s in (learned / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(lines[0].get_ydata(), want)


def test_render_writes_html_and_a_non_blank_mp4(learned, tmp_path):
    import imageio_ffmpeg

    (html, mp4, npz), notes = _cli_with_notes("render", str(learned), "--every", str(RENDER_EVERY), *RENDER_SIZE,
                                              "--out", str(tmp_path))
    # every file written is listed, and each exists
    assert [p.rsplit(".", 1)[1] for p in (html, mp4, npz)] == ["html", "mp4", "npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.rsplit("/", 1)[1] for p in (html, mp4, npz))
    reader = imageio_ffmpeg.read_frames(mp4)
    meta = next(reader)
    width, height = meta["size"]
    frames = np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])
    steps = 100  # point_u_maze_eval's episode: 101 states, never terminated; every 4th drawn, the last kept
    assert frames.shape == (len(range(0, steps + 1, RENDER_EVERY)), 96, 128, 3)
    assert frames.std(axis=(1, 2, 3)).min() > BLANK_STD
    data = np.load(npz)
    qpos, episode = data["qpos"], int(data["episode"])
    assert np.linalg.norm(qpos[-1] - qpos[0]) > 0.3  # the point moved, so the first and last frames differ
    # the default episode is the first path of `crl viz rollouts` (same episodes, same key) that reached its goal
    _, rollouts = _cli("viz", "rollouts", str(learned), "--out", str(tmp_path))
    paths = np.load(rollouts)
    assert paths["reached"].any(), "the learned fixture should reach some goals"
    assert episode == np.argmax(paths["reached"])
    np.testing.assert_allclose(qpos, paths["xy"][::RENDER_EVERY, episode], atol=1e-6)
    steps_at_goal = int(paths["time_at_goal"][episode])
    assert notes.strip() == (f"crl render: episode {episode} of 16: reached its goal ({steps_at_goal} of {steps} "
                             f"steps at the goal) (chosen: {CHOSEN_EPISODE}; pick another with --episode)")
    assert np.abs(frames[0].astype(int) - frames[-1]).max() > 50
    # the HTML embeds brax's scene: one state per frame and the goal sphere among the world geoms
    text = open(html).read()
    embedded = re.search(r'var system = "([^"]+)"', text).group(1)  # brax's template: base64 of zlib'd JSON
    scene = json.loads(zlib.decompress(base64.b64decode(embedded)))
    assert len(scene["states"]["x"]) == len(frames)
    spheres = [g for g in scene["geoms"]["world"] if g["name"] == "Sphere"]
    assert spheres and spheres[0]["size"][0] == pytest.approx(0.25)


def _oblique_camera(model):
    """The camera `crl render` used before issue 16: MuJoCo's default free camera tilted 60 degrees, along -x."""
    import mujoco

    camera = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(model, camera)
    camera.elevation, camera.distance, camera.azimuth = -60.0, camera.distance * 0.8, 180.0
    return camera


def test_maze_camera_keeps_the_agent_in_frame_in_every_episode(learned):
    from crl.viz.episodes import collect_episodes
    from crl.viz.render import agent_pixel_counts, episode_frames, scene_of
    from crl.viz.run_view import load_run_view

    view = load_run_view(learned, num_eval_envs=EPISODES_IN_FRAME)
    episodes = collect_episodes(view, keep_pipeline=True)
    scene = scene_of(view.env)

    def frames(episode):
        return episode_frames(scene, episodes, episode, IN_FRAME_EVERY)

    # reached or not, the point is on screen in every frame of every episode (one renderer for all the frames)
    qpos = np.concatenate([frames(k) for k in range(EPISODES_IN_FRAME)])
    assert agent_pixel_counts(scene, qpos, IN_FRAME_SIZE).min() >= MIN_AGENT_PIXELS
    # the check can fail: the old oblique camera loses a failing episode's point behind the U's inner wall
    failed = int(np.argmin(episodes.time_at_goal))
    oblique = agent_pixel_counts(scene, frames(failed), IN_FRAME_SIZE, make_camera=_oblique_camera)
    assert (oblique == 0).mean() > HIDDEN_SHARE_OBLIQUE, oblique


def test_render_chooses_and_describes_an_informative_episode():
    from crl.viz.episodes import Episodes, describe_episode, most_informative_episode

    def episodes(time_at_goal, closest):  # one step per episode: state 1 at `closest` from a goal at the origin
        n = len(time_at_goal)
        states = np.stack([np.full((n, 2), 9.0), np.stack([np.asarray(closest, float), np.zeros(n)], 1)])
        return Episodes(states, np.zeros((1, n, 2)), np.zeros((n, 2)), np.ones((1, n)),
                        np.asarray(time_at_goal, float)[None])

    reached = episodes([0, 1, 1], [0.9, 0.1, 0.2])
    assert most_informative_episode(reached, (0, 1)) == 1
    assert describe_episode(reached, 2, (0, 1), "units") == \
        "episode 2 of 3: reached its goal (1 of 1 steps at the goal)"
    missed = episodes([0, 0, 0], [0.9, 0.7, 0.8])
    assert most_informative_episode(missed, (0, 1)) == 1
    assert describe_episode(missed, 2, (0, 1), "m") == \
        "episode 2 of 3: did not reach its goal (closest approach 0.80 m)"


def test_bad_input_exits_2_naming_the_problem(learned, tmp_path, capsys):
    assert main(["viz", "q", str(learned), "--goal-cell", "0,0"]) == 2
    assert "is a wall" in capsys.readouterr().err
    assert main(["viz", "q", str(learned), "--goal-cell", "9,1"]) == 2
    assert "outside the 5 x 5 maze" in capsys.readouterr().err
    assert main(["viz", "rollouts", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    assert main(["viz", "q", str(learned), "--checkpoint", "99"]) == 2
    assert capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    assert main(["render", str(learned), "--episodes", "4", "--episode", "4"]) == 2
    assert "--episode 4 is not one of the 4 episodes run; pick 0..3" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("env, cell_size, start_noise", [("ant_u_maze", 4.0, 0.11), ("humanoid_u_maze", 2.0, 1e-3)])
def test_physics_maze_rollouts_q_map_and_render(env, cell_size, start_noise, tmp_path):
    """The physics mazes go through the same commands (1-3 min each on 2 CPU cores: they compile slowly)."""
    from crl.envs.maze import get_layout
    from crl.train import train

    run_dir = tmp_path / env
    train(tiny_config(env=env, eval_env=env, num_envs=4, unroll_length=50, min_replay_size=1000,
                      max_replay_size=1000, total_env_steps=4400, num_epochs=1, batch_size=32,
                      sgd_steps_per_train_step=2, num_eval_envs=2, random_baseline=False, run_dir=str(run_dir)),
          print_fn=None)
    _, npz = _cli("viz", "rollouts", str(run_dir), "--episodes", "2", "--out", str(tmp_path))
    xy = np.load(npz)["xy"]
    np.testing.assert_allclose(xy[0], [[cell_size, cell_size]] * 2, atol=start_noise)  # the torso starts at R (1, 1)
    _, npz = _cli("viz", "q", str(run_dir), "--points-per-cell", "2", "--out", str(tmp_path))
    q = np.load(npz)["q"][0]
    wall_cells = int(get_layout("u_maze").walls.sum())
    assert q.shape == (10, 10) and np.isfinite(q[~np.isnan(q)]).all() and np.isnan(q).sum() == 4 * wall_cells
    html, mp4, npz = _cli("render", str(run_dir), "--every", "100", *RENDER_SIZE, "--out", str(tmp_path))
    import imageio_ffmpeg

    from crl.viz.render import agent_pixel_counts, scene_of
    from crl.viz.run_view import load_run_view

    reader = imageio_ffmpeg.read_frames(mp4)
    width, height = next(reader)["size"]
    frames = np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])
    qpos = np.load(npz)["qpos"]
    assert len(frames) == len(qpos) and frames.std() > BLANK_STD
    scene = scene_of(load_run_view(run_dir).env)  # the robot is in view from above in every frame
    assert agent_pixel_counts(scene, qpos, (height, width)).min() > 0
