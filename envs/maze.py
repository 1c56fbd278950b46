"""Maze layouts (reference.md section 6.1) as data, their parser and their geometry.

Independent of any robot: the point mass (`point_maze.py`) uses it now; ant and humanoid mazes
(walls as boxes) can share it later.

Layout strings use one character per cell, separated by whitespace:
  `#` wall, `.` free, `R` start, `G` goal candidate. Training layouts mark every free non-start
  cell G; `_eval` layouts keep only the far cells.

Geometry (reference.md section 6, notes): cell (i, j) -- row i of the string (top to bottom),
column j (left to right) -- has its centre at world (x = i * s, y = j * s) for cell size s, and
covers [(i - 1/2) s, (i + 1/2) s] x [(j - 1/2) s, (j + 1/2) s]. So a row index is an x
coordinate. A 3-D wall box for cell (i, j) is centred at (i s, j s, WALL_HEIGHT_FRACTION * s)
with half sizes (s/2, s/2, WALL_HEIGHT_FRACTION * s).
"""
from __future__ import annotations

import dataclasses
import functools
from collections import deque

import numpy as np

WALL, FREE, START, GOAL = "#", ".", "R", "G"
CELL_CHARS = (WALL, FREE, START, GOAL)
WALL_HEIGHT_FRACTION = 0.25  # wall half height = box centre height = 0.25 * cell size (reference 6)

# fmt: off
LAYOUTS: dict[str, str] = {
    "u_maze": """
        # # # # #
        # R G G #
        # # # G #
        # G G G #
        # # # # #
    """,
    "u_maze_eval": """
        # # # # #
        # R . . #
        # # # . #
        # G G G #
        # # # # #
    """,
    "u2_maze": """
        # # # # # #
        # R G G G #
        # # # # G #
        # G G G G #
        # # # # # #
    """,
    "u2_maze_eval": """
        # # # # # #
        # R . . . #
        # # # # . #
        # G G G G #
        # # # # # #
    """,
    "u3_maze": """
        # # # # # # #
        # R G G G G #
        # # # # # G #
        # G G G G G #
        # # # # # # #
    """,
    "u3_maze_eval": """
        # # # # # # #
        # R . . . . #
        # # # # # . #
        # G G G G G #
        # # # # # # #
    """,
    "u4_maze": """
        # # # # #
        # G G G #
        # R # G #
        # # # G #
        # G # G #
        # G G G #
        # # # # #
    """,
    "u4_maze_eval": """
        # # # # #
        # . . . #
        # R # . #
        # # # . #
        # G # . #
        # G G G #
        # # # # #
    """,
    "u5_maze": """
        # # # # # # # #
        # G G G G G G #
        # R # # # # G #
        # # # # # # G #
        # G # # # # G #
        # G G G G G G #
        # # # # # # # #
    """,
    "u5_maze_eval": """
        # # # # # # # #
        # . . . . . . #
        # R # # # # . #
        # # # # # # . #
        # G # # # # G #
        # G G G G G G #
        # # # # # # # #
    """,
    "u6_maze": """
        # # # # # # #
        # G G G G G #
        # R # # # G #
        # # # # # G #
        # G # # # G #
        # G G G G G #
        # # # # # # #
    """,
    "u6_maze_eval": """
        # # # # # # #
        # . . . . . #
        # R # # # . #
        # # # # # . #
        # G # # # G #
        # G G G G G #
        # # # # # # #
    """,
    "u7_maze": """
        # # # # # #
        # G G G G #
        # R # # G #
        # # # # G #
        # G # # G #
        # G G G G #
        # # # # # #
    """,
    "u7_maze_eval": """
        # # # # # #
        # . . . . #
        # R # # . #
        # # # # . #
        # G # # G #
        # G G G G #
        # # # # # #
    """,
    "u_maze_single_eval": """
        # # # # #
        # R . . #
        # # # . #
        # G . . #
        # # # # #
    """,
    "u3_maze_single_eval": """
        # # # # # # #
        # R . . . . #
        # # # # # . #
        # G . . . . #
        # # # # # # #
    """,
    "big_maze": """
        # # # # # # # #
        # R G # # G G #
        # G G # G G G #
        # # G G G # # #
        # G G # G G G #
        # G # G G # G #
        # G G G # G G #
        # # # # # # # #
    """,
    # As drawn in reference.md 6.1; JaxGCRL's version also marks cell (2, 5) as G.
    "big_maze_eval": """
        # # # # # # # #
        # R . # # G G #
        # . . # . . G #
        # # . . . # # #
        # . . # . . . #
        # . # G . # G #
        # . G G # G G #
        # # # # # # # #
    """,
    # Evaluation uses the same layout.
    "hardest_maze": """
        # # # # # # # # # # # #
        # R G G G # G G G G G #
        # G # # G # G # G # G #
        # G G G G G G # G G G #
        # G # # # # G # # # G #
        # G G # G # G G G G G #
        # # G # G # G # G # # #
        # G G # G G G # G G G #
        # # # # # # # # # # # #
    """,
}
# fmt: on


