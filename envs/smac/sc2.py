"""SMAC on real StarCraft II, through smacv2's ``StarCraft2Env`` (which runs the SMAC v1 maps).

Each of the ``num_envs`` games runs in a worker process of its own (``games.py``), all stepped at once and
presented through the same batched interface as the simulator, tensors on the requested device. Needs the
optional ``sc2`` extra (smacv2 from its git repository) and StarCraft II with the SMAC maps (``SC2PATH``;
``python -m envs.smac.check_sc2`` says what is missing).

Faults: a game that raises, hangs past ``timeout`` or whose process dies is restarted; its episode in flight
is *dropped*: that step ends the episode as a time limit would (``done``, ``episode_limit``: learners bootstrap,
nothing is taught as a terminal), ``info["dropped"]`` marks it so that no statistic counts it, and a notice
(:meth:`take_notices`) says which game failed and why. smacv2 itself relaunches a game whose connection breaks and
answers with an empty info dict; that episode is dropped the same way.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import torch

from envs.base import MultiAgentEnv, Step
from envs.seeding import child_seed
from envs.smac.games import Answer, Games, Layout
from envs.smac.interface import check_actions
from envs.smac.maps import get_map
from envs.spec import EnvSpec

INSTALL_HINT = ("StarCraft II backend unavailable: install smacv2 with "
                "`pip install -e '.[sc2]'` and StarCraft II 4.10 with the SMAC maps "
                "(set SC2PATH; `python -m envs.smac.check_sc2` says what is missing, docs/install.md how to "
                "install it), or use --backend sim.")
STEP_TIMEOUT = 120.0  # seconds a game may take to answer a step or a reset before it counts as hung
START_TIMEOUT = 600.0  # ... to launch (the first reset starts StarCraft II: tens of seconds, more on a busy node)


def sc2_root() -> Path:
    """Where StarCraft II is installed: ``SC2PATH``, else ``~/StarCraftII`` (pysc2's default on Linux)."""
    return Path(os.environ.get("SC2PATH", Path.home() / "StarCraftII"))


def sc2_available() -> bool:
    """True when smacv2 imports and a StarCraft II installation is found."""
    try:
        import smacv2.env  # noqa: F401
    except ImportError:
        return False
    return (sc2_root() / "Versions").is_dir()


def installed_builds(root: Path) -> list[str]:
    """The game builds under ``Versions/`` (``Base75689`` is 4.10), oldest first; pysc2 runs the newest."""
    versions = root / "Versions"
    found = [p.name for p in versions.glob("Base*") if p.is_dir() and p.name[4:].isdigit()] if versions.is_dir() else []
    return sorted(found, key=lambda name: int(name[4:]))


def maps_folder(root: Path) -> Path:
    """Where StarCraft II finds the SMAC maps smacv2 loads (``Maps/SMAC_Maps``)."""
    return root / "Maps" / "SMAC_Maps"


def map_file(root: Path, map_name: str) -> Path:
    """The SMAC map file StarCraft II loads for ``map_name``."""
    return maps_folder(root) / f"{map_name}.SC2Map"


def smacv2_release() -> dict:
    """The smacv2 that runs the games: its version, the commit pip installed it from, and where it is."""
    try:
        import smacv2
    except ImportError:  # games built by another factory (``env_factory``)
        return {"path": None, "version": None, "commit": None}
    out = {"path": str(Path(smacv2.__file__).parent), "version": None, "commit": None}
    try:
        dist = distribution("smacv2")
    except PackageNotFoundError:
        return out
    out["version"] = dist.version
    direct = dist.read_text("direct_url.json")  # PEP 610: written by pip for installs from a git URL
    if direct:
        out["commit"] = json.loads(direct).get("vcs_info", {}).get("commit_id")
    return out


def _default_factory(map_name: str, seed: int):
    from absl import flags
    from smacv2.env import StarCraft2Env

    # pysc2 reads absl flags (sc2_run_config, ...) when it launches the game, and outside ``absl.app`` nobody
    # parses them: "UnparsedFlagAccessError" (oxwhirl/smac#126). Their defaults are what SMAC runs with.
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    return StarCraft2Env(map_name=map_name, seed=seed)


class Sc2Env(MultiAgentEnv):
    """Batched adapter over ``num_envs`` smacv2 ``StarCraft2Env`` games, one worker process each."""

    def __init__(self, spec: EnvSpec, num_envs: int = 1, device: str | torch.device = "cpu", seed: int = 0,
                 checked: bool = True, env_factory: Callable[[str, int], object] | None = None,
                 timeout: float = STEP_TIMEOUT, start_timeout: float = START_TIMEOUT):
        """``spec``: the task's, from the SMAC family; the game's own sizes must agree with it. ``checked``:
        every action is checked against the available ones first. ``env_factory(map_name, seed)`` builds one
        game (smacv2's ``StarCraft2Env`` by default); it runs in the worker process."""
        self.map_name = spec.task.split("/", 1)[1]
        self.n_enemies = get_map(self.map_name).n_enemies  # unknown names fail before any game starts
        self.num_envs, self.device, self.spec, self.checked = num_envs, torch.device(device), spec, checked
        layout = Layout(spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions)
        seeds = [child_seed(seed, b) for b in range(num_envs)]  # the game's random_seed is unsigned 32-bit
        self.games = Games(env_factory or _default_factory, self.map_name, seeds, layout, timeout, start_timeout)
        info = self.games.ask("info", timeout=start_timeout)
        failed = next((f"game {b} {a}" for b, a in enumerate(info) if isinstance(a, str)), None)
        if failed:
            self.close()
            raise RuntimeError(f"StarCraft II's {self.map_name} could not be set up: {failed}")
        game = {"n_agents": info[0]["n_agents"], "obs_dim": info[0]["obs_shape"], "state_dim": info[0]["state_shape"],
                "n_actions": info[0]["n_actions"], "episode_limit": info[0]["episode_limit"]}
        differ = [f"{k} {v} (SMAC's layout: {getattr(spec, k)})" for k, v in game.items() if getattr(spec, k) != v]
        if differ:
            self.close()
            raise RuntimeError(f"StarCraft II's {self.map_name} does not have SMAC's layout: {', '.join(differ)}; "
                               "is the map file SMAC's?")
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._now: tuple[torch.Tensor, ...] | None = None  # obs, state, avail, alive to act on
        self._notices: list[tuple[int, str]] = []
        self._provenance: dict | None = None

    # ----- reading the shared rows ---------------------------------------------------------------------
    def _rows(self, slot: int) -> tuple[torch.Tensor, ...]:
        views = self.games.views
        obs = torch.tensor(views["obs"][:, slot], device=self.device)
        state = torch.tensor(views["state"][:, slot], device=self.device)
        avail = torch.tensor(views["avail"][:, slot], device=self.device).bool()
        alive = ~(avail[..., 0] & ~avail[..., 1:].any(-1))  # only no-op available <=> dead (SMAC rule)
        return obs, state, avail, alive

    # ----- the interface -------------------------------------------------------------------------------
    def reset(self) -> Step:
        first = self._provenance is None
        for b, answer in enumerate(self.games.ask("reset", timeout=self.games.start_timeout if first else None)):
            if isinstance(answer, str):
                self.games.restart(b, answer)
                self._notices.append((b, f"StarCraft II game {b} ({self.map_name}) {answer} on reset; restarted"))
        self._steps[:] = 0
        self._now = self._rows(1)
        if first:
            self._provenance = self._describe()
        zeros = torch.zeros(self.num_envs, device=self.device)
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        info = {"won": no, "episode_limit": no, "dropped": no, "dead_allies": zeros, "dead_enemies": zeros}
        return Step(*self._now, zeros, no, info, *self._now)

    def step(self, actions: torch.Tensor) -> Step:
        if self._now is None:
            raise RuntimeError("call reset() before step()")
        if actions.shape != (self.num_envs, self.spec.n_agents):
            raise ValueError(f"actions must have shape {(self.num_envs, self.spec.n_agents)}, got {tuple(actions.shape)}")
        if self.checked:
            check_actions(self._now[2], actions)
        answers = self.games.ask("step", actions.detach().cpu().numpy().tolist())
        self._steps += 1
        dropped = []
        for b, answer in enumerate(answers):
            if isinstance(answer, str):
                self.games.restart(b, answer)
                self._drop(b, f"{answer}; restarted")
                dropped.append(b)
            elif not answer.info:
                self._drop(b, "lost its connection and smacv2 relaunched it")
                dropped.append(b)
        answers = [a if isinstance(a, Answer) and a.info else Answer(0.0, True, {}) for a in answers]
        final = self._rows(0)
        if dropped:  # the episode's last observation is the one it was acting on
            rows = torch.tensor(dropped, device=self.device)
            for ours, last in zip(final, self._now):
                ours[rows] = last[rows]
        info = self._info(answers, dropped)
        done = torch.tensor([a.terminated for a in answers], device=self.device)
        self._steps[[a.terminated for a in answers]] = 0
        reward = torch.tensor([a.reward for a in answers], dtype=torch.float32, device=self.device)
        self._now = tuple(torch.where(_rows_of(done, started), started, last)
                          for started, last in zip(self._rows(1), final))
        return Step(*self._now, reward, done, info, *final)

    def _info(self, answers: list[Answer], dropped: list[int]) -> dict[str, torch.Tensor]:
        """SMAC's outcome of each game's step. smacv2 marks ``episode_limit`` only with ``continuing_episode``
        set, so an episode that reached the limit without a battle's end is a time limit here too."""
        n_agents, won, limit, dead_a, dead_e = self.spec.n_agents, [], [], [], []
        for b, a in enumerate(answers):
            battle_won = bool(a.info.get("battle_won", False))
            battle_over = battle_won or a.info.get("dead_allies", 0) == n_agents or \
                a.info.get("dead_enemies", 0) == self.n_enemies
            won.append(battle_won)
            limit.append(b in dropped or (a.terminated and (bool(a.info.get("episode_limit", False)) or
                                                            (self._steps[b] >= self.spec.episode_limit and not battle_over))))
            dead_a.append(float(a.info.get("dead_allies", 0)))
            dead_e.append(float(a.info.get("dead_enemies", 0)))
        is_dropped = [b in dropped for b in range(self.num_envs)]
        t = lambda xs, dt: torch.tensor(xs, dtype=dt, device=self.device)  # noqa: E731
        return {"won": t(won, torch.bool), "episode_limit": t(limit, torch.bool), "dropped": t(is_dropped, torch.bool),
                "dead_allies": t(dead_a, torch.float32), "dead_enemies": t(dead_e, torch.float32)}

    # ----- faults ----------------------------------------------------------------------------------------
    def _drop(self, b: int, what: str) -> None:
        steps = int(self._steps[b])
        self._notices.append((b, f"StarCraft II game {b} ({self.map_name}) {what}: its episode in flight "
                                 f"({steps} step{'s' if steps != 1 else ''}) is dropped"))

    def take_notices(self) -> list[tuple[int, str]]:
        notices, self._notices = self._notices, []
        return notices

    # ----- provenance ------------------------------------------------------------------------------------
    def _describe(self) -> dict:
        """The game, smacv2 and map file that produced this environment's episodes (after the first reset)."""
        root = sc2_root()
        builds = installed_builds(root)
        reported = self.games.ask_one(0, "describe")
        path = map_file(root, self.map_name)
        return {"sc2_path": str(root), "builds_installed": builds, "build_used": builds[-1] if builds else None,
                **(reported if isinstance(reported, dict) else {"reported": f"unavailable (game 0 {reported})"}),
                "smacv2": smacv2_release(),
                "map": {"file": str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None}}

    def provenance(self, member: int = 0) -> dict:
        if self._provenance is None:
            raise RuntimeError("call reset() first: the game reports its build once it runs")
        return {"game": self._provenance}

    def close(self) -> None:
        self.games.close()


def _rows_of(done: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``done`` [B] shaped to broadcast over ``x`` [B, ...]."""
    return done.view(-1, *([1] * (x.dim() - 1)))
