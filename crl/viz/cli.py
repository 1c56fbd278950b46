"""Command lines of the figures: `crl viz q|rollouts|repr`, `crl render` and `crl plot` (exit 2 on bad input)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np

USAGE_ERROR = 2
VIZ_DIR = "viz"  # default output folder inside the (first) run directory
DEFAULT_ROLLOUT_EPISODES = 16
DEFAULT_REPR_EPISODES = 4
CHOSEN_EPISODE = "the first that reached its goal, else the closest"  # how `crl render` picks without --episode


def _pair(kind: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        parts = text.split(",")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected two comma-separated values like 3,1, got {text!r}")
        try:
            return tuple(kind(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected two {kind.__name__} values like 3,1, got {text!r}") from None
    return parse


def _common(parser: argparse.ArgumentParser, many: bool = False) -> None:
    parser.add_argument("run_dirs" if many else "run_dir", nargs="+" if many else None, metavar="RUN_DIR")
    parser.add_argument("--checkpoint", type=int, default=None, metavar="EPOCH", help="default: the newest valid")
    parser.add_argument("--seed", type=int, default=None, help="which seed of a multi-seed run (default: the first)")
    parser.add_argument("--out", default=None, metavar="DIR", help=f"output folder (default: RUN_DIR/{VIZ_DIR})")


def _out_dir(args, run_dir: str) -> Path:
    out = Path(args.out) if args.out else Path(run_dir) / VIZ_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out


def _save(fig, stem: Path) -> Path:
    path = stem.with_suffix(".png")
    fig.savefig(path)
    return path


def _q(args) -> list[Path]:
    from crl.viz import figures
    from crl.viz.qmap import check_goal_xy, farthest_goal_cell, goal_from_cell, q_map
    from crl.viz.run_view import load_run_view

    views = [load_run_view(run, args.checkpoint, args.seed) for run in args.run_dirs]
    maze = views[0].maze("crl viz q")
    if args.goal is not None:
        goal = check_goal_xy(maze, np.asarray(args.goal, np.float32))
    else:
        goal = goal_from_cell(maze, args.goal_cell or farthest_goal_cell(maze))
    maps = [q_map(view, goal, args.points_per_cell, args.best_of) for view in views]
    out = _out_dir(args, args.run_dirs[0])
    name = "q_compare" if len(views) > 1 else "q"
    stem = out / f"{name}_goal{goal[0]:g}_{goal[1]:g}_epoch{views[0].epoch}"
    meta = dict(run_dirs=np.asarray([str(v.run_dir) for v in views]), epochs=np.asarray([v.epoch for v in views]),
                critic_depths=np.asarray([v.cfg.critic_depth for v in views]))
    np.savez_compressed(stem.with_suffix(".npz"), q=np.stack([m.q for m in maps]), points=maps[0].points,
                        free=maps[0].free, goal=maps[0].goal, best_of=args.best_of,
                        path_correlation=np.asarray([m.path_correlation for m in maps]), **meta)
    return [_save(figures.q_maps(views, maps, shared_scale=not args.per_run_scale), stem), stem.with_suffix(".npz")]


def _rollouts(args) -> list[Path]:
    from crl.viz import figures
    from crl.viz.episodes import collect_episodes
    from crl.viz.run_view import load_run_view

    view = load_run_view(args.run_dir, args.checkpoint, args.seed, num_eval_envs=args.episodes)
    maze = view.maze("crl viz rollouts")
    eps = collect_episodes(view)
    xy = eps.states[..., list(maze.xy_indices)]
    inside = eps.in_episode
    paths = [xy[inside[:, n], n] for n in range(xy.shape[1])]
    reached = eps.time_at_goal > 0
    stem = _out_dir(args, args.run_dir) / f"rollouts_epoch{view.epoch}"
    np.savez_compressed(stem.with_suffix(".npz"), xy=xy, in_episode=inside, goals=eps.goals, reached=reached,
                        time_at_goal=eps.time_at_goal, success=eps.success)
    return [_save(figures.rollouts(view, paths, eps.goals, reached, eps.time_at_goal), stem), stem.with_suffix(".npz")]


def _repr(args) -> list[Path]:
    from crl.viz import figures
    from crl.viz.episodes import collect_episodes
    from crl.viz.representations import project
    from crl.viz.run_view import load_run_view

    view = load_run_view(args.run_dir, args.checkpoint, args.seed, num_eval_envs=args.episodes)
    proj = project(view, collect_episodes(view), args.episodes)
    stem = _out_dir(args, args.run_dir) / f"repr_epoch{view.epoch}"
    proj.save(stem.with_suffix(".npz"))
    return [_save(figures.representation(view, proj), stem), stem.with_suffix(".npz")]


def viz_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crl viz", description="Figures of a trained run's critic and policy.")
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("q", help="Q(s, a, g) over the maze for one goal; several runs share one colour scale")
    _common(q, many=True)
    goal = q.add_mutually_exclusive_group()
    goal.add_argument("--goal", type=_pair(float), default=None, metavar="X,Y", help="goal in world coordinates")
    goal.add_argument("--goal-cell", type=_pair(int), default=None, metavar="I,J",
                      help="goal at the centre of cell (row I, column J); default: the goal cell farthest from the start")
    q.add_argument("--best-of", type=int, default=0, metavar="K",
                   help="action = the best of K actions sampled from the policy (default 0: tanh(mu))")
    q.add_argument("--points-per-cell", type=int, default=8)
    q.add_argument("--per-run-scale", action="store_true", help="one colour scale per panel instead of a shared one")
    q.set_defaults(run=_q)
    rollouts = commands.add_parser("rollouts", help="top-down paths of eval episodes, coloured by success")
    _common(rollouts)
    rollouts.add_argument("--episodes", type=int, default=DEFAULT_ROLLOUT_EPISODES)
    rollouts.set_defaults(run=_rollouts)
    rep = commands.add_parser("repr", help="3-D PCA of phi(s, a) along eval episodes (time, distance to goal)")
    _common(rep)
    rep.add_argument("--episodes", type=int, default=DEFAULT_REPR_EPISODES)
    rep.set_defaults(run=_repr)
    return parser


def _render(args) -> list[Path]:
    from crl.viz.episodes import collect_episodes
    from crl.viz.render import render_episode
    from crl.viz.run_view import VizError, load_run_view

    if args.episode is not None and not 0 <= args.episode < args.episodes:
        raise VizError(f"--episode {args.episode} is not one of the {args.episodes} episodes run; pick 0..{args.episodes - 1}")
    view = load_run_view(args.run_dir, args.checkpoint, args.seed, num_eval_envs=args.episodes)
    episodes = collect_episodes(view, keep_pipeline=True)
    rendered = render_episode(view, episodes, _out_dir(args, args.run_dir), args.episode, args.every, args.fps,
                              (args.height, args.width), html=not args.no_html, mp4=not args.no_mp4)
    chosen = "" if args.episode is not None else f" (chosen: {CHOSEN_EPISODE}; pick another with --episode)"
    print(f"crl render: {rendered.description}{chosen}", file=sys.stderr)
    return list(rendered.files.values())


def render_parser() -> argparse.ArgumentParser:
    from crl.viz.render import DEFAULT_FPS, DEFAULT_SIZE

    parser = argparse.ArgumentParser(prog="crl render", description="One eval episode as brax's HTML viewer and an "
                                     "MP4 (MuJoCo offscreen renderer; headless through EGL, see "
                                     "docs/visualisation.md); a maze is filmed from above. Prints which episode "
                                     "was drawn and every file written.")
    _common(parser)
    parser.add_argument("--episode", type=int, default=None,
                        help="which eval episode: path k of `crl viz rollouts` with the same --episodes "
                             f"(default: {CHOSEN_EPISODE})")
    parser.add_argument("--episodes", type=int, default=DEFAULT_ROLLOUT_EPISODES,
                        help="episodes run side by side (as `crl viz rollouts`); only --episode is drawn "
                             "(default: %(default)s)")
    parser.add_argument("--every", type=int, default=1, help="draw every N-th step (default: %(default)s)")
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS, help="MP4 frames per second (default: %(default)s)")
    parser.add_argument("--height", type=int, default=DEFAULT_SIZE[0],
                        help="MP4 height in pixels (default: %(default)s)")
    parser.add_argument("--width", type=int, default=DEFAULT_SIZE[1], help="MP4 width in pixels (default: %(default)s)")
    parser.add_argument("--no-html", action="store_true", help="skip brax's HTML viewer")
    parser.add_argument("--no-mp4", action="store_true", help="skip the MP4 (and its .npz of frame positions)")
    parser.set_defaults(run=_render)
    return parser


def _plot(args) -> list[Path]:
    from crl.viz.curves import learning_curves, load_runs

    fig = learning_curves(load_runs(args.run_dirs), tuple(args.metrics))
    return [_save(fig, _out_dir(args, args.run_dirs[0]) / "curves")]


def plot_parser() -> argparse.ArgumentParser:
    from crl.viz.curves import DEFAULT_METRICS

    parser = argparse.ArgumentParser(prog="crl plot", description="Learning curves of one or several runs.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), help="metrics.jsonl keys, one panel each")
    parser.add_argument("--out", default=None, metavar="DIR", help=f"output folder (default: RUN_DIR/{VIZ_DIR})")
    parser.set_defaults(run=_plot)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: list[str], needs_jax: bool = True) -> int:
    """Parse, run, print the written files; known input errors exit USAGE_ERROR with the message."""
    args = parser.parse_args(argv)
    if needs_jax:
        from crl import _platform

        _platform.enable_compilation_cache()
    from crl.checkpoint import CheckpointRestoreError, NoValidCheckpointError
    from crl.config import ConfigError
    from crl.report import ReportError
    from crl.viz.run_view import VizError

    try:
        written = args.run(args)
    except (ConfigError, NoValidCheckpointError, CheckpointRestoreError, VizError, ReportError) as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return USAGE_ERROR
    for path in written:
        print(path)
    return 0


def viz_main(argv: list[str]) -> int:
    return run_command(viz_parser(), argv)


def render_main(argv: list[str]) -> int:
    return run_command(render_parser(), argv)


def plot_main(argv: list[str]) -> int:
    return run_command(plot_parser(), argv, needs_jax=False)