Cell = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class MazeLayout:
    """A parsed layout: a boolean wall grid plus the start (R) and goal (G) cells, row-major order."""

    name: str
    walls: np.ndarray  # bool, shape (n_rows, n_cols); True where the cell is a wall
    starts: tuple[Cell, ...]
    goals: tuple[Cell, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape

    @property
    def free(self) -> np.ndarray:
        return ~self.walls

    def cell_centers(self, cells: tuple[Cell, ...], cell_size: float) -> np.ndarray:
        """World xy of the centres of `cells`, shape (len(cells), 2), float32."""
        return np.asarray(cells, np.float32).reshape(-1, 2) * np.float32(cell_size)

    def start_centers(self, cell_size: float) -> np.ndarray:
        return self.cell_centers(self.starts, cell_size)

    def goal_centers(self, cell_size: float) -> np.ndarray:
        return self.cell_centers(self.goals, cell_size)

    def world_bounds(self, cell_size: float) -> tuple[np.ndarray, np.ndarray]:
        """(low xy, high xy) of the whole grid, walls included."""
        n_rows, n_cols = self.shape
        low = np.array([-0.5, -0.5], np.float32) * cell_size
        high = (np.array([n_rows, n_cols], np.float32) - 0.5) * cell_size
        return low, high

    def shortest_path_lengths(self, source: Cell) -> np.ndarray:
        """Breadth-first distances in cells (4-connected) from `source`; -1 where unreachable."""
        dist = np.full(self.shape, -1, np.int64)
        dist[source] = 0
        queue = deque([source])
        while queue:
            i, j = queue.popleft()
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                a, b = i + di, j + dj
                if 0 <= a < self.shape[0] and 0 <= b < self.shape[1] and not self.walls[a, b] and dist[a, b] < 0:
                    dist[a, b] = dist[i, j] + 1
                    queue.append((a, b))
        return dist

    def wall_boxes(self, cell_size: float, merge: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned 3-D boxes covering exactly the wall cells: (centres (n, 3), half sizes (n, 3)).

        merge=True joins wall cells greedily into rectangles (identical collisions, fewer boxes:
        reference.md 6.4 measured ~1.4x faster ant mazes); merge=False gives one box per cell.
        """
        rects = _merge_rectangles(self.walls) if merge else [(i, j, i, j) for i, j in zip(*np.nonzero(self.walls))]
        s = float(cell_size)
        h = WALL_HEIGHT_FRACTION * s
        centres = [((i0 + i1) / 2 * s, (j0 + j1) / 2 * s, h) for i0, j0, i1, j1 in rects]
        halves = [((i1 - i0 + 1) / 2 * s, (j1 - j0 + 1) / 2 * s, h) for i0, j0, i1, j1 in rects]
        return np.asarray(centres, np.float32).reshape(-1, 3), np.asarray(halves, np.float32).reshape(-1, 3)


def _merge_rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Greedy cover of the True cells by disjoint rectangles (i0, j0, i1, j1), inclusive bounds."""
    todo = mask.copy()
    rects = []
    n_rows, n_cols = mask.shape
    for i0 in range(n_rows):
        for j0 in range(n_cols):
            if not todo[i0, j0]:
                continue
            j1 = j0
            while j1 + 1 < n_cols and todo[i0, j1 + 1]:
                j1 += 1
            i1 = i0
            while i1 + 1 < n_rows and todo[i1 + 1, j0 : j1 + 1].all():
                i1 += 1
            todo[i0 : i1 + 1, j0 : j1 + 1] = False
            rects.append((i0, j0, i1, j1))
    return rects


def parse_layout(text: str, name: str = "<custom>") -> MazeLayout:
    """Parse a layout string (rows of whitespace-separated `# . R G`) into a MazeLayout.

    Raises ValueError on unknown characters, ragged rows, or a layout without R or G cells.
    """
    rows = [line.split() for line in text.strip().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"maze layout {name!r} is empty")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError(f"maze layout {name!r} has rows of different lengths: {[len(r) for r in rows]}")
    bad = sorted({c for r in rows for c in r} - set(CELL_CHARS))
    if bad:
        raise ValueError(f"maze layout {name!r} has unknown cell characters {bad}; allowed: {CELL_CHARS}")
    grid = np.array(rows)
    starts = tuple((int(i), int(j)) for i, j in zip(*np.nonzero(grid == START)))
    goals = tuple((int(i), int(j)) for i, j in zip(*np.nonzero(grid == GOAL)))
    if not starts or not goals:
        raise ValueError(f"maze layout {name!r} needs at least one {START!r} and one {GOAL!r} cell")
    walls = grid == WALL
    walls.flags.writeable = False  # layouts are shared (get_layout caches them)
    return MazeLayout(name=name, walls=walls, starts=starts, goals=goals)


@functools.cache
def get_layout(name: str) -> MazeLayout:
    """The parsed layout called `name` (a key of LAYOUTS)."""
    if name not in LAYOUTS:
        raise KeyError(f"unknown maze layout {name!r}; known: {sorted(LAYOUTS)}")
    return parse_layout(LAYOUTS[name], name)
