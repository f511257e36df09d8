"""smacv2's ``StarCraft2Env`` interface (oxwhirl/smacv2 smacv2/env/starcraft2/starcraft2.py) over a toy battle: SMAC's
sizes for the map (from this package's layout), agents that die, attack actions only on living enemies, a win when
every enemy is dead, the time limit, and auto-reset left to the caller. numpy only: it runs in forked workers.

Faults for tests, each fired once per game seed (a marker file in ``SC2_STAND_IN_FAULT_DIR`` remembers it, so the
restarted game does not fault again): ``SC2_STAND_IN_FAULTS="kind:seed:step,..."`` with kinds ``raise`` (an
exception out of ``step``, as pysc2's protocol errors), ``relaunch`` (smacv2's own answer to a broken connection:
it relaunches the game and returns ``0, True, {}``), ``hang`` (never answers) and ``die`` (the process exits).
``SC2_STAND_IN_STEP_SECONDS`` makes each step take that long (the parallel stepping benchmark).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from absl import flags

from envs.smac.layout import N_NO_ATTACK, smac_layout

__all__ = ["StarCraft2Env"]

if "sc2_run_config" not in flags.FLAGS:  # pysc2 defines it, and reads it when it launches a game
    flags.DEFINE_string("sc2_run_config", None, "Which run_config to use to spawn the binary.")


class StarCraft2Env:
    def __init__(self, map_name="8m", seed=None, step_seconds=None, **kwargs):
        self.map_name, self._seed = map_name, seed
        layout = smac_layout(map_name)
        self.layout, self.n_agents, self.n_enemies = layout, layout.n_agents, layout.n_enemies
        self.n_actions, self.episode_limit = layout.n_actions, layout.episode_limit
        self.step_seconds = float(os.environ.get("SC2_STAND_IN_STEP_SECONDS", 0)) if step_seconds is None else step_seconds
        self.rng = np.random.default_rng(seed)
        self._episode_count, self._total_steps, self._controller, self.force_restarts = 0, 0, None, 0
        self.faults = {}
        for entry in filter(None, os.environ.get("SC2_STAND_IN_FAULTS", "").split(",")):
            kind, fault_seed, step = entry.split(":")
            if int(fault_seed) == seed:
                self.faults[int(step)] = kind

    def get_env_info(self):
        return {"state_shape": self.layout.state_dim, "obs_shape": self.layout.obs_dim, "n_actions": self.n_actions,
                "n_agents": self.n_agents, "episode_limit": self.episode_limit}

    def reset(self, episode_config={}):  # noqa: B006 - smacv2's signature
        if self._episode_count == 0:  # smacv2 launches the game on the first reset, through pysc2's run_configs
            flags.FLAGS.sc2_run_config  # noqa: B018 - raises UnparsedFlagAccessError where nobody parsed the flags
            self._controller = SimpleNamespace(ping=lambda: SimpleNamespace(
                game_version="4.10.0.75689", base_build=75689, data_build=75689))
        self._episode_steps = 0
        self.ally_health = np.ones(self.n_agents)
        self.enemy_health = np.ones(self.n_enemies)
        return self.get_obs(), self.get_state()

    def step(self, actions):
        actions = [int(a) for a in actions]
        self._total_steps += 1
        if self.step_seconds:
            time.sleep(self.step_seconds)
        fault = self._fault()
        if fault == "raise":
            raise ConnectionError("Connection already closed. SC2 probably crashed. Check the error log.")
        if fault == "relaunch":
            self.force_restarts += 1
            return 0, True, {}
        if fault == "hang":
            time.sleep(3600)
        if fault == "die":
            os._exit(1)
        before = self.enemy_health.sum()
        for agent, action in enumerate(actions):
            if self.ally_health[agent] > 0 and action >= N_NO_ATTACK and self.enemy_health[action - N_NO_ATTACK] > 0:
                target = action - N_NO_ATTACK
                self.enemy_health[target] = max(0.0, self.enemy_health[target] - 0.25)
        living = np.flatnonzero(self.ally_health > 0)
        if living.size and self.enemy_health.sum() > 0 and self.rng.random() < 0.3:
            hit = self.rng.choice(living)
            self.ally_health[hit] = max(0.0, self.ally_health[hit] - 0.5)
        self._episode_steps += 1
        dead_allies, dead_enemies = int((self.ally_health == 0).sum()), int((self.enemy_health == 0).sum())
        info = {"battle_won": False, "dead_allies": dead_allies, "dead_enemies": dead_enemies}
        reward = 20.0 * (before - self.enemy_health.sum()) / self.n_enemies
        terminated = False
        if dead_enemies == self.n_enemies:
            terminated, info["battle_won"] = True, True
        elif dead_allies == self.n_agents or self._episode_steps >= self.episode_limit:
            terminated = True  # smacv2 sets info["episode_limit"] only with continuing_episode
        if terminated:
            self._episode_count += 1
        return reward, terminated, info

    def _fault(self) -> str | None:
        kind = self.faults.get(self._total_steps)
        if kind is None:
            return None
        marker = Path(os.environ["SC2_STAND_IN_FAULT_DIR"]) / f"{kind}-{self._seed}-{self._total_steps}"
        if marker.exists():
            return None
        marker.touch()
        return kind

    def get_obs(self):
        obs = np.zeros((self.n_agents, self.layout.obs_dim), dtype=np.float32)
        obs[:, :self.n_enemies] = self.enemy_health  # an informative toy observation, not SMAC's features
        obs[:, -1] = self.ally_health
        return [row for row in obs]

    def get_state(self):
        state = np.zeros(self.layout.state_dim, dtype=np.float32)
        state[:self.n_agents] = self.ally_health
        state[self.n_agents:self.n_agents + self.n_enemies] = self.enemy_health
        return state

    def get_avail_actions(self):
        avail = []
        for agent in range(self.n_agents):
            row = [0] * self.n_actions
            if self.ally_health[agent] == 0:
                row[0] = 1  # dead: no-op only
            else:
                row[1:N_NO_ATTACK] = [1] * (N_NO_ATTACK - 1)
                for enemy in np.flatnonzero(self.enemy_health > 0):
                    row[N_NO_ATTACK + enemy] = 1
            avail.append(row)
        return avail

    def get_stats(self):
        return {"restarts": self.force_restarts}

    def close(self):
        pass
