"""A batched torch re-simulation of SMAC v1 that needs no StarCraft II.

The *interface* is SMAC's, exactly (oxwhirl/smac smac/env/starcraft2/starcraft2.py, "ENV" below):
action indices and availability (ENV:1424-1468), observation layout and normalisation
(ENV:946-1125), global state (ENV:1135-1258), shaped reward scaled to a maximum of 20 (ENV:774-829),
win/loss/time-limit semantics (ENV:492-546, 1617-1632). The *mechanics* come from StarCraft II unit
data (``units.py``): hit points, shields with delayed regeneration, armour, bonus damage, multi-attack
weapons, cooldowns with SC2's random -1..+2 loop deviation, edge-to-edge weapon ranges, speeds, radii,
collisions (allies push allies, enemies block each other) with steering around units that do not make
way, medivac healing with energy, the colossus's line splash and cliff walking, the baneling's burst (on
attack and on death), terrain, armies spawned as mirror images. The opponent is SC2's
automatic targeting during the map script's attack-move (``_enemy_targets``); the agents' own units
never act unordered (``_apply_actions``). Deliberate deviations are listed in docs/smac.md.

By job: this file holds the battle state, the step and combat; ``terrain.py`` terrain and pathing,
``opponent.py`` the opponent's targeting, ``interface.py`` SMAC's interface (availability, observation,
state, reward), ``layout.py`` the sizes and offsets.

Every environment step simulates 8 game loops in ``substeps`` slices. No weapon fires faster than once
per 8 loops (the shortest period, the zergling's, is 11.1 loops). Cooldowns carry over between slices
exactly, so fire *rates* are exact at any slice length; the default 2 slices of 4 loops shift a shot's
phase by at most 4 loops (SC2 itself jitters each cooldown by -1..+2 loops), at a fraction of 4
slices' cost. Movement, targeting and collisions are recomputed every slice.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from envs.base import MultiAgentEnv, Step
from envs.smac import units
from envs.smac.interface import MOVE_AMOUNT, REWARD_DEATH, REWARD_WIN, SmacInterface
from envs.smac.layout import N_NO_ATTACK, smac_layout
from envs.smac.maps import ALLY_TYPE_ORDER, CLIFF_TERRAIN, ENEMY_TYPE_BITS, MAP_SIZE, TERRAIN, SmacMap, get_map
from envs.smac.opponent import BLOCKED_PACE, SCAN_MARGIN, SCAN_RANGE, Opponent
from envs.smac.terrain import Pathing, distance, flow_field, formation, path_fields
from envs.spec import EnvSpec

STEP_LOOPS = 8  # SMAC step_mul (ENV:69)
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
    primed: torch.Tensor  # [B,U] bool: a baneling killed in the last slice, bursting in the next

    def assign(self, idx: torch.Tensor, other: _State) -> _State:
        """A copy with battles ``idx`` replaced by ``other``'s rows."""
        return _State(*(getattr(self, f.name).index_put((idx,), getattr(other, f.name))
                        for f in dataclasses.fields(self)))


