"""A batched torch re-simulation of SMAC v1 that needs no StarCraft II.

The *interface* is SMAC's, exactly (oxwhirl/smac smac/env/starcraft2/starcraft2.py, "ENV" below):
action indices and availability (ENV:1424-1468), observation layout and normalisation
(ENV:946-1125), global state (ENV:1135-1258), shaped reward scaled to a maximum of 20 (ENV:774-829),
win/loss/time-limit semantics (ENV:492-546, 1617-1632). The *mechanics* come from StarCraft II unit
data (``units.py``): hit points, shields with delayed regeneration, armour, bonus damage, multi-attack
weapons, cooldowns with SC2's random -1..+2 loop deviation, edge-to-edge weapon ranges, speeds, radii,
collisions (allies push allies, enemies block each other) with steering around units that do not make
way, medivac healing with energy, terrain, armies spawned as mirror images. The opponent is SC2's
automatic targeting during the map script's attack-move (``_enemy_targets``); the agents' own units
never act unordered (``_apply_actions``). Deliberate deviations are listed in docs/smac.md.

Every environment step simulates 8 game loops in ``substeps`` slices. No weapon fires faster than once
per 8 loops (the shortest period, the zergling's, is 11.1 loops). Cooldowns carry over between slices
exactly, so fire *rates* are exact at any slice length; the default 2 slices of 4 loops shift a shot's
phase by at most 4 loops (SC2 itself jitters each cooldown by -1..+2 loops), at a fraction of 4
slices' cost. Movement, targeting and collisions are recomputed every slice.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Sequence

import numpy as np
import torch

from envs.base import MultiAgentEnv, Step, first_unavailable
from envs.smac import units as U
from envs.smac.layout import N_NO_ATTACK, REWARD_SCALE_RATE, SIGHT_RANGE, smac_layout
from envs.smac.maps import ALLY_TYPE_ORDER, ENEMY_TYPE_BITS, MAP_SIZE, TERRAIN, SmacMap, get_map
from envs.spec import EnvSpec

STEP_LOOPS = 8  # SMAC step_mul (ENV:69)
MOVE_AMOUNT = 2.0  # ENV:70
SHOOT_RANGE = 6.0  # unit_shoot_range (ENV:840-842)
ACTION_NAMES = ("no-op", "stop", "move north", "move south", "move east", "move west")
# Target acquisition of the enemy's stock units (see ``_enemy_targets``). Scan range: 5, or the weapon range +
# 0.5 for ranged mobile units, the weapon range for static defence (Liquipedia, "Automatic Targeting").
SCAN_RANGE, SCAN_MARGIN = 5.0, 0.5
# Our choices, not documented game values: a unit that moved less than BLOCKED_PACE of its speed for
# BLOCKED_LOOPS while chasing gives its target up as unreachable and ignores it for SHUN_LOOPS.
BLOCKED_PACE, BLOCKED_LOOPS, SHUN_LOOPS = 0.25, 16.0, 32.0
REWARD_DEATH, REWARD_WIN = 10.0, 200.0  # ENV:84-91; REWARD_SCALE_RATE: envs/smac/layout.py
SPAWN_JITTER = 0.2
MOVE_DIRS = ((0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0))  # north, south, east, west


# Inductor settings for the simulator on CPU (docs/performance.md has the measurements): scalar
# loops (the unit axes, 8-60 long, are too short for SIMD lanes) and intermediates stored rather than
# recomputed when several consumers read them.
_CPU_OPTIONS = {"cpp.simdlen": 1, "realize_opcount_threshold": 10, "realize_reads_threshold": 2}


@dataclasses.dataclass
class _State:
    """Dynamic state of B battles; unit axis = allies (0..N-1) then enemies (N..N+E-1)."""

    pos: torch.Tensor  # [B,U,2]
    hp: torch.Tensor  # [B,U]
    shield: torch.Tensor  # [B,U]
    energy: torch.Tensor  # [B,U]
    cooldown: torch.Tensor  # [B,U] game loops until the weapon is ready
    since_hit: torch.Tensor  # [B,U] game loops since last damage (shield regeneration delay)
    alive: torch.Tensor  # [B,U] bool
    target: torch.Tensor  # [B,U] long, unit index or -1
    blocked: torch.Tensor  # [B,U] game loops an enemy has chased its target without getting anywhere
    shunned: torch.Tensor  # [B,U] long, the target an enemy gave up as unreachable, or -1
    shun_left: torch.Tensor  # [B,U] game loops before the shunned target may be acquired again
    moving: torch.Tensor  # [B,N] bool: an ally move order is active
    goal: torch.Tensor  # [B,N,2] move-order destination
    last_action: torch.Tensor  # [B,N] long, -1 after reset
    steps: torch.Tensor  # [B] long

    def assign(self, idx: torch.Tensor, other: _State) -> _State:
        """A copy with battles ``idx`` replaced by ``other``'s rows."""
        return _State(*(getattr(self, f.name).index_put((idx,), getattr(other, f.name))
                        for f in dataclasses.fields(self)))


