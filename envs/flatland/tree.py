"""flatland's tree observation (``TreeObsForRailEnv`` without a predictor), node for node, faster.

flatland 4.3 walks the rail cell by cell for every train at every step (``_explore_branch``), asking the
transition map for each cell anew; at 5 trains that is over half of a step's cost. The walk between two
branch points depends only on the rail, so it is computed once per episode and start (row, col, heading)
and kept (``Walk``); each step only gathers what changes along it — the trains on it, and where the
observing train's own target cuts it short. The result is the same ``Node`` tree flatland builds (same
fields, same values, children in the same L, F, R, B order, the deepest level's children cleared), and
``visited[handle]`` is flatland's ``env.dev_obs_dict[handle]`` (as a set): tested against
``TreeObsForRailEnv`` step for step.

Faithful to flatland's quirks: a train on the cell counts trains waiting to depart there only when a
train stands on it; a cell reached twice in one walk is counted again, then ends the branch as a
terminal; ``dist_potential_conflict`` is always inf (no predictor).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from flatland.core.env_observation_builder import ObservationBuilder
from flatland.envs.agent_utils import virtual_configuration
from flatland.envs.observations import Node

MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # N, E, S, W (flatland's get_new_position)
BRANCH_KEYS = ("L", "F", "R", "B")
CROSSING = 0b1000010000100001
SWITCH, DEAD_END, TERMINAL = 0, 1, 2
INF = math.inf


def transition_table(grid: np.ndarray) -> np.ndarray:
    """``[H, W, heading, exit]`` booleans from flatland's 16-bit cells (4 bits per heading, N E S W)."""
    table = np.zeros(grid.shape + (4, 4), dtype=bool)
    for heading in range(4):
        for exit_ in range(4):
            table[..., heading, exit_] = (grid >> ((3 - heading) * 4 + (3 - exit_))) & 1
    return table


class Walk(NamedTuple):
    """One branch's cells from its start to the next branch point, for any train (rail only)."""

    cells: tuple[tuple[int, int, int], ...]  # (row, col, heading) entered, in order
    revisit: tuple[int, int, int] | None  # the cell that closed a loop (looked at, not entered)
    end: int  # SWITCH, DEAD_END or TERMINAL (loop or a cell without ways)
    first_unusable: float  # index of the first switch usable only by other trains, inf if none
    positions: frozenset  # every (row, col) looked at, for a quick "is the own target on it" check


