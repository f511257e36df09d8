"""SMAC as a task family: its backends, tasks, scores and how its environments are built."""
from __future__ import annotations

import sys

from envs.errors import UsageError
from envs.smac.layout import REWARD_SCALE_RATE, smac_layout
from envs.smac.maps import MAPS
from envs.spec import EnvSpec, Family, Score


class Smac(Family):
    name, title = "smac", "SMAC"
    backends = {"sim": "simulator", "sc2": "StarCraft II"}
    metric = "win_rate"
    scores = (Score("win_rate", 1.0, "win rate"), Score("return_mean", REWARD_SCALE_RATE, f"return / {REWARD_SCALE_RATE:g}"))
    outcomes = (("won", "win_rate"),)
    action_masks = True  # dead units, out-of-range targets and blocked moves are unavailable

    def tasks(self) -> list[str]:
        return sorted(MAPS)

    def choose_backend(self, requested: str, quiet: bool) -> str:
        """StarCraft II when asked for (and installed) or, for ``auto``, when installed; the simulator otherwise."""
        from envs.smac.sc2 import INSTALL_HINT, sc2_available

        if requested == "sc2" and not sc2_available():
            raise UsageError(INSTALL_HINT)
        if requested != "auto":
            return requested
        if sc2_available():
            return "sc2"
        if not quiet:
            print("note: StarCraft II not found; SMAC runs on the built-in simulator (--backend sim).", file=sys.stderr)
        return "sim"

    def member_axis(self, backend: str) -> bool:
        return backend == "sim"  # one generator per member; StarCraft II games are stacked

    def spec(self, name: str, backend: str) -> EnvSpec:
        """Both backends share SMAC's layout (tested against the game: ``Sc2Env`` checks it), so it describes
        either without building an environment."""
        layout = smac_layout(name)
        return self.describe(name, backend, n_agents=layout.n_agents, obs_dim=layout.obs_dim,
                             state_dim=layout.state_dim, n_actions=layout.n_actions, episode_limit=layout.episode_limit)

    def make(self, name: str, backend: str, num_envs: int, device: str, seed: int, *,
             compile: bool = False, one_episode_each: bool = False, checked: bool = True, **options):
        """StarCraft II takes ``env_factory``, ``timeout`` and ``start_timeout`` (``envs/smac/sc2.py``), the simulator
        ``substeps``; ``compile`` reaches the simulator only (the game steps outside torch)."""
        spec = self.spec(name, backend)
        if backend == "sc2":
            from envs.smac.sc2 import Sc2Env

            return Sc2Env(spec, num_envs=num_envs, device=device, seed=seed, checked=checked, **options)
        from envs.smac.simulator import SmacSimulator

        return SmacSimulator(spec, num_envs=num_envs, device=device, seed=seed, compile=compile, checked=checked,
                             **options)


SMAC = Smac()
