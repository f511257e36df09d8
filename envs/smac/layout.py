"""SMAC's sizes and offsets for one map, torch-free: the observation (4 move flags, then per enemy, per other
ally and own features), the state and the actions, as oxwhirl/smac starcraft2.py lays them out (ENV:1309-1340
for the sizes, ENV:946-1125 for the observation's order). The family's spec, the simulator and the
tactical view all read them from here, so the layout is described once."""
from __future__ import annotations

from dataclasses import dataclass

from envs.smac.maps import get_map

SIGHT_RANGE = 9.0  # unit_sight_range (ENV:844-846): observed distances and offsets are divided by it
N_NO_ATTACK = 6  # no-op, stop, north, south, east, west (ENV:1424-1468); then one action per target
N_MOVE_FEATS = 4  # can move north, south, east, west
# SMAC scales the shaped reward so that killing every enemy and winning earns 20 (reward_scale_rate,
# oxwhirl/smac starcraft2.py:84-91); Protoss shields regenerate, so a return can pass 20 slightly.
REWARD_SCALE_RATE = 20.0


@dataclass(frozen=True)
class SmacLayout:
    n_agents: int
    n_enemies: int
    unit_type_bits: int
    ally_shield_bits: int  # 1 for Protoss
    enemy_shield_bits: int
    episode_limit: int

    @property
    def n_actions(self) -> int:
        return N_NO_ATTACK + self.n_enemies  # ENV:243-245

    @property
    def enemy_width(self) -> int:
        """[attackable, distance, dx, dy, health, (shield), type bits]"""
        return 5 + self.unit_type_bits + self.enemy_shield_bits

    @property
    def ally_width(self) -> int:
        """[visible, distance, dx, dy, health, (shield), type bits]"""
        return 5 + self.unit_type_bits + self.ally_shield_bits

    @property
    def own_width(self) -> int:
        """[health, (shield), type bits]"""
        return 1 + self.unit_type_bits + self.ally_shield_bits

    @property
    def ally_start(self) -> int:
        return N_MOVE_FEATS + self.n_enemies * self.enemy_width

    @property
    def obs_dim(self) -> int:
        return self.ally_start + (self.n_agents - 1) * self.ally_width + self.own_width

    @property
    def state_dim(self) -> int:
        """Per ally [health, cooldown, x, y, (shield), type bits], per enemy [health, x, y, (shield), type bits],
        then every ally's last action."""
        u = self.unit_type_bits
        return (self.n_agents * (4 + self.ally_shield_bits + u) + self.n_enemies * (3 + self.enemy_shield_bits + u)
                + self.n_agents * self.n_actions)


def smac_layout(map_name: str) -> SmacLayout:
    m = get_map(map_name)
    return SmacLayout(m.n_agents, m.n_enemies, m.unit_type_bits, int(m.a_race == "P"), int(m.b_race == "P"), m.limit)