class SmacSimulator(Pathing, Opponent, SmacInterface, MultiAgentEnv):
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
        types = [units.UNITS[t] for t in m.ally_types + m.enemy_types]

        def col(fn, dtype=torch.float32):
            return torch.tensor([fn(t) for t in types], dtype=dtype, device=dev)

        self.hp_max, self.shield_max, self.armor = col(lambda t: t.hp), col(lambda t: t.shield), col(lambda t: t.armor)
        self.speed = col(lambda t: t.speed / units.LOOPS_PER_SECOND)  # per game loop
        self.radius = col(lambda t: t.radius)
        self.light, self.armored = col(lambda t: t.light, torch.bool), col(lambda t: t.armored, torch.bool)
        self.biological, self.air = col(lambda t: t.biological, torch.bool), col(lambda t: t.air, torch.bool)
        self.damage, self.attacks = col(lambda t: t.damage), col(lambda t: float(t.attacks))
        self.bonus_light = col(lambda t: t.bonus_damage if t.bonus_vs == "light" else 0.0)
        self.bonus_armored = col(lambda t: t.bonus_damage if t.bonus_vs == "armored" else 0.0)
        self.weapon_range = col(lambda t: units.MEDIVAC_HEAL_RANGE if t.healer else t.weapon_range)
        self.period = col(lambda t: t.weapon_period)
        self.hits_ground, self.hits_air = col(lambda t: t.hits_ground, torch.bool), col(lambda t: t.hits_air, torch.bool)
        self.hp_regen = col(lambda t: t.hp_regen / units.LOOPS_PER_SECOND)
        self.healer = col(lambda t: t.healer, torch.bool)
        self.splash_line = col(lambda t: t.splash == "line", torch.bool)
        self.splash_burst = col(lambda t: t.splash == "burst", torch.bool)
        self.cliff_walker = col(lambda t: t.cliff_walker, torch.bool)
        # fixed by the map: plain bools, so the step never reads a tensor back to the host (a sync on GPU)
        self.any_healer = any(t.healer for t in types)
        self.enemy_healer = any(t.healer for t in types[N:])
        self.has_line, self.has_burst = any(t.splash == "line" for t in types), any(t.splash == "burst" for t in types)
        self.has_cliff_walker = any(t.cliff_walker for t in types)
        self.armed = col(lambda t: t.has_weapon, torch.bool)
        self.scan = col(lambda t: max(SCAN_RANGE, t.weapon_range + (SCAN_MARGIN if t.speed > 0 and t.weapon_range > 1 else 0)))
        self.unit_index = torch.arange(self.n_units, device=dev)
        self.is_enemy = self.unit_index >= N
        self.move_dirs = torch.tensor(MOVE_DIRS, device=dev)
        self.obs_shield_max = col(lambda t: units.SMAC_MAX_SHIELD.get(t.name, 1.0))
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
        if self.has_cliff_walker:
            self.cliff_grid = torch.tensor(CLIFF_TERRAIN[m.terrain] | grid, device=dev)
        self.flow = self.chase_flow = None
        if m.attack_allies:  # enemies chase moving units around walls: paths toward every cell
            flows, nearest = path_fields(m.terrain)
            self.chase_flow, self.nearest_cell = torch.tensor(flows, device=dev), torch.tensor(nearest, device=dev)
        elif m.attack_point is not None and not self._straight_path_clear(grid, m.enemy_spawn, m.attack_point):
            self.flow = torch.tensor(flow_field(grid, m.attack_point), device=dev)
        self.attack_point = torch.tensor(m.attack_point or (0.0, 0.0), device=dev)
        facing = np.subtract(m.enemy_spawn, m.ally_spawn)
        facing = facing / np.linalg.norm(facing)
        lateral = np.array([-facing[1], facing[0]])
        if m.ally_spawn_2 is not None:  # one unit at each named point
            ally_pts = np.array([m.ally_spawn, m.ally_spawn_2], dtype=np.float32)
        else:
            ally_pts = self._side_spawns("ally", m.ally_types, facing, lateral, grid)
        enemy_pts = self._side_spawns("enemy", m.enemy_types, -facing, lateral, grid)
        self.spawn = torch.tensor(np.concatenate([ally_pts, enemy_pts]), device=dev)
        self.radius_sum = self.radius.view(-1, 1) + self.radius.view(1, -1)
        self.same_team = self.is_enemy.view(-1, 1) == self.is_enemy.view(1, -1)
        # damage of one attack of unit i on unit v, bonuses included
        self.per_attack = (self.damage.view(-1, 1) + self.bonus_light.view(-1, 1) * self.light.view(1, -1)
                           + self.bonus_armored.view(-1, 1) * self.armored.view(1, -1))
        # colossi walk over the other ground units and they under it (Collide: Colossus, Structure, Flying)
        self.collide_pair = self.cliff_walker.view(-1, 1) == self.cliff_walker.view(1, -1)
        self.not_self = 1.0 - torch.eye(self.n_units, device=dev)
        self.others = torch.tensor([[j for j in range(N) if j != i] for i in range(N)], device=dev,
                                   dtype=torch.long).reshape(N, N - 1)

    def _side_spawns(self, side: str, names: list[str], facing, lateral, grid) -> np.ndarray:
        """Spawn points of one side: each group the map script creates at a point of its own (``type_spawns``)
        packed around that point, units in index order, as far apart as the widest unit that collides with
        the others (a colossus stands over small units: 1c3s5z's packs as its stalkers do)."""
        points = np.zeros((len(names), 2), dtype=np.float32)
        groups: dict[tuple[float, float], list[int]] = {}
        for i, name in enumerate(names):
            groups.setdefault(self.map.spawn_point(side, name), []).append(i)
        for centre, idx in groups.items():
            kinds = [units.UNITS[names[i]] for i in idx]
            spacing = 2 * max(t.radius for t in [t for t in kinds if not t.cliff_walker] or kinds)
            points[idx] = formation(centre, facing, lateral, len(idx), spacing, grid)
        return points

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

    def _new_state(self, noise: torch.Tensor) -> _State:
        """Fresh battles, one per row of ``noise`` ``[b,U,2]`` (uniform in [0,1): spawn jitter)."""
        dev, N, Un, b = self.device, self.n_agents, self.n_units, noise.shape[0]
        spawn = self.spawn.expand(b, Un, 2)
        pos = spawn + (noise * 2 - 1) * SPAWN_JITTER
        pos = torch.where(self._walkable(pos).unsqueeze(-1), pos, spawn)
        energy = torch.where(self.healer, units.MEDIVAC_START_ENERGY, 0.0).expand(b, Un).clone()
        return _State(
            pos=pos, hp=self.hp_max.expand(b, Un).clone(), shield=self.shield_max.expand(b, Un).clone(),
            energy=energy, cooldown=torch.zeros(b, Un, device=dev),
            since_hit=torch.full((b, Un), 1e4, device=dev), alive=torch.ones(b, Un, dtype=torch.bool, device=dev),
            target=torch.full((b, Un), -1, dtype=torch.long, device=dev),
            blocked=torch.zeros(b, Un, device=dev), shunned=torch.full((b, Un), -1, dtype=torch.long, device=dev),
            shun_left=torch.zeros(b, Un, device=dev),
            moving=torch.zeros(b, N, dtype=torch.bool, device=dev), goal=torch.zeros(b, N, 2, device=dev),
            last_action=torch.full((b, N), -1, dtype=torch.long, device=dev),
            steps=torch.zeros(b, dtype=torch.long, device=dev), primed=torch.zeros(b, Un, dtype=torch.bool, device=dev),
        )

    def _edge(self, a: torch.Tensor, b: torch.Tensor, ra: slice, rb: slice) -> torch.Tensor:
        """Edge-to-edge distances between unit sets ``a`` [B,I,2] and ``b`` [B,J,2]."""
        return distance(a, b) - self.radius[ra].view(1, -1, 1) - self.radius[rb].view(1, 1, -1)

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
        battle = dict(state["battle"])
        battle.setdefault("primed", torch.zeros_like(battle["alive"]))  # snapshots from before banelings
        self.s = _State(**battle)
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
        if self.chase_flow is not None:
            heading = self._chase_heading(s, goal, heading)
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

    def _fire(self, s: _State, in_range: torch.Tensor, jitter: torch.Tensor) -> None:
        Un, dt = self.n_units, self.dt
        tgt = s.target
        t_air = self._gather(self.air.expand_as(s.alive), tgt)
        can_hit = torch.where(t_air, self.hits_air, self.hits_ground)
        ready = s.cooldown <= dt
        fire = s.alive & in_range & can_hit & ready & self.armed
        if self.has_line or self.has_burst:
            raw, n_hits, burst = self._splash_damage(s, fire)
        else:
            per_attack = self.per_attack[self.unit_index, tgt.clamp(min=0)]
            slot = torch.where(fire, tgt, torch.full_like(tgt, Un))  # slot Un collects nothing
            raw = torch.zeros(s.hp.shape[0], Un + 1, device=self.device)
            raw.scatter_add_(1, slot, per_attack * self.attacks * fire)
            n_hits = torch.zeros_like(raw).scatter_add_(1, slot, self.attacks * fire)
            raw, n_hits = raw[:, :Un], n_hits[:, :Un]
        # shields absorb first; the spill-over loses armour once per attack, never below 0.5 per attack
        absorbed = torch.minimum(s.shield, raw)
        rest = raw - absorbed
        hp_loss = torch.where(rest > 0, torch.maximum(rest - self.armor * n_hits, units.MIN_DAMAGE * n_hits), rest)
        hit = raw > 0
        s.shield = s.shield - absorbed
        s.hp = s.hp - hp_loss
        s.since_hit = torch.where(hit, torch.zeros_like(s.since_hit), s.since_hit + dt)
        fired_cd = s.cooldown.clamp(min=0) + self.period + jitter - dt
        s.cooldown = torch.where(fire, fired_cd, (s.cooldown - dt).clamp(min=0))

        if self.any_healer:
            self._heal(s, in_range)
        if self.has_burst:  # a baneling dies as it bursts; one killed otherwise bursts in the next slice
            s.hp = torch.where(burst, torch.zeros_like(s.hp), s.hp)
        dead = s.alive & (s.hp <= 0)
        if self.has_burst:
            s.primed = dead & self.splash_burst & ~burst
        s.alive = s.alive & ~dead
        s.hp = torch.where(s.alive, s.hp, torch.zeros_like(s.hp))
        s.shield = torch.where(s.alive, s.shield, torch.zeros_like(s.shield))

    def _splash_damage(self, s: _State, fire: torch.Tensor):
        """Damage and attack counts ``[B,U]`` on maps with splash, from a matrix ``[B,I,V]`` of the attacks each
        unit i lands on each unit v: its target; with Thermal Lances also every enemy ground unit on the line
        across the target; with Volatile Burst every enemy ground unit within the burst radius of the baneling
        instead (``units.LANCE_*``, ``units.BURST_RADIUS``). Also returns the banelings bursting now."""
        Un = self.n_units
        tgt = s.target.clamp(min=0)
        exposed = (s.alive & ~self.air).unsqueeze(1) & ~self.same_team  # [B,I,V] enemy ground units of i
        lands = torch.nn.functional.one_hot(tgt, Un).bool() & (fire & ~self.splash_burst).unsqueeze(-1)
        if self.has_line:
            tpos = self._gather(s.pos, s.target)  # [B,I,2]
            shot = tpos - s.pos
            shot = shot / shot.norm(dim=-1, keepdim=True).clamp(min=1e-6)
            rel = s.pos.unsqueeze(1) - tpos.unsqueeze(2)  # [B,I,V,2] each unit from i's target
            along = (rel * shot.unsqueeze(2)).sum(-1)
            across = rel[..., 1] * shot[..., 0].unsqueeze(2) - rel[..., 0] * shot[..., 1].unsqueeze(2)
            beyond = (across.abs() - units.LANCE_HALF_LENGTH).clamp(min=0)
            on_line = (along * along + beyond * beyond).sqrt() <= units.LANCE_RADIUS + self.radius
            lands = lands | (on_line & exposed & (fire & self.splash_line).unsqueeze(-1))
        burst = torch.zeros_like(fire)
        if self.has_burst:
            burst = (fire & self.splash_burst) | s.primed
            near = distance(s.pos, s.pos) <= units.BURST_RADIUS + self.radius
            lands = lands | (near & exposed & burst.unsqueeze(-1))
        attacks = lands * self.attacks.view(1, -1, 1)
        return (attacks * self.per_attack).sum(1), attacks.sum(1), burst

    def _heal(self, s: _State, in_range: torch.Tensor) -> None:
        tgt = s.target
        t_hp, t_max = self._gather(s.hp, tgt), self._gather(self.hp_max.expand_as(s.hp), tgt)
        t_bio = self._gather(self.biological.expand_as(s.alive), tgt)
        healing = s.alive & self.healer & in_range & t_bio & (t_hp < t_max)
        amount = torch.minimum(torch.full_like(t_hp, units.MEDIVAC_HEAL_RATE / units.LOOPS_PER_SECOND * self.dt),
                               torch.minimum(t_max - t_hp, s.energy * units.MEDIVAC_HP_PER_ENERGY)) * healing
        s.energy = s.energy - amount / units.MEDIVAC_HP_PER_ENERGY
        slot = torch.where(healing, tgt, torch.full_like(tgt, self.n_units))
        gain = torch.zeros(s.hp.shape[0], self.n_units + 1, device=self.device).scatter_add_(1, slot, amount)
        s.hp = s.hp + gain[:, : self.n_units] * s.alive

    def _regenerate(self, s: _State) -> None:
        dt = self.dt
        regen_shield = s.alive & (s.since_hit >= units.SHIELD_REGEN_DELAY)
        s.shield = torch.where(regen_shield, (s.shield + units.SHIELD_REGEN_RATE / units.LOOPS_PER_SECOND * dt)
                               .minimum(self.shield_max), s.shield)
        s.hp = torch.where(s.alive, (s.hp + self.hp_regen * dt).minimum(self.hp_max), s.hp)
        s.energy = torch.where(s.alive & self.healer, (s.energy + units.MEDIVAC_ENERGY_REGEN / units.LOOPS_PER_SECOND * dt)
                               .clamp(max=units.MEDIVAC_MAX_ENERGY), s.energy)

    # ------------------------------------------------------------------ reward and termination
    # ------------------------------------------------------------------ observations
