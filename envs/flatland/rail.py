"""One Flatland environment with the official MAMBA/MABL interface, on flatland-rl 4.3 (numpy in, numpy out).

What the agents see and do follows jbr-ai-labs/mamba@2c97258 (identical in aravindvenu7/MABL):

* **Actions** (``env/flatland/Flatland.py`` ``transform_action``): 0 = the left-most available direction,
  1 = the other one (the only one when there is a single way), 2 = stop; stop leaves a train that has not
  departed off the map; at a dead end the train moves forward. Away from decision cells, while
  malfunctioning, the action is replaced by 0 (``GreedyFlatland.py``/``GreedyChecker.py``): trains roll on.
  Decision cells are switches, targets and the cells (and directions) leading into them. Our availability
  mask states that rule: where the action is forced only 0 is available, and 1 only where two ways exist.
* **Observation** (``observations/SimpleObservation.py``): 9 root features, then a binary tree of
  ``tree_depth`` levels (the real branches of flatland's tree observation, built node for node by
  ``tree.TreeObservation``, in L, F, R, B order, padded to two per node, breadth first) with 14
  features per node: 9 + 14 * 14 = 205 values at depth 3.
  Distances are ``d / 100 - 10``; "not found" (inf) is 0; booleans are +-1; padding nodes are 0.
  Trains that arrived or are deadlocked observe zeros (the official absorbing observation).
* **Reward** (``rewards/{Finish,Near}RewardShaper.py``, ``DeadlockPunishment.py``): flatland's own
  reward is replaced by +10 once on arrival, 0.01 x the decrease of the shortest-path distance to the
  target (1000 where unreachable), -5 once when a train becomes deadlocked. Deadlocked trains count as
  done (``DeadlockChecker.py``): a train is deadlocked when every cell it can move to holds a train that
  is itself deadlocked or part of a cycle of such trains; a dead end is not a deadlock.
* **Episode end**: every train arrived or deadlocked (termination), or the time limit (truncation).

Node features, adapted to 4.3's ``Node`` (the official tree had fields 4.3 lacks; indices 10-13 differ):
0 real node (+1; -1 when the branch reaches the train's own target), 1 distance to another train,
2 to the next branch, 3 to an unusable switch, 4 change of the shortest distance to target versus the
parent node, 5 the same measured at the next branch, 6-9 same-direction trains >= 1 / >= 2 and
opposite-direction trains >= 1 / >= 2, 10 distance to the own target, 11 to another train's target,
12 a malfunctioning train ahead, 13 trains waiting to depart ahead. Root features: row / 100,
column / 100, a per-episode random id, deadlocked, not malfunctioning, shortest distance to target,
on a switch, next cell is a decision, ready to depart.
"""
from __future__ import annotations

import math

import numpy as np
from flatland.envs.step_utils.states import TrainState

from envs.errors import UsageError
from envs.flatland.tasks import FlatlandTask, build_episode
from envs.flatland.tree import MOVES, TreeObservation

N_ACTIONS = 3
TREE_DEPTH = 3  # the official tree observation's depth
ROOT_FEATURES = 9
NODE_FEATURES = 14
N_TREE_FIELDS = 12  # flatland 4.3 Node fields before ``childs``
PARENT_DIST = N_TREE_FIELDS  # the parent's shortest distance to target, stored after them
N_NODE_FIELDS = N_TREE_FIELDS + 1
RICH_FEATURES = 19  # per train, appended to the global state when ``state="rich"``
STATES = ("obs", "rich")
FINISH_REWARD, NEAR_COEFF, DEADLOCK_PENALTY, UNREACHABLE = 10.0, 0.01, -5.0, 1e3
LEFT, FORWARD, RIGHT, STOP = 1, 2, 3, 4  # RailEnvActions values


def tree_nodes(depth: int) -> int:
    return 2 ** (depth + 1) - 2


def obs_dim(depth: int) -> int:
    return ROOT_FEATURES + NODE_FEATURES * tree_nodes(depth)


def state_dim(task: FlatlandTask, depth: int, state: str) -> int:
    return task.n_agents * (obs_dim(depth) + (RICH_FEATURES if state == "rich" else 0))


def sizes(task: FlatlandTask, tree_depth: int = TREE_DEPTH, state: str = "obs") -> dict[str, int]:
    """The sizes an ``EnvSpec`` holds. The episode limit is flatland 2.2.2's with 2 cities placed, the
    official code's value (the generator may place fewer cities than asked for)."""
    return {"n_agents": task.n_agents, "obs_dim": obs_dim(tree_depth), "state_dim": state_dim(task, tree_depth, state),
            "n_actions": N_ACTIONS, "episode_limit": task.episode_limit(cities_placed=2)}


