"""What one agent's SMAC observation says about every unit, decoded into map units.

Scripted policies (``algorithms/scripted``) decide from this view; the SMAC observation is its source for
our simulator and for StarCraft II, and ``suites/checks/fidelity.py`` builds the same view from other SMAC
re-implementations, so one policy implementation plays all of them. The observation layout is SMAC's
(``envs/smac/layout.py``). Fractions become absolute values with the unit types of the map, which every
agent knows.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from envs.smac import units
from envs.smac.layout import N_MOVE_FEATS, SIGHT_RANGE, smac_layout
from envs.smac.maps import get_map


@dataclass
class TacticalView:
    """Per agent ``i``: units it sees (offsets in map units) and what its actions allow. Slot ``j`` of the
    ally axis is ally ``j`` (the agent itself is never visible to itself), so a healer's action
    ``6 + j`` heals ``ally_*[..., j]``; otherwise ``6 + j`` attacks ``enemy_*[..., j]``."""

    avail: torch.Tensor  # [B,N,A] bool, SMAC's action indices
    healer: torch.Tensor  # [B,N] bool: the agent heals allies instead of attacking enemies
    enemy_visible: torch.Tensor  # [B,N,E] bool
    enemy_offset: torch.Tensor  # [B,N,E,2] enemy position minus own position
    enemy_health: torch.Tensor  # [B,N,E] remaining hit points + shields
    ally_visible: torch.Tensor  # [B,N,N] bool
    ally_offset: torch.Tensor  # [B,N,N,2]
    ally_missing: torch.Tensor  # [B,N,N] hit points below the maximum


class ObservationDecoder:
    """Turns batched observations of one SMAC map ``[B,N,obs_dim]`` into a :class:`TacticalView`."""

    def __init__(self, map_name: str, device: torch.device | str = "cpu"):
        m, layout = get_map(map_name), smac_layout(map_name)
        self.n_agents, self.n_enemies = m.n_agents, m.n_enemies
        N = m.n_agents
        self.enemy_shield_bit = layout.enemy_shield_bits
        self.enemy_width, self.ally_width, self.ally_start = layout.enemy_width, layout.ally_width, layout.ally_start
        enemy_types = [units.UNITS[t] for t in m.enemy_types]
        ally_types = [units.UNITS[t] for t in m.ally_types]
        self.enemy_hp_max = torch.tensor([t.hp for t in enemy_types], device=device)
        # the observation's shield fraction is over SMAC's max shield table (ENV:874-881)
        self.enemy_shield_max = torch.tensor([units.SMAC_MAX_SHIELD.get(t.name, 0.0) for t in enemy_types], device=device)
        self.ally_hp_max = torch.tensor([t.hp for t in ally_types], device=device)
        self.healer = torch.tensor([t.healer for t in ally_types], device=device)
        # row k of agent i's ally block describes ally others[i, k] (all allies but i, in index order)
        self.others = torch.tensor([[j for j in range(N) if j != i] for i in range(N)], dtype=torch.long,
                                   device=device).reshape(N, N - 1)

    def __call__(self, obs: torch.Tensor, avail: torch.Tensor) -> TacticalView:
        b, N, E = obs.shape[0], self.n_agents, self.n_enemies
        enemy = obs[..., N_MOVE_FEATS:self.ally_start].reshape(b, N, E, self.enemy_width)
        ally_rows = obs[..., self.ally_start:self.ally_start + (N - 1) * self.ally_width].reshape(b, N, N - 1, self.ally_width)
        enemy_health = enemy[..., 4] * self.enemy_hp_max
        if self.enemy_shield_bit:
            enemy_health = enemy_health + enemy[..., 5] * self.enemy_shield_max
        # a visible unit has a non-zero distance column (units never overlap exactly)
        enemy_visible = enemy[..., 1] > 0
        index = self.others.expand(b, N, N - 1)
        ally_visible = torch.zeros(b, N, N, dtype=torch.bool, device=obs.device)
        ally_visible.scatter_(2, index, ally_rows[..., 0] > 0)
        ally_offset = torch.zeros(b, N, N, 2, device=obs.device)
        ally_offset.scatter_(2, index.unsqueeze(-1).expand(b, N, N - 1, 2), ally_rows[..., 2:4] * SIGHT_RANGE)
        ally_fraction = torch.ones(b, N, N, device=obs.device)
        ally_fraction.scatter_(2, index, ally_rows[..., 4])
        return TacticalView(
            avail=avail.bool(), healer=self.healer.expand(b, N),
            enemy_visible=enemy_visible, enemy_offset=enemy[..., 2:4] * SIGHT_RANGE, enemy_health=enemy_health,
            ally_visible=ally_visible, ally_offset=ally_offset,
            ally_missing=(1 - ally_fraction) * self.ally_hp_max * ally_visible,
        )
