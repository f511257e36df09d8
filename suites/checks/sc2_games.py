"""How long a batched StarCraft II step takes with one game per process, against the games stepped one after
another, using stand-in games that take a fixed time per step (no StarCraft II or smacv2 needed).

    python -m suites.checks.sc2_games [--map 3m] [--games 1 2 4 8] [--step-ms 20] [--steps 100]

Two kinds of stand-in: one that *waits* its step time (the game computing in its own process, on cores to
spare: the adapter's overlap and overhead alone) and one that *computes* it (a busy loop: games compete for
this machine's cores, as real games do). Prints a markdown table for docs/performance.md.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from envs.smac.family import SMAC
from envs.smac.layout import smac_layout
from envs.smac.sc2 import Sc2Env


class FixedTimeGame:
    """smacv2's ``StarCraft2Env`` API with SMAC's sizes for the map; each step takes ``seconds``, waiting or
    computing; every agent may do anything; episodes never end."""

    def __init__(self, map_name: str, seed: int, seconds: float, busy: bool):
        self.layout, self.seconds, self.busy = smac_layout(map_name), seconds, busy

    def get_env_info(self):
        layout = self.layout
        return {"n_agents": layout.n_agents, "obs_shape": layout.obs_dim, "state_shape": layout.state_dim,
                "n_actions": layout.n_actions, "episode_limit": layout.episode_limit}

    def reset(self):
        return self.get_obs(), self.get_state()

    def step(self, actions):
        if self.busy:  # the step's time in this process's own CPU time: a core's worth of work
            end = time.process_time() + self.seconds
            while time.process_time() < end:
                pass
        else:
            time.sleep(self.seconds)
        return 0.0, False, {"battle_won": False, "dead_allies": 0, "dead_enemies": 0}

    def get_obs(self):
        return [np.zeros(self.layout.obs_dim, dtype=np.float32)] * self.layout.n_agents

    def get_state(self):
        return np.zeros(self.layout.state_dim, dtype=np.float32)

    def get_avail_actions(self):
        return [[1] * self.layout.n_actions] * self.layout.n_agents

    def close(self):
        pass


class _Factory:
    """A picklable ``env_factory`` for :class:`FixedTimeGame`."""

    def __init__(self, seconds: float, busy: bool):
        self.seconds, self.busy = seconds, busy

    def __call__(self, map_name: str, seed: int) -> FixedTimeGame:
        return FixedTimeGame(map_name, seed, self.seconds, self.busy)


def batched_step_seconds(map_name: str, games: int, seconds: float, busy: bool, steps: int) -> float:
    """Mean wall time of one batched step of ``games`` games in their processes (after 5 warm-up steps)."""
    env = Sc2Env(SMAC.spec(map_name, "sc2"), num_envs=games, checked=False, env_factory=_Factory(seconds, busy))
    try:
        env.reset()
        actions = torch.zeros(games, env.spec.n_agents, dtype=torch.long)
        for _ in range(5):
            env.step(actions)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        return (time.perf_counter() - start) / steps
    finally:
        env.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--map", default="3m")
    p.add_argument("--games", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--step-ms", type=float, default=20.0, help="one game step's time")
    p.add_argument("--steps", type=int, default=100, help="timed batched steps per measurement")
    args = p.parse_args()
    seconds = args.step_ms / 1000
    print(f"smac/{args.map}, one game step = {args.step_ms:g} ms, {args.steps} batched steps, "
          f"{os.cpu_count()} CPU core(s)\n")
    print("| games | one after another (ms) | batched, waiting games (ms) | speed-up | batched, computing games (ms) "
          "| speed-up |")
    print("|---|---|---|---|---|---|")
    for games in args.games:
        serial = games * args.step_ms
        waiting = batched_step_seconds(args.map, games, seconds, False, args.steps) * 1000
        computing = batched_step_seconds(args.map, games, seconds, True, args.steps) * 1000
        print(f"| {games} | {serial:.0f} | {waiting:.1f} | {serial / waiting:.1f}x | {computing:.1f} "
              f"| {serial / computing:.1f}x |")


if __name__ == "__main__":
    main()