def norm_dist(d):
    """``d / 100 - 10``; not found (inf) is 0 (SimpleObservation.norm_dist). Scalars or arrays."""
    if isinstance(d, (int, float)):  # the root's distance: skip numpy's per-call overhead
        return d / 100.0 - 10.0 if math.isfinite(d) else 0.0
    d = np.asarray(d, dtype=np.float64)
    return np.where(np.isfinite(d), d / 100.0 - 10.0, 0.0)


def sign(flag) -> float:
    return 1.0 if flag else -1.0


def shifted(mask: np.ndarray, direction: int) -> np.ndarray:
    """``out[r, c] = mask[(r, c) + MOVES[direction]]`` (False beyond the border)."""
    dr, dc = MOVES[direction]
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(-dr, 0):h - max(dr, 0), max(-dc, 0):w - max(dc, 0)] = mask[max(dr, 0):h - max(-dr, 0), max(dc, 0):w - max(-dc, 0)]
    return out


# Node fields (flatland 4.3 ``Node`` order, then the parent's distance) that node_features reads.
OWN_TARGET, OTHER_TARGET, OTHER_AGENT, UNUSABLE_SWITCH, NEXT_BRANCH, MIN_TO_TARGET = 0, 1, 2, 4, 5, 6
SAME, OPPOSITE, MALFUNCTIONING, READY = 7, 8, 9, 11


def node_features(fields: np.ndarray) -> np.ndarray:
    """The 14 node features (module docstring) from raw ``Node`` fields ``[..., N_NODE_FIELDS]``:
    every distance normalised in one pass, every flag in another (a few numpy calls per step)."""
    dist = norm_dist(fields)
    base = dist[..., PARENT_DIST]
    flags = np.stack([~np.isfinite(fields[..., OWN_TARGET]), fields[..., SAME] >= 1, fields[..., SAME] >= 2,
                      fields[..., OPPOSITE] >= 1, fields[..., OPPOSITE] >= 2, fields[..., MALFUNCTIONING] > 0,
                      fields[..., READY] > 0], axis=-1) * 2.0 - 1.0
    out = np.empty(fields.shape[:-1] + (NODE_FEATURES,))
    out[..., 0] = flags[..., 0]
    out[..., 1:4] = dist[..., [OTHER_AGENT, NEXT_BRANCH, UNUSABLE_SWITCH]]
    out[..., 4] = dist[..., MIN_TO_TARGET] - base
    out[..., 5] = norm_dist(fields[..., MIN_TO_TARGET] + fields[..., NEXT_BRANCH]) - base
    out[..., 6:10] = flags[..., 1:5]
    out[..., 10:12] = dist[..., [OWN_TARGET, OTHER_TARGET]]
    out[..., 12:14] = flags[..., 5:7]
    return out


def real_children(node) -> list:
    return [c for c in node.childs.values() if not isinstance(c, float)][:2] if node is not None else []


