"""The opponent of the SMAC simulator (``simulator.py``): SC2's automatic targeting of the enemy's stock units
during the map script's attack-move, their medivacs' healing, and where idle enemies go. A mixin of
``SmacSimulator``: its methods read the simulator's tables and the battle state."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from envs.smac.terrain import distance

if TYPE_CHECKING:
    from envs.smac.simulator import _State

# Target acquisition of the enemy's stock units (see ``_enemy_targets``). Scan range: 5, or the weapon range +
# 0.5 for ranged mobile units, the weapon range for static defence (Liquipedia, "Automatic Targeting").
SCAN_RANGE, SCAN_MARGIN = 5.0, 0.5
# Our choices, not documented game values: a unit that moved less than BLOCKED_PACE of its speed for
# BLOCKED_LOOPS while chasing gives its target up as unreachable and ignores it for SHUN_LOOPS.
BLOCKED_PACE, BLOCKED_LOOPS, SHUN_LOOPS = 0.25, 16.0, 32.0


class Opponent:
    """The enemy's targets and goals each slice; mixed into ``SmacSimulator``."""

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
        """Enemies without a target attack-move to the attack point, or on 2c_vs_64zg, whose script orders them
        to attack the colossi, go for the nearest living ally; medivacs follow their army."""
        if self.map.attack_point is None:
            return
        N = self.n_agents
        idle = ~has_target[:, N:]
        pos = s.pos[:, N:]
        point = self.attack_point.expand_as(pos)
        if self.map.attack_allies:
            gap = torch.where(s.alive[:, :N].unsqueeze(1), distance(pos, s.pos[:, :N]), float("inf"))
            point = self._gather(s.pos, gap.argmin(2))
        ground = s.alive[:, N:] & ~self.healer[N:]
        centroid = (pos * ground.unsqueeze(-1)).sum(1, keepdim=True) / ground.sum(1, keepdim=True).clamp(min=1).unsqueeze(-1)
        point = torch.where(self.healer[N:].view(1, -1, 1), centroid.expand_as(pos), point)
        goal[:, N:] = torch.where(idle.unsqueeze(-1), point, goal[:, N:])
        need[:, N:] = torch.where(idle, (point - pos).norm(dim=-1), need[:, N:])
