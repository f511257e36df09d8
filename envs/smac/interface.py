"""SMAC's interface on the simulator's battles (``simulator.py``): action availability and its check, each
agent's observation and the global state (the layout of ``layout.py``), and the shaped reward and battle end,
as oxwhirl/smac starcraft2.py ("ENV") defines them. A mixin of ``SmacSimulator``: its methods read the
simulator's tables and the battle state."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from envs.base import first_unavailable
from envs.smac import units
from envs.smac.layout import N_NO_ATTACK, REWARD_SCALE_RATE, SIGHT_RANGE
from envs.smac.maps import MAP_SIZE

if TYPE_CHECKING:
    from envs.smac.simulator import _State

MOVE_AMOUNT = 2.0  # ENV:70
SHOOT_RANGE = 6.0  # unit_shoot_range (ENV:840-842)
ACTION_NAMES = ("no-op", "stop", "move north", "move south", "move east", "move west")
REWARD_DEATH, REWARD_WIN = 10.0, 200.0  # ENV:84-91; REWARD_SCALE_RATE: envs/smac/layout.py


def check_actions(avail: torch.Tensor, actions: torch.Tensor) -> None:
    """A ValueError naming the first environment, agent and action outside SMAC's availability mask ``avail``
    (both backends' checked mode)."""
    bad = first_unavailable(avail, actions)
    if bad is not None:
        b, i, a = bad
        name = ACTION_NAMES[a] if 0 <= a < N_NO_ATTACK else f"attack/heal target {a - N_NO_ATTACK}"
        valid = avail[b, i].nonzero().squeeze(1).tolist()
        raise ValueError(f"environment {b}, agent {i}: action {a} ({name}) is not available; "
                         f"available actions: {valid}")


class SmacInterface:
    """What agents see and may do, and what a step earns; mixed into ``SmacSimulator``."""

    def _check(self, actions: torch.Tensor) -> None:
        check_actions(self._avail, actions)

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
        cd = torch.where(self.healer, s.energy / units.MEDIVAC_MAX_ENERGY, s.cooldown / self.state_cd_max)
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
