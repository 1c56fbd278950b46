"""Q(s, a, g) over a grid of agent positions for one fixed goal (the paper's Fig. 9).

Every grid point is the reference pose (the eval env's first reset state) with its xy replaced (and,
for the paper-layout humanoid, the target joints that hold the goal inside the state; any other
state term that depends on the target keeps the reference pose's value, so `humanoid_clean_*` runs
give exact maps);
the action is the deterministic policy's tanh(mu) at that state and goal, or the best of K actions
sampled from the policy. Q is the critic's energy f(phi(s, a), psi(g)) as trained
(-||phi - psi||_2 for the paper's 'norm').
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from crl.viz.run_view import Maze, RunView, VizError

DEFAULT_POINTS_PER_CELL = 8  # grid resolution: points per cell along each axis
REFERENCE_POSE_SEED = 0  # key of the reset whose state (besides xy) every grid point shares
ENERGY_LABELS = {"norm": "Q = -||phi(s,a) - psi(g)||"}


@dataclasses.dataclass
class QMap:
    """Q over a (rows, cols) grid of positions: points[r, c] = world xy, nan where the point is in a wall."""

    q: np.ndarray  # (rows, cols) float, nan inside walls
    points: np.ndarray  # (rows, cols, 2) world xy
    free: np.ndarray  # (rows, cols) bool
    goal: np.ndarray  # (goal_dim,) the goal the critic was asked about
    states: np.ndarray  # (rows * cols, state_dim) the states evaluated
    actions: np.ndarray  # (rows * cols, action_size) the actions evaluated (the best sample for best-of-K)
    best_of: int  # 0: deterministic policy; K: best of K sampled actions
    path_correlation: float  # Spearman rank correlation of Q with -(shortest path distance to the goal), free points


def grid_points(maze: Maze, per_cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-cell centres covering the whole grid: (rows, cols, 2) world xy and a (rows, cols) free mask."""
    if per_cell < 1:
        raise VizError(f"points per cell must be >= 1, got {per_cell}")
    n_rows, n_cols = maze.layout.shape
    offsets = (np.arange(per_cell) + 0.5) / per_cell - 0.5  # within a cell, in cells
    xs = (np.arange(n_rows)[:, None] + offsets[None, :]).ravel() * maze.cell_size
    ys = (np.arange(n_cols)[:, None] + offsets[None, :]).ravel() * maze.cell_size
    points = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).astype(np.float32)
    free = np.repeat(np.repeat(maze.layout.free, per_cell, axis=0), per_cell, axis=1)
    return points, free


def goal_from_cell(maze: Maze, cell: tuple[int, int]) -> np.ndarray:
    """World xy of a free cell's centre; errors name the problem (outside the grid, a wall)."""
    n_rows, n_cols = maze.layout.shape
    i, j = cell
    if not (0 <= i < n_rows and 0 <= j < n_cols):
        raise VizError(f"goal cell {cell} is outside the {n_rows} x {n_cols} maze; rows 0..{n_rows - 1}, "
                       f"columns 0..{n_cols - 1}")
    if maze.layout.walls[i, j]:
        raise VizError(f"goal cell {cell} is a wall; pick a free cell, e.g. one of the layout's goals "
                       f"{list(maze.layout.goals)}")
    return maze.cell_centre(cell)


def check_goal_xy(maze: Maze, xy: np.ndarray) -> np.ndarray:
    goal_from_cell(maze, tuple(int(v) for v in maze.cell_of(xy)))  # raises for a goal outside the maze or in a wall
    return np.asarray(xy, np.float32)


def farthest_goal_cell(maze: Maze) -> tuple[int, int]:
    """The layout's goal cell with the longest shortest path from its first start: the default question."""
    dist = maze.layout.shortest_path_lengths(maze.layout.starts[0])
    return max(maze.layout.goals, key=lambda cell: (dist[cell], cell))