class TreeObservation(ObservationBuilder):
    """A flatland observation builder (``reset(env)`` after each episode reset, ``get_many(handles)``),
    so it can also stand in for ``TreeObsForRailEnv`` inside a ``RailEnv``."""

    def __init__(self, max_depth: int):
        super().__init__()
        self.max_depth = max_depth
        self.visited: dict[int, set] = {}

    def reset(self, env) -> None:
        super().reset(env)
        self.transitions = transitions = transition_table(env.rail.grid)
        self.ways = transitions.sum(-1)  # [H, W, heading]
        self.bits = transitions.sum((-2, -1))  # transitions per cell (flatland's bit count); > 2: a switch or crossing
        self.total = np.where(env.rail.grid == CROSSING, 2, self.bits)  # a crossing counts as straight rail
        self.targets = {tuple(t[0]) for agent in env.agents for t in agent.targets}
        self.walks: dict[tuple[int, int, int], Walk] = {}
        self.visited = {}

    # ----- the rail: walks, memoised -----------------------------------------------------------------
    def _walk(self, start: tuple[int, int, int]) -> Walk:
        walk = self.walks.get(start)
        if walk is None:
            walk = self.walks[start] = self._trace(*start)
        return walk

    def _trace(self, row: int, col: int, heading: int) -> Walk:
        cells, entered, revisit, first_unusable = [], set(), None, INF
        while True:
            cell = (row, col, heading)
            if cell in entered:
                revisit, end = cell, TERMINAL
                break
            entered.add(cell)
            cells.append(cell)
            ways, total = int(self.ways[row, col, heading]), int(self.total[row, col])
            if total > 2 > ways and first_unusable == INF:
                first_unusable = len(cells) - 1
            if ways == 1:
                if total == 1:
                    end = DEAD_END
                    break
                heading = int(self.transitions[row, col, heading].argmax())
                row, col = row + MOVES[heading][0], col + MOVES[heading][1]
            else:
                end = SWITCH if ways > 1 else TERMINAL
                break
        looked = cells + ([revisit] if revisit else [])
        return Walk(tuple(cells), revisit, end, first_unusable, frozenset((r, c) for r, c, _ in looked))

    # ----- per step ----------------------------------------------------------------------------------
    def get_many(self, handles: list[int] | None = None) -> dict[int, Node | None]:
        """Trees for ``handles`` (``None`` where flatland gives none); fills ``visited`` for them."""
        self.on_cell: dict[tuple[int, int], tuple[int, float, float]] = {}  # heading, malfunction, speed
        self.waiting: dict[tuple[int, int], int] = {}  # trains ready to depart per start cell
        for agent in self.env.agents:
            off_map = agent.state.is_off_map_state()
            if not off_map and agent.current_configuration is not None:
                position, heading = agent.current_configuration
                self.on_cell[tuple(position)] = (heading, agent.malfunction_handler.malfunction_down_counter,
                                                 agent.speed_counter.speed)
            if off_map and agent.initial_configuration[0]:
                start = tuple(agent.initial_configuration[0])
                self.waiting[start] = self.waiting.get(start, 0) + 1
        self.distance = self.env.distance_map.get()
        return {handle: self._tree(handle) for handle in handles or []}

    def _tree(self, handle: int) -> Node | None:
        agent = self.env.agents[handle]
        configuration = virtual_configuration(agent)
        if configuration is None:
            return None
        (row, col), heading = configuration
        root = Node(0, 0, 0, 0, 0, 0, self.distance[handle, row, col, heading], 0, 0,
                    agent.malfunction_handler.malfunction_down_counter, agent.speed_counter.speed, 0, {})
        orientation = heading
        if self.ways[row, col, heading] == 1:
            orientation = int(self.transitions[row, col, heading].argmax())
        target = tuple(next(iter(agent.targets))[0])
        visited: set = set()
        for key, turn in zip(BRANCH_KEYS, (-1, 0, 1, 2)):
            branch = (orientation + turn) % 4
            if self.transitions[row, col, heading, branch]:
                start = (row + MOVES[branch][0], col + MOVES[branch][1], branch)
                root.childs[key] = self._node(handle, target, start, 1, 1, visited)
            else:
                root.childs[key] = -INF
        self.visited[handle] = visited
        return root

    def _node(self, handle: int, target, start: tuple[int, int, int], distance: int, depth: int, visited: set) -> Node:
        walk = self._walk(start)
        cells, end, revisit = walk.cells, walk.end, walk.revisit
        if target in walk.positions:  # the own target ends the branch where it is entered
            for k, (r, c, _) in enumerate(cells):
                if (r, c) == target:
                    cells, end, revisit = cells[:k + 1], None, None
                    break
        visited.update(cells)
        looked = cells + (revisit,) if revisit else cells
        own = other_target = other_train = INF
        same = opposite = malfunction = waiting = 0
        slowest = 1.0
        for k, (r, c, heading) in enumerate(looked):
            where = (r, c)
            train = self.on_cell.get(where)
            if train is not None:
                other_train = min(other_train, distance + k)
                malfunction = max(malfunction, train[1])
                waiting += self.waiting.get(where, 0)
                if train[0] == heading:
                    same += 1
                    slowest = min(slowest, train[2])
                else:
                    opposite += 1
            if where in self.targets:
                if where != target:
                    other_target = min(other_target, distance + k)
                else:
                    own = min(own, distance + k)
        last = len(cells) - 1
        checked = last if end is None else last + 1  # the own target's cell is not checked for switches
        unusable = distance + walk.first_unusable if walk.first_unusable < checked else INF
        r, c, heading = revisit or cells[-1]
        if end is None:  # reached the own target
            to_branch, to_target = distance + last, 0
        elif end == TERMINAL:
            to_branch, to_target = INF, self.distance[handle, r, c, heading]
        else:
            to_branch, to_target = distance + last, self.distance[handle, r, c, heading]
        node = Node(own, other_target, other_train, INF, unusable, to_branch, to_target, same, opposite,
                    malfunction, slowest, waiting, {})
        if depth == self.max_depth:
            return node  # flatland explores one level further, then clears the children
        for key, turn in zip(BRANCH_KEYS, (-1, 0, 1, 2)):
            branch = (heading + turn) % 4
            if end == DEAD_END and self.transitions[r, c, heading, (branch + 2) % 4]:
                back = (branch + 2) % 4  # a dead end's way back is its forward branch
                node.childs[key] = self._node(handle, target, (r + MOVES[back][0], c + MOVES[back][1], back),
                                              distance + last + 1, depth + 1, visited)
            elif end == SWITCH and self.transitions[r, c, heading, branch]:
                node.childs[key] = self._node(handle, target, (r + MOVES[branch][0], c + MOVES[branch][1], branch),
                                              distance + last + 1, depth + 1, visited)
            else:
                node.childs[key] = -INF
        return node
