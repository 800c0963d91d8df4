"""Walkers' routes through the hall, for clips: a floor grid of where a walker's centre may be
(clear of the walls, the racks and everything that stays put), goals drawn on it, and the
shortest way over it to a goal (scipy's Dijkstra on the 8-connected grid). A walker with goals
heads for the point ROUTE_AHEAD_M along its path; the step-by-step rules of
blender.plan.motion (stepping around other movers, never overlapping anything) stay in charge.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from blender.plan.draw import Rng
from blender.plan.geometry import Footprint, rack_footprint
from blender.plan.scene_plan import Layout

ROUTE_CELL_M = 0.25          # grid pitch: a quarter of a stride
# a cell is free when its centre keeps this far from everything that stays put: half a walking
# footprint's width plus the 0.2 m gap the motion rules keep (STATIC_CLEARANCE_M on both sides)
ROUTE_INFLATE_M = 0.5
# a walker heads for the farthest point of its path up to this far on that it sees over free
# floor: it cuts corners of the grid path instead of zigzagging, but never across a rack's end
ROUTE_AHEAD_M = 1.2
# racks and walls block the grid this much beyond the motion rules' margin, so a path along them
# leaves room to step around a walker coming the other way
ROUTE_WALL_EXTRA_M = 0.15
GOAL_REACHED_M = 0.6         # within this of its goal a walker takes up the next one
GOALS_PER_WALKER = 8         # then it starts over with the first
GOAL_MIN_DIST_M = 5.0        # a goal is at least this far (straight line) from where the last one was
# a walker whose way stays blocked this many steps (by other movers: 2 s at 10 fps) gives up
# its goal for the next one instead of waiting on
ROUTE_PATIENCE_STEPS = 20


class Routes:
    """The free floor of one clip's hall and shortest-way fields to goals (cached per goal)."""

    def __init__(self, layout: Layout, static: list[Footprint], wall_margin: float):
        self.nx = max(1, int(layout.width / ROUTE_CELL_M))
        self.ny = max(1, int(layout.length / ROUTE_CELL_M))
        xs = (np.arange(self.nx) + 0.5) * ROUTE_CELL_M
        ys = (np.arange(self.ny) + 0.5) * ROUTE_CELL_M
        self.cx, self.cy = (a.ravel() for a in np.meshgrid(xs, ys))   # cell k = iy * nx + ix
        x, y = self.cx, self.cy
        m = wall_margin + ROUTE_WALL_EXTRA_M
        free = (x >= m) & (x <= layout.width - m) & (y >= m) & (y <= layout.length - m)
        for fp, grow in [(rack_footprint(r), m) for r in layout.racks] + [(fp, ROUTE_INFLATE_M) for fp in static]:
            c, s = math.cos(fp.yaw), math.sin(fp.yaw)
            lx, ly = (x - fp.x) * c + (y - fp.y) * s, -(x - fp.x) * s + (y - fp.y) * c
            free &= ~((np.abs(lx) <= fp.length / 2 + grow) & (np.abs(ly) <= fp.width / 2 + grow))
        self.free = free
        self.graph = self._graph(free.reshape(self.ny, self.nx))
        self.parts = connected_components(self.graph, directed=False)[1]   # cell -> its piece of floor
        self._fields: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _graph(self, free: np.ndarray):
        """Edges between free neighbours; a diagonal only where both cells beside it are free too."""
        idx = np.arange(self.nx * self.ny).reshape(self.ny, self.nx)
        rows, cols, w = [], [], []
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            a = free[:self.ny - dy, max(0, -dx):self.nx - max(0, dx)]
            b = free[dy:, max(0, dx):self.nx + min(0, dx)]
            ok = a & b
            if dx and dy:   # no corner cutting past a blocked cell
                ok &= free[:self.ny - dy, max(0, dx):self.nx + min(0, dx)] & free[dy:, max(0, -dx):self.nx - max(0, dx)]
            ia = idx[:self.ny - dy, max(0, -dx):self.nx - max(0, dx)][ok]
            ib = idx[dy:, max(0, dx):self.nx + min(0, dx)][ok]
            rows.append(ia)
            cols.append(ib)
            w.append(np.full(len(ia), ROUTE_CELL_M * math.hypot(dx, dy)))
        n = self.nx * self.ny
        return coo_matrix((np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()

    def cell(self, x: float, y: float) -> int:
        ix = min(max(int(x / ROUTE_CELL_M), 0), self.nx - 1)
        iy = min(max(int(y / ROUTE_CELL_M), 0), self.ny - 1)
        return iy * self.nx + ix

    def field(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """(way length, next cell towards `cell`) from every cell; inf / -9999 where none."""
        if cell not in self._fields:
            self._fields[cell] = dijkstra(self.graph, directed=False, indices=cell, return_predecessors=True)
        return self._fields[cell]

    def _entry(self, x: float, y: float, dist: np.ndarray) -> int | None:
        """The cell of (x, y), or where it is off the free floor the nearest cell with a way."""
        c = self.cell(x, y)
        if np.isfinite(dist[c]):
            return c
        ok = np.flatnonzero(np.isfinite(dist))
        if not len(ok):
            return None
        return int(ok[np.argmin((self.cx[ok] - x) ** 2 + (self.cy[ok] - y) ** 2)])

    def waypoint(self, x: float, y: float, goal: tuple[float, float]) -> tuple[float, float]:
        """Where a walker at (x, y) heads for on its way to `goal` (the goal itself when no way is known)."""
        dist, nxt = self.field(self.cell(*goal))
        c = self._entry(x, y, dist)
        if c is None:
            return goal
        best = (float(self.cx[c]), float(self.cy[c]))
        for _ in range(round(ROUTE_AHEAD_M / ROUTE_CELL_M)):
            if nxt[c] < 0:          # the goal's cell
                return goal if self._seen(x, y, *goal) else best
            c = int(nxt[c])
            p = (float(self.cx[c]), float(self.cy[c]))
            if not self._seen(x, y, *p):
                break
            best = p
        return best

    def _seen(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        """Whether the straight way from (x0, y0) to (x1, y1) stays on free cells (its first cell
        aside: a walker may stand a little off the free floor)."""
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / (ROUTE_CELL_M / 2)))
        t = np.linspace(0.0, 1.0, n + 1)[1:]
        cells = [self.cell(x0 + (x1 - x0) * k, y0 + (y1 - y0) * k) for k in t]
        start = self.cell(x0, y0)
        return all(self.free[c] for c in cells if c != start)

    def goals(self, rng: Rng, x: float, y: float, n: int = GOALS_PER_WALKER) -> list[tuple[float, float]]:
        """`n` goals for a walker starting at (x, y): free cells of the floor it stands on (or
        next to), each at least GOAL_MIN_DIST_M from the one before (or from the start); fewer,
        or none, where the floor has no such cell."""
        free = np.flatnonzero(self.free)
        if not len(free):
            return []
        entry = free[np.argmin((self.cx[free] - x) ** 2 + (self.cy[free] - y) ** 2)]
        reach = free[self.parts[free] == self.parts[entry]]
        out: list[tuple[float, float]] = []
        px, py = x, y
        for _ in range(n):
            far = reach[np.hypot(self.cx[reach] - px, self.cy[reach] - py) >= GOAL_MIN_DIST_M]
            if not len(far):
                break
            k = int(far[rng.integers(len(far))])
            px, py = round(float(self.cx[k]), 3), round(float(self.cy[k]), 3)
            out.append((px, py))
        return out