def path_distance(maze: Maze, goal_xy: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Shortest path length in cells (4-connected) from each point's cell to the goal's cell; -1 if unreachable."""
    dist = maze.layout.shortest_path_lengths(tuple(int(v) for v in maze.cell_of(goal_xy)))
    cells = maze.cell_of(points)
    return dist[cells[..., 0], cells[..., 1]]


def reference_pose(view: RunView) -> tuple[np.ndarray, np.ndarray]:
    """(state, goal) of the eval env's first reset: every grid point shares its non-xy entries."""
    obs = np.asarray(jax.jit(view.env.reset)(jax.random.PRNGKey(REFERENCE_POSE_SEED)).obs)
    return obs[: view.spec.state_dim], obs[view.spec.state_dim:]


def make_q_fn(networks, best_of: int):
    """q(actor_params, critic_params, states (P, S), goal (G,), key) -> (q (P,), actions (P, A)), jittable.

    Q is the algorithm's own critic value (`networks.q_value`): CRL's energy, or the min over SAC/TD3's twins.
    """

    def q_of(critic_params, states, goal, actions):
        goals = jnp.broadcast_to(goal, (states.shape[0], goal.shape[0]))
        return networks.q_value(critic_params, states, actions, goals)

    def q_fn(actor_params, critic_params, states, goal, key):
        obs = jnp.concatenate([states, jnp.broadcast_to(goal, (states.shape[0], goal.shape[0]))], axis=-1)
        if best_of == 0:
            actions = networks.deterministic_action(actor_params, obs)
            return q_of(critic_params, states, goal, actions), actions
        keys = jax.random.split(key, best_of)
        samples = jax.vmap(lambda k: networks.sample_action(actor_params, obs, k)[0])(keys)  # (K, P, A)
        qs = jax.vmap(lambda a: q_of(critic_params, states, goal, a))(samples)  # (K, P)
        best = jnp.argmax(qs, axis=0)
        points = jnp.arange(states.shape[0])
        return qs[best, points], samples[best, points]

    return q_fn


def q_map(view: RunView, goal_xy: np.ndarray, per_cell: int = DEFAULT_POINTS_PER_CELL, best_of: int = 0,
          key: jax.Array | None = None) -> QMap:
    """Q over the maze for a goal at world `goal_xy` (its other coordinates, e.g. height, from the reference pose)."""
    maze = view.maze("crl viz q")
    if not view.trainer.agent.has_critic:
        raise ValueError(f"{view.label}: algorithm '{view.cfg.algorithm}' learns no critic, so there is no Q to draw; "
                         f"`crl viz q` takes runs of crl, sac(_her) or td3(_her)")
    points, free = grid_points(maze, per_cell)
    state0, goal0 = reference_pose(view)
    states = np.repeat(state0[None], points.shape[0] * points.shape[1], axis=0)
    states[:, list(maze.xy_indices)] = points.reshape(-1, 2)
    goal = goal0.copy()
    goal[:2] = goal_xy
    # the paper's humanoid keeps the commanded goal in its state (a target body on slide joints): move it too
    target = list(getattr(view.env, "target_q_indices", ()))
    if target:
        states[:, target] = goal_xy
    q_fn = jax.jit(make_q_fn(view.trainer.networks, best_of))
    key = jax.random.PRNGKey(REFERENCE_POSE_SEED) if key is None else key
    q, actions = jax.device_get(q_fn(view.actor_params, view.critic_params, states, goal, key))
    q = np.where(free, np.asarray(q, np.float64).reshape(free.shape), np.nan)
    return QMap(q=q, points=points, free=free, goal=goal, states=states, actions=np.asarray(actions), best_of=best_of,
                path_correlation=path_correlation(q, free, path_distance(maze, goal_xy, points)))


def path_correlation(q: np.ndarray, free: np.ndarray, distance: np.ndarray) -> float:
    """Spearman rho of Q with -path distance over reachable free points: 1 when Q ranks positions as the maze does."""
    from scipy.stats import spearmanr

    ok = free & (distance >= 0)
    return float(spearmanr(q[ok], -distance[ok]).statistic)


def energy_label(energy: str, algorithm: str = "crl") -> str:
    """The colour-bar label of a Q map: CRL's energy, or the twin-critic minimum of the TD baselines."""
    if algorithm != "crl":
        return f"Q = min_i Q_i(s, a, g) ({algorithm})"
    return ENERGY_LABELS.get(energy, f"Q = f_{energy}(phi(s,a), psi(g))")
