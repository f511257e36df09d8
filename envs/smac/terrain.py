"""Terrain and pathing of the SMAC simulator (``simulator.py``): the maps' pathable cells, the shortest paths
around walls that idle enemies follow, the armies' spawn formations, and how ground units move among walls
and each other (steering around units that do not make way, sliding along walls, separating overlaps).
A mixin of ``SmacSimulator``: its methods read the simulator's tables (``grid``, ``radius``, ...)."""
from __future__ import annotations

import functools
import heapq
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from envs.smac.maps import MAP_SIZE, TERRAIN

if TYPE_CHECKING:
    from envs.smac.simulator import _State


STEPS = tuple((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy)  # the 8 neighbours of a cell


def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances ``[B,I,J]`` between points ``a`` [B,I,2] and ``b`` [B,J,2]."""
    dx = a[..., 0].unsqueeze(2) - b[..., 0].unsqueeze(1)
    dy = a[..., 1].unsqueeze(2) - b[..., 1].unsqueeze(1)
    return (dx * dx + dy * dy).sqrt()


def neighbours(grid: np.ndarray, x: int, y: int):
    """The cells a ground unit steps to from cell (x, y), as ``(dx, dy, length)``: each of the 8 neighbours
    inside the map and pathable, a diagonal only where both cells beside it are (no corner cutting)."""
    for dx, dy in STEPS:
        nx, ny = x + dx, y + dy
        if 0 <= nx < MAP_SIZE and 0 <= ny < MAP_SIZE and grid[nx, ny] and (not (dx and dy) or (grid[nx, y] and grid[x, ny])):
            yield dx, dy, math.hypot(dx, dy)


def flow_field(grid: np.ndarray, goal: tuple[float, float]) -> np.ndarray:
    """Unit direction ``[x, y, 2]`` from each pathable cell toward ``goal`` along shortest 8-connected paths."""
    dist = np.full(grid.shape, np.inf)
    start = (int(goal[0]), int(goal[1]))
    dist[start] = 0.0
    heap = [(0.0, start)]
    while heap:
        d, (x, y) = heapq.heappop(heap)
        if d > dist[x, y]:
            continue
        for dx, dy, length in neighbours(grid, x, y):
            nx, ny, nd = x + dx, y + dy, d + length
            if nd < dist[nx, ny]:
                dist[nx, ny] = nd
                heapq.heappush(heap, (nd, (nx, ny)))
    field = np.zeros(grid.shape + (2,), dtype=np.float32)
    for x in range(MAP_SIZE):
        for y in range(MAP_SIZE):
            if not np.isfinite(dist[x, y]) or (x, y) == start:
                continue
            best = min(((dist[x + dx, y + dy], dx, dy) for dx, dy, _ in neighbours(grid, x, y)
                        if np.isfinite(dist[x + dx, y + dy])), default=None)
            if best is not None and best[0] < dist[x, y]:
                field[x, y] = np.array(best[1:]) / math.hypot(best[1], best[2])
    return field


@functools.cache
def path_fields(terrain: str) -> tuple[np.ndarray, np.ndarray]:
    """Shortest-path directions toward every pathable cell of ``TERRAIN[terrain]``, for enemies that chase
    moving units around walls (2c_vs_64zg): ``flows[g, x, y]`` is the unit step from cell (x, y) toward
    pathable cell ``g`` (``neighbours``' steps, as ``flow_field``), and ``nearest[x, y]`` the
    pathable cell nearest to any cell, which stands in for a goal no ground unit can reach (a colossus
    on a cliff). All pairs by Floyd-Warshall over the pathable cells (336 on 2c_vs_64zg: well under a
    second, once per process)."""
    grid = TERRAIN[terrain]
    cells = np.argwhere(grid)
    index = np.full(grid.shape, -1)
    index[cells[:, 0], cells[:, 1]] = np.arange(len(cells))
    moves = []  # per cell: (neighbour indices, costs, unit directions)
    dist = np.full((len(cells), len(cells)), np.inf)
    np.fill_diagonal(dist, 0.0)
    for i, (x, y) in enumerate(cells):
        nbrs = [(index[x + dx, y + dy], length, (dx, dy)) for dx, dy, length in neighbours(grid, x, y)]
        moves.append(nbrs)
        for j, cost, _ in nbrs:
            dist[i, j] = cost
    for k in range(len(cells)):
        np.minimum(dist, dist[:, k, None] + dist[None, k, :], out=dist)
    flows = np.zeros((len(cells),) + grid.shape + (2,), dtype=np.float32)
    for i, (x, y) in enumerate(cells):
        if not moves[i]:
            continue
        nbr = np.array([j for j, _, _ in moves[i]])
        cost = np.array([c for _, c, _ in moves[i]])
        dirs = np.array([d for _, _, d in moves[i]], dtype=np.float32)
        via = cost[:, None] + dist[nbr]  # [neighbours, goals]
        best = via.argmin(0)
        useful = np.isfinite(via.min(0)) & (np.arange(len(cells)) != i)
        flows[useful, x, y] = dirs[best[useful]] / np.linalg.norm(dirs[best[useful]], axis=-1, keepdims=True)
    xs, ys = np.meshgrid(np.arange(MAP_SIZE) + 0.5, np.arange(MAP_SIZE) + 0.5, indexing="ij")
    centres = cells + 0.5
    gap = (xs[..., None] - centres[:, 0]) ** 2 + (ys[..., None] - centres[:, 1]) ** 2
    return flows, gap.argmin(-1)


def formation(center: tuple[float, float], facing: np.ndarray, lateral: np.ndarray, n: int, spacing: float,
               grid: np.ndarray) -> np.ndarray:
    """``n`` pathable points of a hexagonal packing around ``center``, nearest first, then frontmost.

    SC2 spreads the units of one ``CreateUnits`` call around the point by a placement search the map files
    do not describe (their ``CreateUnitsWithDefaultFacing`` calls name a point only). Each army's packing
    is laid out in its own frame, ``facing`` the other army, with the ``lateral`` axis both share, so two
    armies built this way are mirror images across the line midway between their spawn points, and on 3m
    the marines of each side stand front to front (SMAClite mirrors its armies too, ``__place_group``)."""
    pts = []
    rings = int(math.ceil(math.sqrt(n))) + 4
    for row in range(-rings, rings + 1):
        for col in range(-rings, rings + 1):
            forward = spacing * row * math.sqrt(3) / 2
            side = spacing * (col + 0.5 * (row % 2))
            x, y = np.asarray(center) + forward * facing + side * lateral
            if 0 <= x < MAP_SIZE and 0 <= y < MAP_SIZE and grid[int(x), int(y)]:
                pts.append((round(math.hypot(forward, side), 6), -forward, side, x, y))
    pts.sort()
    if len(pts) < n:
        raise ValueError(f"cannot place {n} units around {center}")
    return np.array([(x, y) for *_, x, y in pts[:n]], dtype=np.float32)


class Pathing:
    """Where ground units may stand and how they move; mixed into ``SmacSimulator``."""

    @staticmethod
    def _straight_path_clear(grid: np.ndarray, a, b) -> bool:
        for t in np.linspace(0.0, 1.0, 200):
            x, y = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
            if not grid[int(x), int(y)]:
                return False
        return True

    def _pathable(self, pos: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
        """Whether ``pos`` lies on a pathable cell of the ground grid (SMAC's ``pathing_grid``) or ``grid``."""
        x, y = pos[..., 0], pos[..., 1]
        inside = (x >= 0) & (x < MAP_SIZE) & (y >= 0) & (y < MAP_SIZE)
        ix = x.clamp(0, MAP_SIZE - 1).long()
        iy = y.clamp(0, MAP_SIZE - 1).long()
        return inside & (self.grid if grid is None else grid)[ix, iy]

    def _walkable(self, pos: torch.Tensor) -> torch.Tensor:
        """Where each unit of ``pos`` [B,U,2] may stand: the ground grid, or for a colossus the cliffs too.
        SMAC's move availability keeps the ground grid for every unit (``_avail_actions``)."""
        if not self.has_cliff_walker:
            return self._pathable(pos)
        return torch.where(self.cliff_walker, self._pathable(pos, self.cliff_grid), self._pathable(pos))

    def _chase_heading(self, s: _State, goal: torch.Tensor, heading: torch.Tensor) -> torch.Tensor:
        """Enemies more than a cell and a half from their goal walk the shortest path toward its cell
        (``path_fields``) instead of straight at it, so zerglings go round the wall to the colossi."""
        cell = s.pos.clamp(0, MAP_SIZE - 1e-3).long()
        g = goal.clamp(0, MAP_SIZE - 1e-3).long()
        toward = self.chase_flow[self.nearest_cell[g[..., 0], g[..., 1]], cell[..., 0], cell[..., 1]]
        far = (goal - s.pos).norm(dim=-1) > 1.5
        use = self.is_enemy & far & toward.abs().sum(-1).gt(0)
        return torch.where(use.unsqueeze(-1), toward, heading)

    def _steer(self, s: _State, heading: torch.Tensor, travel: torch.Tensor) -> torch.Tensor:
        """Ground units walk around units they cannot push instead of pressing into them.

        A unit whose next step would overlap a unit that will not make way (any unit of the other team,
        which never yields, see ``_collide``, and a friend standing still, e.g. one attacking) turns to the
        tangent of that unit's circle, on the side its heading already leans to, and walks along it: SC2's
        pathing routes units around blockers, so melee units flow around a fighting front to surround.
        The nearest such blocker decides; moving friends are pushed aside as before. One pairwise pass,
        fixed shapes."""
        pos = s.pos
        ground = s.alive & ~self.air
        moving = travel > 0
        step = pos + heading * travel.unsqueeze(-1)
        gap = distance(step, pos) - self.radius_sum  # [B,U,U] after i's step, to j where it stands
        rel = pos.unsqueeze(1) - pos.unsqueeze(2)  # [B,U,U,2] from i to j
        ahead = (rel * heading.unsqueeze(2)).sum(-1) > 0
        firm = ~self.same_team | ~moving.unsqueeze(1)
        blocks = (gap < 0) & ahead & firm & ground.unsqueeze(2) & ground.unsqueeze(1) & moving.unsqueeze(2)
        if self.has_cliff_walker:
            blocks = blocks & self.collide_pair
        nearest = torch.where(blocks, gap, torch.full_like(gap, float("inf"))).argmin(2, keepdim=True)
        to_blocker = rel.gather(2, nearest.unsqueeze(-1).expand(-1, -1, 1, 2)).squeeze(2)
        cross = to_blocker[..., 0] * heading[..., 1] - to_blocker[..., 1] * heading[..., 0]
        side = torch.where(cross >= 0, 1.0, -1.0).unsqueeze(-1)  # left of the blocker when the heading leans left
        tangent = torch.stack([-to_blocker[..., 1], to_blocker[..., 0]], -1) * side
        tangent = tangent / tangent.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        return torch.where(blocks.any(2).unsqueeze(-1), tangent, heading)

    def _slide(self, pos: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        """Ground units cannot enter unpathable cells; they slide along walls axis by axis."""
        ok = self._walkable(proposal) | self.air
        x_only = torch.stack([proposal[..., 0], pos[..., 1]], -1)
        y_only = torch.stack([pos[..., 0], proposal[..., 1]], -1)
        ok_x, ok_y = self._walkable(x_only), self._walkable(y_only)
        out = torch.where(ok_y.unsqueeze(-1), y_only, pos)
        out = torch.where(ok_x.unsqueeze(-1), x_only, out)
        return torch.where(ok.unsqueeze(-1), proposal, out).clamp(0, MAP_SIZE - 1e-3)

    def _collide(self, s: _State, pos: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        """Separate overlapping ground units. Friends share the push; between enemies the unit that
        moved is pushed back (SC2 units never push enemy units, which is what makes wall-offs work).
        The push on i is sum_j w_ij (pos_i - pos_j)."""
        ground = (s.alive & ~self.air).float()
        dist = distance(pos, pos).clamp(min=1e-4)
        overlap = (self.radius_sum - dist).clamp(min=0) * ground.unsqueeze(2) * ground.unsqueeze(1)
        if self.has_cliff_walker:
            overlap = overlap * self.collide_pair
        m_i, m_j = moved.unsqueeze(2), moved.unsqueeze(1)
        share = torch.where(self.same_team, 0.5, (m_i + 1e-6) / (m_i + m_j + 2e-6))
        w = overlap * share * self.not_self / dist
        pushed = pos + (w.unsqueeze(-1) * (pos.unsqueeze(2) - pos.unsqueeze(1))).sum(2)
        return torch.where((self._walkable(pushed) | (ground == 0)).unsqueeze(-1), pushed, pos)
