"""SMAC on real StarCraft II, through smacv2's ``StarCraft2Env`` (which runs the SMAC v1 maps).

Several game instances are stepped one after another and presented through the same batched
interface as the simulator, tensors moved to the requested device. Needs the optional ``sc2`` extra
(smacv2 from its git repository) and a StarCraft II installation (``SC2PATH``).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from envs.base import MultiAgentEnv, Step
from envs.smac.maps import get_map
from envs.spec import EnvSpec

INSTALL_HINT = ("StarCraft II backend unavailable: install smacv2 with "
                "`pip install -e '.[sc2]'` and StarCraft II 4.10 with the SMAC maps "
                "(set SC2PATH; see docs/smac.md), or use --backend sim.")


def sc2_available() -> bool:
    """True when smacv2 imports and a StarCraft II installation is found."""
    try:
        import smacv2.env  # noqa: F401
    except ImportError:
        return False
    root = Path(os.environ.get("SC2PATH", Path.home() / "StarCraftII"))
    return (root / "Versions").is_dir()


def _default_factory(map_name: str, seed: int):
    from smacv2.env import StarCraft2Env

    return StarCraft2Env(map_name=map_name, seed=seed)


class Sc2Env(MultiAgentEnv):
    """Batched adapter over ``num_envs`` smacv2 ``StarCraft2Env`` instances."""

    def __init__(self, spec: EnvSpec, num_envs: int = 1, device: str | torch.device = "cpu", seed: int = 0,
                 env_factory: Callable[[str, int], object] | None = None):
        """``spec``: the task's, from the SMAC family; the game's own sizes must agree with it."""
        map_name = spec.task.split("/", 1)[1]
        get_map(map_name)  # unknown names fail before any game starts
        factory = env_factory or _default_factory
        self.envs = [factory(map_name, seed + i) for i in range(num_envs)]
        self.num_envs, self.device, self.spec = num_envs, torch.device(device), spec
        info = self.envs[0].get_env_info()
        game = {"n_agents": info["n_agents"], "obs_dim": info["obs_shape"], "state_dim": info["state_shape"],
                "n_actions": info["n_actions"], "episode_limit": info["episode_limit"]}
        differ = [f"{k} {v} (SMAC's layout: {getattr(spec, k)})" for k, v in game.items() if getattr(spec, k) != v]
        if differ:
            self.close()
            raise RuntimeError(f"StarCraft II's {map_name} does not have SMAC's layout: {', '.join(differ)}; "
                               "is the map file SMAC's?")
        self._steps = np.zeros(num_envs, dtype=np.int64)

    def _read(self, env):
        obs = np.asarray(env.get_obs(), dtype=np.float32)
        state = np.asarray(env.get_state(), dtype=np.float32)
        avail = np.asarray(env.get_avail_actions(), dtype=bool)
        alive = ~(avail[:, 0] & ~avail[:, 1:].any(1))  # only no-op available <=> dead (SMAC rule)
        return obs, state, avail, alive

    def _stack(self, rows) -> tuple[torch.Tensor, ...]:
        return tuple(torch.as_tensor(np.stack(col)).to(self.device) for col in zip(*rows))

    def reset(self) -> Step:
        for env in self.envs:
            env.reset()
        self._steps[:] = 0
        obs, state, avail, alive = self._stack([self._read(e) for e in self.envs])
        zeros = torch.zeros(self.num_envs, device=self.device)
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        info = {"won": no, "episode_limit": no, "dead_allies": zeros, "dead_enemies": zeros}
        return Step(obs, state, avail, alive, zeros, no, info, obs, state, avail, alive)

    def step(self, actions: torch.Tensor) -> Step:
        acts = actions.detach().cpu().numpy()
        final, fresh, rewards, dones, won, limit, dead_a, dead_e = [], [], [], [], [], [], [], []
        for b, env in enumerate(self.envs):
            reward, terminated, info = env.step(acts[b].tolist())
            self._steps[b] += 1
            final.append(self._read(env))
            battle_won = bool(info.get("battle_won", False))
            ended_by_battle = battle_won or info.get("dead_allies", 0) == self.spec.n_agents \
                or info.get("dead_enemies", 0) == get_map(self.spec.task.split("/", 1)[1]).n_enemies
            timeout = bool(terminated) and (bool(info.get("episode_limit", False)) or
                                            (self._steps[b] >= self.spec.episode_limit and not ended_by_battle))
            rewards.append(float(reward))
            dones.append(bool(terminated))
            won.append(battle_won)
            limit.append(timeout)
            dead_a.append(float(info.get("dead_allies", 0)))
            dead_e.append(float(info.get("dead_enemies", 0)))
            if terminated:
                env.reset()
                self._steps[b] = 0
                fresh.append(self._read(env))
            else:
                fresh.append(final[-1])
        t = lambda xs, dt: torch.tensor(xs, dtype=dt, device=self.device)  # noqa: E731
        info = {"won": t(won, torch.bool), "episode_limit": t(limit, torch.bool),
                "dead_allies": t(dead_a, torch.float32), "dead_enemies": t(dead_e, torch.float32)}
        return Step(*self._stack(fresh), t(rewards, torch.float32), t(dones, torch.bool), info, *self._stack(final))

    def close(self) -> None:
        for env in self.envs:
            env.close()