def _distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances ``[B,I,J]`` between points ``a`` [B,I,2] and ``b`` [B,J,2]."""
    dx = a[..., 0].unsqueeze(2) - b[..., 0].unsqueeze(1)
    dy = a[..., 1].unsqueeze(2) - b[..., 1].unsqueeze(1)
    return (dx * dx + dy * dy).sqrt()


def _flow_field(grid: np.ndarray, goal: tuple[float, float]) -> np.ndarray:
    """Unit direction ``[x, y, 2]`` from each pathable cell toward ``goal`` along shortest 8-connected paths."""
    dist = np.full(grid.shape, np.inf)
    start = (int(goal[0]), int(goal[1]))
    dist[start] = 0.0
    heap = [(0.0, start)]
    steps = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
    while heap:
        d, (x, y) = heapq.heappop(heap)
        if d > dist[x, y]:
            continue
        for dx, dy in steps:
            nx, ny = x + dx, y + dy
            if not (0 <= nx < MAP_SIZE and 0 <= ny < MAP_SIZE and grid[nx, ny]):
                continue
            if dx and dy and not (grid[x + dx, y] and grid[x, y + dy]):  # no corner cutting
                continue
            nd = d + math.hypot(dx, dy)
            if nd < dist[nx, ny]:
                dist[nx, ny] = nd
                heapq.heappush(heap, (nd, (nx, ny)))
    field = np.zeros(grid.shape + (2,), dtype=np.float32)
    for x in range(MAP_SIZE):
        for y in range(MAP_SIZE):
            if not np.isfinite(dist[x, y]) or (x, y) == start:
                continue
            best = min(
                ((dist[x + dx, y + dy], dx, dy) for dx, dy in steps
                 if 0 <= x + dx < MAP_SIZE and 0 <= y + dy < MAP_SIZE and np.isfinite(dist[x + dx, y + dy])
                 and (not (dx and dy) or (grid[x + dx, y] and grid[x, y + dy]))),
                default=None,
            )
            if best is not None and best[0] < dist[x, y]:
                field[x, y] = np.array(best[1:]) / math.hypot(best[1], best[2])
    return field


def _formation(center: tuple[float, float], facing: np.ndarray, lateral: np.ndarray, n: int, spacing: float,
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


class SmacSimulator(MultiAgentEnv):
    """SMAC v1 with the simulator backend. See the module docstring.

    ``checked=True`` (default) validates every submitted action against the availability mask and
    raises a ``ValueError`` naming the environment, agent and action; ``checked=False`` skips the check
    (and its host synchronisation) for training loops whose masks are trusted. ``compile=True`` runs the
    step through ``torch.compile``: the battle step as one fixed-shape graph, restarts as one graph over
    any number of finished battles. Compiling takes tens of seconds per map and batch size the first time
    (less once inductor's on-disk cache holds it), after which a step is several times faster (figures in
    docs/performance.md). Trajectories equal eager ones up to float rounding (tested).
    """

    def __init__(self, spec: EnvSpec, num_envs: int = 1, device: str | torch.device = "cpu",
                 seed: int | Sequence[int] = 0, checked: bool = True, substeps: int = 2, compile: bool = False):
        """``spec``: the task's, from the SMAC family (``envs.make("smac/3m", backend="sim")`` builds one)."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if STEP_LOOPS % substeps:
            raise ValueError(f"substeps must divide {STEP_LOOPS}, got {substeps}")
        seeds = [seed] if isinstance(seed, int) else list(seed)
        if not seeds or num_envs % len(seeds):
            raise ValueError(f"num_envs ({num_envs}) must be a multiple of the number of seeds ({len(seeds)})")
        map_name = spec.task.split("/", 1)[1]
        self.map: SmacMap = get_map(map_name)
        self.layout = smac_layout(map_name)
        self.num_envs, self.device, self.checked = num_envs, torch.device(device), checked
        self.substeps, self.dt = substeps, STEP_LOOPS / substeps
        # One generator per seed member (a block of num_envs // members environments): a member's battles
        # draw from its own stream exactly as a simulator with that seed alone would.
        self.members, self.member_envs = len(seeds), num_envs // len(seeds)
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        self._build_static()
        self.spec = spec
        self.s: _State | None = None
        self._advance_fn, self._restart_fn = self._advance, self._restart
        if compile:
            # each map and batch size is a graph of its own; a suite run in one process may need more than
            # dynamo's default of 8 before it would silently fall back to eager
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            options = _CPU_OPTIONS if self.device.type == "cpu" else None
            self._advance_fn = torch.compile(self._advance, dynamic=False, fullgraph=True, options=options)
            self._restart_fn = torch.compile(self._restart, dynamic=True, fullgraph=True, options=options)

    # ------------------------------------------------------------------ static tables
    def _build_static(self) -> None:
        m, dev = self.map, self.device
        self.n_agents, self.n_enemies = N, E = m.n_agents, m.n_enemies
        self.n_units = N + E
        self.n_actions = self.layout.n_actions
        types = [U.UNITS[t] for t in m.ally_types + m.enemy_types]

        def col(fn, dtype=torch.float32):
            return torch.tensor([fn(t) for t in types], dtype=dtype, device=dev)

        self.hp_max, self.shield_max, self.armor = col(lambda t: t.hp), col(lambda t: t.shield), col(lambda t: t.armor)
        self.speed = col(lambda t: t.speed / U.LOOPS_PER_SECOND)  # per game loop
        self.radius = col(lambda t: t.radius)
        self.light, self.armored = col(lambda t: t.light, torch.bool), col(lambda t: t.armored, torch.bool)
        self.biological, self.air = col(lambda t: t.biological, torch.bool), col(lambda t: t.air, torch.bool)
        self.damage, self.attacks = col(lambda t: t.damage), col(lambda t: float(t.attacks))
        self.bonus_light = col(lambda t: t.bonus_damage if t.bonus_vs == "light" else 0.0)
        self.bonus_armored = col(lambda t: t.bonus_damage if t.bonus_vs == "armored" else 0.0)
        self.weapon_range = col(lambda t: U.MEDIVAC_HEAL_RANGE if t.healer else t.weapon_range)
        self.period = col(lambda t: t.weapon_period)
        self.hits_ground, self.hits_air = col(lambda t: t.hits_ground, torch.bool), col(lambda t: t.hits_air, torch.bool)
        self.hp_regen = col(lambda t: t.hp_regen / U.LOOPS_PER_SECOND)
        self.healer = col(lambda t: t.healer, torch.bool)
        # fixed by the map: plain bools, so the step never reads a tensor back to the host (a sync on GPU)
        self.any_healer = any(t.healer for t in types)
        self.enemy_healer = any(t.healer for t in types[N:])
        self.armed = col(lambda t: t.has_weapon, torch.bool)
        self.scan = col(lambda t: max(SCAN_RANGE, t.weapon_range + (SCAN_MARGIN if t.speed > 0 and t.weapon_range > 1 else 0)))
        self.is_enemy = torch.arange(self.n_units, device=dev) >= N
        self.move_dirs = torch.tensor(MOVE_DIRS, device=dev)
        self.obs_shield_max = col(lambda t: U.SMAC_MAX_SHIELD.get(t.name, 1.0))
        self.state_cd_max = col(lambda t: t.smac_max_cooldown)

        # unit-type one-hot bits (ENV:1387-1420)
        u = m.unit_type_bits
        onehot = torch.zeros(self.n_units, max(u, 1), device=dev)
        if u:
            for i, name in enumerate(m.ally_types):
                onehot[i, ALLY_TYPE_ORDER[m.map_type].index(name)] = 1
            for k, name in enumerate(m.enemy_types):
                onehot[N + k, ENEMY_TYPE_BITS[m.map_type][name]] = 1
        self.type_onehot = onehot[:, :u]
        self.shield_bits_ally, self.shield_bits_enemy = self.layout.ally_shield_bits, self.layout.enemy_shield_bits
        self.obs_dim, self.state_dim = self.layout.obs_dim, self.layout.state_dim
        self.max_reward = REWARD_DEATH * E + REWARD_WIN + float((self.hp_max[N:] + self.shield_max[N:]).sum())

        grid = TERRAIN[m.terrain]
        self.grid = torch.tensor(grid, device=dev)
        self.flow = None
        if m.attack_point is not None and not self._straight_path_clear(grid, m.enemy_spawn, m.attack_point):
            self.flow = torch.tensor(_flow_field(grid, m.attack_point), device=dev)
        self.attack_point = torch.tensor(m.attack_point or (0.0, 0.0), device=dev)
        spacing_a = 2 * max(t.radius for t in types[:N])
        spacing_e = 2 * max(t.radius for t in types[N:])
        facing = np.subtract(m.enemy_spawn, m.ally_spawn)
        facing = facing / np.linalg.norm(facing)
        lateral = np.array([-facing[1], facing[0]])
        if m.ally_spawn_2 is not None:  # one unit at each named point
            ally_pts = np.array([m.ally_spawn, m.ally_spawn_2], dtype=np.float32)
        else:
            ally_pts = _formation(m.ally_spawn, facing, lateral, N, spacing_a, grid)
        enemy_pts = _formation(m.enemy_spawn, -facing, lateral, E, spacing_e, grid)
        self.spawn = torch.tensor(np.concatenate([ally_pts, enemy_pts]), device=dev)
        self.radius_sum = self.radius.view(-1, 1) + self.radius.view(1, -1)
        self.same_team = self.is_enemy.view(-1, 1) == self.is_enemy.view(1, -1)
        self.not_self = 1.0 - torch.eye(self.n_units, device=dev)
        self.others = torch.tensor([[j for j in range(N) if j != i] for i in range(N)], device=dev,
                                   dtype=torch.long).reshape(N, N - 1)

    @staticmethod
    def _straight_path_clear(grid: np.ndarray, a, b) -> bool:
        for t in np.linspace(0.0, 1.0, 200):
            x, y = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
            if not grid[int(x), int(y)]:
                return False
        return True

    # ------------------------------------------------------------------ helpers
    def _spawn_noise(self, counts: list[int]) -> torch.Tensor:
        """Uniform spawn jitter ``[sum(counts), U, 2]`` for ``counts[k]`` new battles of member ``k``, each
        member's from its own generator."""
        return torch.cat([torch.rand(c, self.n_units, 2, generator=g, device=self.device)
                          for g, c in zip(self.generators, counts)])

    def _cooldown_jitter(self) -> torch.Tensor:
        """SC2 adds a random -1..+2 game-loop deviation to each weapon cooldown (pysc2
        docs/environment.md): one draw per slice and unit, made before the (compilable) step."""
        return torch.cat([torch.randint(-1, 3, (self.substeps, self.member_envs, self.n_units), generator=g,
                                        device=self.device) for g in self.generators], dim=1)

    def _pathable(self, pos: torch.Tensor) -> torch.Tensor:
        x, y = pos[..., 0], pos[..., 1]
        inside = (x >= 0) & (x < MAP_SIZE) & (y >= 0) & (y < MAP_SIZE)
        ix = x.clamp(0, MAP_SIZE - 1).long()
        iy = y.clamp(0, MAP_SIZE - 1).long()
        return inside & self.grid[ix, iy]

    def _new_state(self, noise: torch.Tensor) -> _State:
        """Fresh battles, one per row of ``noise`` ``[b,U,2]`` (uniform in [0,1): spawn jitter)."""
        dev, N, Un, b = self.device, self.n_agents, self.n_units, noise.shape[0]
        spawn = self.spawn.expand(b, Un, 2)
        pos = spawn + (noise * 2 - 1) * SPAWN_JITTER
        pos = torch.where(self._pathable(pos).unsqueeze(-1), pos, spawn)
        energy = torch.where(self.healer, U.MEDIVAC_START_ENERGY, 0.0).expand(b, Un).clone()
        return _State(
            pos=pos, hp=self.hp_max.expand(b, Un).clone(), shield=self.shield_max.expand(b, Un).clone(),
            energy=energy, cooldown=torch.zeros(b, Un, device=dev),
            since_hit=torch.full((b, Un), 1e4, device=dev), alive=torch.ones(b, Un, dtype=torch.bool, device=dev),
            target=torch.full((b, Un), -1, dtype=torch.long, device=dev),
            blocked=torch.zeros(b, Un, device=dev), shunned=torch.full((b, Un), -1, dtype=torch.long, device=dev),
            shun_left=torch.zeros(b, Un, device=dev),
            moving=torch.zeros(b, N, dtype=torch.bool, device=dev), goal=torch.zeros(b, N, 2, device=dev),
            last_action=torch.full((b, N), -1, dtype=torch.long, device=dev),
            steps=torch.zeros(b, dtype=torch.long, device=dev),
        )

    def _edge(self, a: torch.Tensor, b: torch.Tensor, ra: slice, rb: slice) -> torch.Tensor:
        """Edge-to-edge distances between unit sets ``a`` [B,I,2] and ``b`` [B,J,2]."""
        return _distance(a, b) - self.radius[ra].view(1, -1, 1) - self.radius[rb].view(1, 1, -1)

    @staticmethod
    def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``x[b, idx[b, i]]`` for ``x`` of shape [B,U] or [B,U,D] and ``idx`` [B,K] (clamped)."""
        idx = idx.clamp(min=0)
        if x.dim() == 3:
            return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return x.gather(1, idx)

    # ------------------------------------------------------------------ interface
    def reset(self) -> Step:
        self.s = self._new_state(self._spawn_noise([self.member_envs] * self.members))
        obs, state, avail, alive = self._observe(self.s)
        zeros = torch.zeros(self.num_envs, device=self.device)
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        info = {"won": no, "episode_limit": no, "dead_allies": zeros, "dead_enemies": zeros}
        self._avail = avail
        return Step(obs, state, avail, alive, zeros, no, info, obs, state, avail, alive)

    def step(self, actions: torch.Tensor) -> Step:
        if self.s is None:
            raise RuntimeError("call reset() before step()")
        actions = actions.to(self.device, torch.long)
        if actions.shape != (self.num_envs, self.n_agents):
            raise ValueError(f"actions must have shape {(self.num_envs, self.n_agents)}, got {tuple(actions.shape)}")
        if self.checked:
            self._check(actions)
        reward, done, info, final = self._advance_fn(self.s, actions, self._cooldown_jitter())
        obs, state, avail, alive = final
        if bool(done.any()):  # one host read per step; finished battles restart from a fresh spawn
            idx = done.nonzero().squeeze(1)
            counts = [idx.numel()] if self.members == 1 else \
                torch.bincount(idx // self.member_envs, minlength=self.members).tolist()
            noise = self._spawn_noise(counts)
            self.s, (obs, state, avail, alive) = self._restart_fn(self.s, final, idx, noise)
        self._avail = avail
        return Step(obs, state, avail, alive, reward, done, info, *final)

    def _advance(self, s: _State, actions: torch.Tensor, jitter: torch.Tensor):
        """One environment step of every battle (updates ``s`` in place): reward, done, info and the
        observation before any restart. Fixed shapes, no host reads: one graph under ``compile=True``."""
        prev_hs = (s.hp + s.shield) * s.alive
        prev_alive = s.alive.clone()
        self._apply_actions(s, actions)
        for k in range(self.substeps):
            self._substep(s, jitter[k])
        s.steps += 1
        reward, done, info = self._outcome(s, prev_hs, prev_alive)
        return reward, done, info, self._observe(s)

    def _restart(self, s: _State, final: tuple, idx: torch.Tensor, noise: torch.Tensor):
        """Battles ``idx`` start afresh (spawn jitter from ``noise`` [k,U,2]); the others keep their state
        and observation. Returns new tensors, so ``final`` stays the pre-restart observation."""
        fresh = self._new_state(noise)
        s = s.assign(idx, fresh)
        return s, tuple(full.index_put((idx,), part) for full, part in zip(final, self._observe(fresh)))

    def get_state(self) -> dict:
        """Everything needed to continue the same episodes bit for bit (used by checkpoints)."""
        return {"battle": dataclasses.asdict(self.s), "generators": [g.get_state() for g in self.generators],
                "avail": self._avail}

    def set_state(self, state: dict) -> None:
        if len(state["generators"]) != self.members:
            raise ValueError(f"snapshot of {len(state['generators'])} members for a simulator of {self.members}")
        self.s = _State(**state["battle"])
        for g, saved in zip(self.generators, state["generators"]):
            g.set_state(saved)
        self._avail = state["avail"]

    def member_state(self, member: int) -> dict:
        """Member ``member``'s battles and generator, as a one-member simulator's :meth:`get_state`."""
        rows = slice(member * self.member_envs, (member + 1) * self.member_envs)
        return {"battle": {k: v[rows].clone() for k, v in dataclasses.asdict(self.s).items()},
                "generators": [self.generators[member].get_state()], "avail": self._avail[rows].clone()}

    def load_member_state(self, member: int, state: dict) -> None:
        """Continue member ``member`` from a one-member snapshot (after :meth:`reset`); the others keep theirs."""
        rows = slice(member * self.member_envs, (member + 1) * self.member_envs)
        for name, value in state["battle"].items():
            getattr(self.s, name)[rows] = value
        self.generators[member].set_state(state["generators"][0])
        self._avail = self._avail.clone()  # the last Step handed out shares it
        self._avail[rows] = state["avail"]

    def _check(self, actions: torch.Tensor) -> None:
        bad = first_unavailable(self._avail, actions)
        if bad is not None:
            b, i, a = bad
            name = ACTION_NAMES[a] if 0 <= a < N_NO_ATTACK else f"attack/heal target {a - N_NO_ATTACK}"
            valid = self._avail[b, i].nonzero().squeeze(1).tolist()
            raise ValueError(f"environment {b}, agent {i}: action {a} ({name}) is not available; "
                             f"available actions: {valid}")

    # ------------------------------------------------------------------ dynamics
    def _apply_actions(self, s: _State, actions: torch.Tensor) -> None:
        """Agents' orders. Only orders give agent units targets: SMAC's map files define every agent unit type
        (``Marine_RL``, ``Stalker_RL``, ... in ``Base.SC2Data/GameData/UnitData.xml``) with
        ``DefaultAcquireLevel Passive`` and ``Response Nothing``, so a stopped or moving agent unit never fires
        or reacts on its own, unlike the enemy's stock units."""
        N = self.n_agents
        alive = s.alive[:, :N]
        is_move = (actions >= 2) & (actions < N_NO_ATTACK)
        dirs = self.move_dirs[(actions - 2).clamp(0, 3)]
        s.goal = torch.where(is_move.unsqueeze(-1), s.pos[:, :N] + MOVE_AMOUNT * dirs, s.goal)
        s.moving = is_move & alive
        attack = (actions >= N_NO_ATTACK) & alive
        j = actions - N_NO_ATTACK
        tgt = torch.where(self.healer[:N], j, j + N)  # a medivac's slot j is ally j (ENV:1450-1459)
        s.target[:, :N] = torch.where(attack, tgt, torch.full_like(tgt, -1))
        s.last_action = actions.clone()  # the caller keeps its tensor; resets write into ours

    def _substep(self, s: _State, jitter: torch.Tensor) -> None:
        N, dt = self.n_agents, self.dt
        pos, alive = s.pos, s.alive
        edge = self._edge(pos[:, N:], pos, slice(N, None), slice(None))  # [B,E,U] enemy rows

        self._enemy_targets(s, edge)
        # drop targets that died; an ally attack order on a dead unit ends (unit idles)
        tgt_alive = self._gather(alive, s.target) & (s.target >= 0)
        s.target = torch.where(tgt_alive, s.target, torch.full_like(s.target, -1))
        has_target = s.target >= 0

        tpos = self._gather(pos, s.target)
        t_edge = (tpos - pos).norm(dim=-1) - self.radius - self._gather(self.radius.expand_as(s.hp), s.target)
        in_range = has_target & (t_edge <= self.weapon_range + 1e-4)

        # ---- movement goals
        goal = pos.clone()
        need = torch.zeros_like(s.hp)  # distance to travel before stopping
        chase = has_target & ~in_range
        goal = torch.where(chase.unsqueeze(-1), tpos, goal)
        need = torch.where(chase, t_edge - self.weapon_range, need)
        goal[:, :N] = torch.where(s.moving.unsqueeze(-1), s.goal, goal[:, :N])
        need[:, :N] = torch.where(s.moving, (s.goal - pos[:, :N]).norm(dim=-1), need[:, :N])
        self._enemy_idle_goals(s, has_target, goal, need)

        heading = goal - pos
        heading = heading / heading.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        if self.flow is not None:  # idle enemies follow the shortest path around walls
            idle = self.is_enemy & ~has_target & alive & (self.attack_point - pos).norm(dim=-1).gt(0.5)
            cell = pos.clamp(0, MAP_SIZE - 1e-3).long()
            flow = self.flow[cell[..., 0], cell[..., 1]]
            heading = torch.where((idle & flow.abs().sum(-1).gt(0)).unsqueeze(-1), flow, heading)
        travel = torch.minimum(self.speed * dt, need.clamp(min=0)) * alive
        heading = self._steer(s, heading, travel)
        proposal = pos + heading * travel.unsqueeze(-1)
        new_pos = self._slide(pos, proposal)
        new_pos = self._collide(s, new_pos, (new_pos - pos).norm(dim=-1))
        s.pos = new_pos
        stuck = chase & self.is_enemy & (self.speed > 0) & (s.pos - pos).norm(dim=-1).lt(BLOCKED_PACE * self.speed * dt)
        s.blocked = torch.where(stuck, s.blocked + dt, torch.zeros_like(s.blocked))

        # ---- weapons and healing
        self._fire(s, in_range, jitter)
        self._regenerate(s)

    def _enemy_targets(self, s: _State, edge: torch.Tensor) -> None:
        """Target acquisition of the enemy's units, which SMAC's map script attack-moves (``gf_EnemyAttack``).

        They are stock units (acquire level Offensive), so SC2's automatic targeting picks their targets, as
        Liquipedia's "Automatic Targeting" page and pysc2's environment docs describe it: candidates are the
        valid targets within scan range; a unit attacking this one ranks first, then threats (units that can
        return fire, or a healer at work, which calls for help), then the nearest. A target is kept until it
        dies or leaves scan range, or until the unit could fire at another of at least its priority while its
        own target is out of weapon range, or at one of higher priority. Our addition for SC2's pathing: a
        target chased without getting anywhere (``BLOCKED_LOOPS``) is unreachable and ignored for a while,
        as SC2's units give up a target their path cannot reach and pick one they can."""
        N = self.n_agents
        e_edge = edge[:, :, :N]  # [B,E,N]
        can_hit = torch.where(self.air[:N].view(1, 1, N), self.hits_air[N:].view(1, -1, 1),
                              self.hits_ground[N:].view(1, -1, 1))
        valid = s.alive[:, :N].unsqueeze(1) & can_hit & s.alive[:, N:].unsqueeze(2) & self.armed[N:].view(1, -1, 1)
        enemy_ids = torch.arange(N, self.n_units, device=self.device).view(1, -1, 1)
        attacking_me = s.target[:, :N].unsqueeze(1) == enemy_ids
        returns_fire = torch.where(self.air[N:].view(1, -1, 1), self.hits_air[:N].view(1, 1, N),
                                   self.hits_ground[:N].view(1, 1, N)) & self.armed[:N].view(1, 1, N)
        healing = (self.healer[:N] & (s.target[:, :N] >= 0)).unsqueeze(1)
        priority = 2 * attacking_me.long() + (returns_fire | healing).long()
        current = s.target[:, N:]

        # give up a target chased without progress; ignore it while the shun lasts
        unreachable = (s.blocked[:, N:] >= BLOCKED_LOOPS) & (current >= 0)
        s.shunned[:, N:] = torch.where(unreachable, current, s.shunned[:, N:])
        s.shun_left[:, N:] = torch.where(unreachable, torch.full_like(s.shun_left[:, N:], SHUN_LOOPS),
                                         (s.shun_left[:, N:] - self.dt).clamp(min=0))
        s.blocked[:, N:] = torch.where(unreachable, torch.zeros_like(s.blocked[:, N:]), s.blocked[:, N:])
        shunned = (s.shun_left[:, N:] > 0).unsqueeze(2) & (torch.arange(N, device=self.device).view(1, 1, N)
                                                           == s.shunned[:, N:].unsqueeze(2))
        candidate = valid & ((e_edge <= self.scan[N:].view(1, -1, 1)) | attacking_me) & ~shunned

        held = (current >= 0) & (current < N) & ~unreachable
        slot = current.clamp(0, N - 1).unsqueeze(-1)
        held &= candidate.gather(2, slot).squeeze(-1)
        held_priority = priority.gather(2, slot)
        in_weapon_range = candidate & (e_edge <= self.weapon_range[N:].view(1, -1, 1) + 1e-4)
        held_in_range = in_weapon_range.gather(2, slot)
        better_in_range = in_weapon_range & ((priority > held_priority) | (~held_in_range & (priority >= held_priority)))
        keep = held & ~better_in_range.any(2)

        score = torch.where(candidate, e_edge - 1000.0 * priority, torch.full_like(e_edge, float("inf")))
        best_score, best = score.min(dim=2)
        chosen = torch.where(best_score.isfinite(), best, torch.full_like(best, -1))
        s.target[:, N:] = torch.where(keep, current, chosen)
        s.blocked[:, N:] = torch.where(keep, s.blocked[:, N:], torch.zeros_like(s.blocked[:, N:]))  # a new chase
        if self.enemy_healer:  # enemy medivacs heal the nearest damaged biological friend
            self._enemy_heal_targets(s, edge)

    def _enemy_heal_targets(self, s: _State, edge: torch.Tensor) -> None:
        N = self.n_agents
        hurt = s.alive[:, N:] & self.biological[N:] & (s.hp[:, N:] < self.hp_max[N:])
        score = torch.where(hurt.unsqueeze(1), edge[:, :, N:], torch.full_like(edge[:, :, N:], float("inf")))
        best_score, best = score.min(dim=2)
        heal_tgt = torch.where(best_score.isfinite(), best + N, torch.full_like(best, -1))
        s.target[:, N:] = torch.where(self.healer[N:], heal_tgt, s.target[:, N:])

    def _enemy_idle_goals(self, s: _State, has_target, goal, need) -> None:
        """Enemies without a target attack-move to the attack point; medivacs follow their army."""
        if self.map.attack_point is None:
            return
        N = self.n_agents
        idle = ~has_target[:, N:]
        pos = s.pos[:, N:]
        point = self.attack_point.expand_as(pos)
        ground = s.alive[:, N:] & ~self.healer[N:]
        centroid = (pos * ground.unsqueeze(-1)).sum(1, keepdim=True) / ground.sum(1, keepdim=True).clamp(min=1).unsqueeze(-1)
        point = torch.where(self.healer[N:].view(1, -1, 1), centroid.expand_as(pos), point)
        goal[:, N:] = torch.where(idle.unsqueeze(-1), point, goal[:, N:])
        need[:, N:] = torch.where(idle, (point - pos).norm(dim=-1), need[:, N:])

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
        gap = _distance(step, pos) - self.radius_sum  # [B,U,U] after i's step, to j where it stands
        rel = pos.unsqueeze(1) - pos.unsqueeze(2)  # [B,U,U,2] from i to j
        ahead = (rel * heading.unsqueeze(2)).sum(-1) > 0
        firm = ~self.same_team | ~moving.unsqueeze(1)
        blocks = (gap < 0) & ahead & firm & ground.unsqueeze(2) & ground.unsqueeze(1) & moving.unsqueeze(2)
        nearest = torch.where(blocks, gap, torch.full_like(gap, float("inf"))).argmin(2, keepdim=True)
        to_blocker = rel.gather(2, nearest.unsqueeze(-1).expand(-1, -1, 1, 2)).squeeze(2)
        cross = to_blocker[..., 0] * heading[..., 1] - to_blocker[..., 1] * heading[..., 0]
        side = torch.where(cross >= 0, 1.0, -1.0).unsqueeze(-1)  # left of the blocker when the heading leans left
        tangent = torch.stack([-to_blocker[..., 1], to_blocker[..., 0]], -1) * side
        tangent = tangent / tangent.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        return torch.where(blocks.any(2).unsqueeze(-1), tangent, heading)

    def _slide(self, pos: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        """Ground units cannot enter unpathable cells; they slide along walls axis by axis."""
        ok = self._pathable(proposal) | self.air
        x_only = torch.stack([proposal[..., 0], pos[..., 1]], -1)
        y_only = torch.stack([pos[..., 0], proposal[..., 1]], -1)
        ok_x, ok_y = self._pathable(x_only), self._pathable(y_only)
        out = torch.where(ok_y.unsqueeze(-1), y_only, pos)
        out = torch.where(ok_x.unsqueeze(-1), x_only, out)
        return torch.where(ok.unsqueeze(-1), proposal, out).clamp(0, MAP_SIZE - 1e-3)

    def _collide(self, s: _State, pos: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        """Separate overlapping ground units. Friends share the push; between enemies the unit that
        moved is pushed back (SC2 units never push enemy units, which is what makes wall-offs work).
        The push on i is sum_j w_ij (pos_i - pos_j)."""
        ground = (s.alive & ~self.air).float()
        dist = _distance(pos, pos).clamp(min=1e-4)
        overlap = (self.radius_sum - dist).clamp(min=0) * ground.unsqueeze(2) * ground.unsqueeze(1)
        m_i, m_j = moved.unsqueeze(2), moved.unsqueeze(1)
        share = torch.where(self.same_team, 0.5, (m_i + 1e-6) / (m_i + m_j + 2e-6))
        w = overlap * share * self.not_self / dist
        pushed = pos + (w.unsqueeze(-1) * (pos.unsqueeze(2) - pos.unsqueeze(1))).sum(2)
        return torch.where((self._pathable(pushed) | (ground == 0)).unsqueeze(-1), pushed, pos)

    def _fire(self, s: _State, in_range: torch.Tensor, jitter: torch.Tensor) -> None:
        Un, dt = self.n_units, self.dt
        tgt = s.target
        t_air = self._gather(self.air.expand_as(s.alive), tgt)
        can_hit = torch.where(t_air, self.hits_air, self.hits_ground)
        ready = s.cooldown <= dt
        fire = s.alive & in_range & can_hit & ready & self.armed
        per_attack = self.damage + self.bonus_light * self._gather(self.light.expand_as(s.alive), tgt) \
            + self.bonus_armored * self._gather(self.armored.expand_as(s.alive), tgt)
        slot = torch.where(fire, tgt, torch.full_like(tgt, Un))  # slot Un collects nothing
        raw = torch.zeros(s.hp.shape[0], Un + 1, device=self.device)
        raw.scatter_add_(1, slot, per_attack * self.attacks * fire)
        n_hits = torch.zeros_like(raw).scatter_add_(1, slot, self.attacks * fire)
        raw, n_hits = raw[:, :Un], n_hits[:, :Un]
        # shields absorb first; the spill-over loses armour once per attack, never below 0.5 per attack
        absorbed = torch.minimum(s.shield, raw)
        rest = raw - absorbed
        hp_loss = torch.where(rest > 0, torch.maximum(rest - self.armor * n_hits, U.MIN_DAMAGE * n_hits), rest)
        hit = raw > 0
        s.shield = s.shield - absorbed
        s.hp = s.hp - hp_loss
        s.since_hit = torch.where(hit, torch.zeros_like(s.since_hit), s.since_hit + dt)
        fired_cd = s.cooldown.clamp(min=0) + self.period + jitter - dt
        s.cooldown = torch.where(fire, fired_cd, (s.cooldown - dt).clamp(min=0))

        if self.any_healer:
            self._heal(s, in_range)
        dead = s.alive & (s.hp <= 0)
        s.alive = s.alive & ~dead
        s.hp = torch.where(s.alive, s.hp, torch.zeros_like(s.hp))
        s.shield = torch.where(s.alive, s.shield, torch.zeros_like(s.shield))

    def _heal(self, s: _State, in_range: torch.Tensor) -> None:
        tgt = s.target
        t_hp, t_max = self._gather(s.hp, tgt), self._gather(self.hp_max.expand_as(s.hp), tgt)
        t_bio = self._gather(self.biological.expand_as(s.alive), tgt)
        healing = s.alive & self.healer & in_range & t_bio & (t_hp < t_max)
        amount = torch.minimum(torch.full_like(t_hp, U.MEDIVAC_HEAL_RATE / U.LOOPS_PER_SECOND * self.dt),
                               torch.minimum(t_max - t_hp, s.energy * U.MEDIVAC_HP_PER_ENERGY)) * healing
        s.energy = s.energy - amount / U.MEDIVAC_HP_PER_ENERGY
        slot = torch.where(healing, tgt, torch.full_like(tgt, self.n_units))
        gain = torch.zeros(s.hp.shape[0], self.n_units + 1, device=self.device).scatter_add_(1, slot, amount)
        s.hp = s.hp + gain[:, : self.n_units] * s.alive

    def _regenerate(self, s: _State) -> None:
        dt = self.dt
        regen_shield = s.alive & (s.since_hit >= U.SHIELD_REGEN_DELAY)
        s.shield = torch.where(regen_shield, (s.shield + U.SHIELD_REGEN_RATE / U.LOOPS_PER_SECOND * dt)
                               .minimum(self.shield_max), s.shield)
        s.hp = torch.where(s.alive, (s.hp + self.hp_regen * dt).minimum(self.hp_max), s.hp)
        s.energy = torch.where(s.alive & self.healer, (s.energy + U.MEDIVAC_ENERGY_REGEN / U.LOOPS_PER_SECOND * dt)
                               .clamp(max=U.MEDIVAC_MAX_ENERGY), s.energy)

    # ------------------------------------------------------------------ reward and termination
    def _outcome(self, s: _State, prev_hs: torch.Tensor, prev_alive: torch.Tensor):
        """SMAC's reward_battle with default options (reward_only_positive, ENV:774-829) and battle end."""
        N = self.n_agents
        hs = (s.hp + s.shield) * s.alive
        died = prev_alive & ~s.alive
        e_prev, e_now, e_died = prev_hs[:, N:], hs[:, N:], died[:, N:]
        delta_enemy = torch.where(e_died, e_prev, (e_prev - e_now) * prev_alive[:, N:]).sum(1)
        delta_deaths = REWARD_DEATH * e_died.sum(1)
        reward = (delta_enemy + delta_deaths).abs()

        fighters = ~self.healer  # on MMM maps a side with only medivacs left has lost (ENV:1617-1632)
        allies_left = (s.alive[:, :N] & fighters[:N]).any(1)
        enemies_left = (s.alive[:, N:] & fighters[N:]).any(1)
        lost = ~allies_left & (enemies_left | self.map.has_healer)  # the loss test comes first
        won = allies_left & ~enemies_left
        draw = ~allies_left & ~enemies_left & ~lost
        reward = reward + REWARD_WIN * won
        reward = reward / (self.max_reward / REWARD_SCALE_RATE)
        battle_over = lost | won | draw
        timeout = ~battle_over & (s.steps >= self.map.limit)
        info = {
            "won": won,
            "episode_limit": timeout,
            "dead_allies": (~s.alive[:, :N]).sum(1).float(),
            "dead_enemies": (~s.alive[:, N:]).sum(1).float(),
        }
        return reward, battle_over | timeout, info

    # ------------------------------------------------------------------ observations
    def _avail_actions(self, s: _State) -> torch.Tensor:
        N, E = self.n_agents, self.n_enemies
        alive = s.alive[:, :N]
        pos = s.pos[:, :N]
        probe = pos.unsqueeze(2) + self.move_dirs.view(1, 1, 4, 2) * (MOVE_AMOUNT / 2)  # half a move (ENV:883-899)
        move = self._pathable(probe.trunc()) & alive.unsqueeze(-1)
        centre = (s.pos[:, N:].unsqueeze(1) - pos.unsqueeze(2)).norm(dim=-1)  # [B,N,E]
        attack = s.alive[:, N:].unsqueeze(1) & (centre <= SHOOT_RANGE) & alive.unsqueeze(-1)
        if self.map.has_healer:  # medivac slots 6+j are allies j that are not medivacs
            ally_d = (pos.unsqueeze(1) - pos.unsqueeze(2)).norm(dim=-1)
            heal = (s.alive[:, :N] & ~self.healer[:N]).unsqueeze(1) & (ally_d <= SHOOT_RANGE) & alive.unsqueeze(-1)
            heal = torch.nn.functional.pad(heal, (0, E - N))
            attack = torch.where(self.healer[:N].view(1, N, 1), heal, attack)
        # no-op only when dead, stop when alive (ENV:1424-1468)
        return torch.cat([~alive.unsqueeze(-1), alive.unsqueeze(-1), move, attack], -1)

    def _observe(self, s: _State):
        N, E = self.n_agents, self.n_enemies
        sa, se = self.shield_bits_ally, self.shield_bits_enemy
        avail = self._avail_actions(s)
        alive = s.alive[:, :N]
        pos = s.pos[:, :N]
        hp_frac = s.hp / self.hp_max
        sh_frac = s.shield / self.obs_shield_max
        b = s.hp.shape[0]

        def unit_features(idx, shield_bits, seen_flag):
            """[B,N,K,F] features of units ``idx`` as seen by each agent (ENV:995-1083)."""
            rel = s.pos[:, idx].unsqueeze(1) - pos.unsqueeze(2)  # [B,N,K,2]
            d = rel.norm(dim=-1)
            visible = s.alive[:, idx].unsqueeze(1) & (d < SIGHT_RANGE) & alive.unsqueeze(-1)
            k = len(idx)
            parts = [seen_flag, (d / SIGHT_RANGE).unsqueeze(-1), rel / SIGHT_RANGE,
                     hp_frac[:, idx].view(b, 1, k, 1).expand(b, N, k, 1)]
            if shield_bits:
                parts.append(sh_frac[:, idx].view(b, 1, k, 1).expand(b, N, k, 1))
            parts.append(self.type_onehot[idx].view(1, 1, k, -1).expand(b, N, k, -1))
            return torch.cat(parts, -1) * visible.unsqueeze(-1)

        enemy_idx = list(range(N, N + E))
        enemy_feats = unit_features(enemy_idx, se, avail[:, :, N_NO_ATTACK:].float().unsqueeze(-1))
        ally_feats = unit_features(list(range(N)), sa, torch.ones(b, N, N, 1, device=self.device))
        ally_feats = ally_feats.gather(2, self.others.view(1, N, N - 1, 1).expand(b, N, N - 1, ally_feats.shape[-1]))
        own = [hp_frac[:, :N].unsqueeze(-1)]
        if sa:
            own.append(sh_frac[:, :N].unsqueeze(-1))
        own.append(self.type_onehot[:N].expand(b, N, -1))
        obs = torch.cat([avail[:, :, 2:6].float(), enemy_feats.flatten(2), ally_feats.flatten(2), torch.cat(own, -1)], -1)
        obs = obs * alive.unsqueeze(-1)

        # global state (ENV:1135-1258)
        centre = (s.pos - MAP_SIZE / 2) / MAP_SIZE
        cd = torch.where(self.healer, s.energy / U.MEDIVAC_MAX_ENERGY, s.cooldown / self.state_cd_max)
        ally = [hp_frac[:, :N, None], cd[:, :N, None], centre[:, :N]]
        if sa:
            ally.append(sh_frac[:, :N, None])
        ally.append(self.type_onehot[:N].expand(b, N, -1))
        enemy = [hp_frac[:, N:, None], centre[:, N:]]
        if se:
            enemy.append(sh_frac[:, N:, None])
        enemy.append(self.type_onehot[N:].expand(b, E, -1))
        ally_rows = torch.cat(ally, -1) * alive.unsqueeze(-1)
        enemy_rows = torch.cat(enemy, -1) * s.alive[:, N:].unsqueeze(-1)
        last = torch.nn.functional.one_hot(s.last_action.clamp(min=0), self.n_actions) * (s.last_action >= 0).unsqueeze(-1)
        state = torch.cat([ally_rows.flatten(1), enemy_rows.flatten(1), last.flatten(1).float()], -1)
        return obs, state, avail, alive.clone()