class RailTask:
    """One Flatland environment: ``reset()`` and ``step(actions)`` return dicts of numpy arrays.

    Episode ``k`` runs on ``build_episode(task, seed, k)``; ``reset(built)`` takes that episode when it was
    built elsewhere ahead of time, and builds it otherwise (the same episode)."""

    def __init__(self, task: FlatlandTask, seed: int, tree_depth: int = TREE_DEPTH, state: str = "obs"):
        if state not in STATES:
            raise UsageError(f"unknown Flatland global state {state!r}; valid: {', '.join(STATES)}")
        if not isinstance(tree_depth, int) or tree_depth < 1:
            raise UsageError(f"tree_depth must be a positive integer, got {tree_depth!r}")
        self.task, self.depth, self.state_kind = task, tree_depth, state
        self.n = task.n_agents
        self.obs_dim, self.nodes = obs_dim(tree_depth), tree_nodes(tree_depth)
        self.tree = TreeObservation(tree_depth)  # flatland's tree, node for node; only for trains still running
        self.seed, self.episode = seed, 0  # the episode the next reset starts
        self.rng = np.random.default_rng(seed)
        self.new_warnings: list[str] = []

    # ----- episode bookkeeping -------------------------------------------------------------------------
    def reset(self, built: tuple | None = None) -> dict[str, np.ndarray]:
        """Start the next episode; ``built`` is its ``build_episode`` result when made ahead of time."""
        self.env, self.new_warnings = built or build_episode(self.task, self.seed, self.episode)
        self.episode += 1
        self.limit = self.env._max_episode_steps
        self.tree.reset(self.env)
        self.transitions = self.tree.transitions
        switch = self.tree.bits > 2
        target = np.zeros_like(switch)
        self.targets = np.zeros((self.n, 2), dtype=np.int64)
        for i, agent in enumerate(self.env.agents):
            (row, col), _ = next(iter(agent.targets))
            target[row, col] = True
            self.targets[i] = row, col
        special = switch | target
        leads_in = np.zeros(self.transitions.shape[:3], dtype=bool)
        for exit_ in range(4):
            leads_in |= self.transitions[..., exit_] & shifted(special, exit_)[..., None]
        self.switch, self.decision = switch, leads_in | special[..., None]
        self.random_id = self.rng.uniform(0, 1, self.n)
        self.arrived = np.zeros(self.n, dtype=bool)
        self.deadlocked = np.zeros(self.n, dtype=bool)
        self.native_return = np.zeros(self.n)
        self.distance = self._distances()
        return self._observe()

    def step(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        _, native, _, _ = self.env.step(self._flatland_actions(actions))
        self.native_return += [native[i] for i in range(self.n)]
        arrived = np.array([a.state == TrainState.DONE for a in self.env.agents])
        newly_deadlocked = self._update_deadlocks()
        distance = self._distances()
        reward = NEAR_COEFF * (self.distance - distance)
        reward += FINISH_REWARD * (arrived & ~self.arrived) + DEADLOCK_PENALTY * newly_deadlocked
        self.distance, self.arrived = distance, arrived
        finished = bool((arrived | self.deadlocked).all())
        timeout = self.env.dones["__all__"] and not finished
        done = finished or timeout
        out = self._observe()
        out.update(agent_reward=reward.astype(np.float32), done=np.bool_(done), episode_limit=np.bool_(timeout),
                   completion=np.float32(arrived.mean()), deadlocked=np.float32(self.deadlocked.mean()),
                   score=np.float32(self._normalised_score() if done else 0.0))
        return out

    def _normalised_score(self) -> float:
        """flatland's normalised score; an episode we end early (all trains arrived or deadlocked) gets the
        end-of-episode penalties flatland would give at its time limit, where stuck trains still stand."""
        returns = self.native_return.copy()
        if not self.env.dones["__all__"]:
            for i, agent in enumerate(self.env.agents):
                returns[i] += self.env.rewards.end_of_episode_reward(agent, self.env.distance_map, self.limit)
        return float(self.env.rewards.normalize(*returns, num_agents=self.n, max_episode_steps=self.limit))

    # ----- mechanics -----------------------------------------------------------------------------------
    def _configuration(self, agent):
        """(row, col, heading) the train stands on or will enter; None once it has arrived."""
        if agent.state.is_on_map_state():
            (row, col), heading = agent.current_configuration
        elif agent.state == TrainState.DONE:
            return None
        else:
            (row, col), heading = agent.initial_configuration
        return row, col, int(heading)

    def _ways(self, row: int, col: int, heading: int) -> list[int]:
        """Flatland actions of the available ways, left-most first (L, F, R)."""
        return [turn + 2 for turn in (-1, 0, 1) if self.transitions[row, col, heading, (heading + turn) % 4]]

    def _forced(self, i: int, agent) -> bool:
        """No choice this step: finished, not yet allowed to depart, or rolling between decision cells."""
        state = agent.state
        if self.arrived[i] or self.deadlocked[i] or state in (TrainState.WAITING, TrainState.MALFUNCTION_OFF_MAP):
            return True
        if state == TrainState.READY_TO_DEPART:
            return False
        row, col, heading = self._configuration(agent)
        return state == TrainState.MALFUNCTION or not self.decision[row, col, heading]

    def _flatland_actions(self, actions: np.ndarray) -> dict[int, int]:
        chosen = {}
        for i, agent in enumerate(self.env.agents):
            if self.arrived[i] or self.deadlocked[i]:
                continue
            choice = 0 if self._forced(i, agent) else int(actions[i])
            if choice == 2:
                if agent.state != TrainState.READY_TO_DEPART:
                    chosen[i] = STOP
                continue
            row, col, heading = self._configuration(agent)
            ways = self._ways(row, col, heading)
            chosen[i] = FORWARD if not ways else ways[min(choice, len(ways) - 1)]
        return chosen

    def _occupancy(self) -> dict[tuple[int, int], int]:
        """Cell -> the train standing on it."""
        return {a.current_configuration[0]: j for j, a in enumerate(self.env.agents) if a.state.is_on_map_state()}

    def _update_deadlocks(self) -> np.ndarray:
        """Mark trains that can never move again (see module docstring); returns the newly deadlocked."""
        where, exits = self._occupancy(), {}
        for i, agent in enumerate(self.env.agents):
            if agent.state.is_on_map_state() and not self.deadlocked[i]:
                row, col, heading = self._configuration(agent)
                cells = [(row + MOVES[d][0], col + MOVES[d][1]) for d in range(4) if self.transitions[row, col, heading, d]]
                if cells and all(c in where for c in cells):
                    exits[i] = [where[c] for c in cells]
        stuck = set(exits)  # greatest fixpoint: drop trains with a way out through a train that can move
        changed = True
        while changed:
            changed = False
            for i in list(stuck):
                if any(j not in stuck and not self.deadlocked[j] for j in exits[i]):
                    stuck.discard(i)
                    changed = True
        newly = np.zeros(self.n, dtype=bool)
        newly[list(stuck)] = True
        self.deadlocked |= newly
        return newly

    def _distances(self) -> np.ndarray:
        table = self.env.distance_map.get()
        out = np.zeros(self.n)
        for i, agent in enumerate(self.env.agents):
            where = self._configuration(agent)
            if where is not None:
                d = table[i, where[0], where[1], where[2]]
                out[i] = d if np.isfinite(d) else UNREACHABLE
        return out

    # ----- what the agents see -------------------------------------------------------------------------
    def _observe(self) -> dict[str, np.ndarray]:
        alive = ~(self.arrived | self.deadlocked)
        handles = np.flatnonzero(alive).tolist()
        trees = self.tree.get_many(handles)
        root = np.zeros((self.n, ROOT_FEATURES))
        nodes = np.full((self.n, self.nodes, N_NODE_FIELDS), np.inf)  # raw fields; parent distance last
        real = np.zeros((self.n, self.nodes), dtype=bool)
        avail = np.zeros((self.n, N_ACTIONS), dtype=bool)
        avail[:, 0] = True
        for i in handles:
            agent = self.env.agents[i]
            root[i] = self._root_features(i, agent, trees[i])
            self._walk(trees[i], nodes[i], real[i])
            if not self._forced(i, agent):
                avail[i, 1] = len(self._ways(*self._configuration(agent))) > 1
                avail[i, 2] = True
        obs = np.zeros((self.n, self.obs_dim), dtype=np.float32)
        obs[alive, :ROOT_FEATURES] = root[alive]
        obs[:, ROOT_FEATURES:] = np.where(real[..., None], node_features(nodes), 0.0).reshape(self.n, -1)
        state = obs.reshape(-1)
        if self.state_kind == "rich":
            state = np.concatenate([state, self._rich_state().reshape(-1)])
        return {"obs": obs, "state": state, "avail": avail, "alive": alive, "neighbours": self._neighbours(handles)}

    def _neighbours(self, handles: list[int]) -> np.ndarray:
        """``[i, j]``: train j stands on a cell train i's tree explored (MAMBA's Flatland message mask)."""
        where = self._occupancy()
        seen = np.zeros((self.n, self.n), dtype=bool)
        for i in handles:
            for row, col, _ in self.tree.visited.get(i, ()):
                j = where.get((row, col))
                if j is not None and j != i:
                    seen[i, j] = True
        return seen

    def _root_features(self, i: int, agent, root) -> list[float]:
        row, col, _ = self._configuration(agent)
        children = real_children(root)
        near_decision = len(children) == 1 and (children[0].dist_to_next_branch == 1 or children[0].dist_unusable_switch == 1)
        return [row / 100.0, col / 100.0, self.random_id[i], sign(self.deadlocked[i]),
                sign(not agent.state.is_malfunction_state()), norm_dist(root.dist_min_to_target),
                sign(agent.state.is_on_map_state() and self.switch[row, col]), sign(near_decision),
                sign(agent.state == TrainState.READY_TO_DEPART)]

    def _walk(self, root, fields: np.ndarray, real: np.ndarray) -> None:
        """Fill one train's node slots breadth first, two per node (real branches first, then padding)."""
        queue, slot = [(root, self.depth)], 0
        for parent, level in queue:
            children = real_children(parent)
            for k in range(2):
                child = children[k] if k < len(children) else None
                if child is not None:
                    fields[slot, :N_TREE_FIELDS] = child[:N_TREE_FIELDS]
                    fields[slot, PARENT_DIST] = parent.dist_min_to_target
                    real[slot] = True
                if level > 1:
                    queue.append((child, level - 1))
                slot += 1

    def _rich_state(self) -> np.ndarray:
        """Per train: position and target (fractions of the grid), heading one-hot, state one-hot (7),
        remaining malfunction / max duration, distance to target / (width + height), deadlocked, arrived."""
        h, w, span = self.task.height, self.task.width, self.task.height + self.task.width
        rich = np.zeros((self.n, RICH_FEATURES), dtype=np.float32)
        for i, agent in enumerate(self.env.agents):
            where = self._configuration(agent)
            if where is not None:
                rich[i, 0:2] = where[0] / h, where[1] / w
                rich[i, 2 + where[2]] = 1.0
            rich[i, 6:8] = self.targets[i, 0] / h, self.targets[i, 1] / w
            rich[i, 8 + int(agent.state)] = 1.0
            rich[i, 15] = agent.malfunction_handler.malfunction_down_counter / self.task.max_malfunction
            rich[i, 16] = min(self.distance[i] / span, 1.0)
            rich[i, 17:19] = self.deadlocked[i], self.arrived[i]
        return rich
