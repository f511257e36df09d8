"""Batched multi-agent environments: the task registry and ``make``.

Task ids are ``<family>/<name>``, e.g. ``smac/3s5z_vs_3s6z`` or ``flatland/10_agents``. SMAC runs on our
torch simulator (``backend="sim"``) or on StarCraft II through smacv2 (``backend="sc2"``); ``backend="auto"``
picks StarCraft II when it is installed and the simulator otherwise, with a one-line notice. Flatland has
one backend (flatland-rl 4.3), so ``backend`` only matters for SMAC tasks.
"""
from __future__ import annotations

import sys

import torch

from envs.base import EnvSpec, MultiAgentEnv, Step
from envs.flatland.tasks import TASKS as FLATLAND_TASKS
from envs.smac.maps import MAPS

__all__ = ["EnvSpec", "MultiAgentEnv", "Step", "make", "list_tasks", "BACKENDS", "UsageError", "resolve_backend"]

BACKENDS = ("auto", "sim", "sc2")


class UsageError(ValueError):
    """Bad names or values from the user; the CLI turns these into exit code 2."""


def list_tasks() -> list[str]:
    return [f"smac/{m}" for m in sorted(MAPS)] + [f"flatland/{t}" for t in FLATLAND_TASKS]


def resolve_backend(task: str, backend: str = "auto", quiet: bool = False) -> str:
    """The concrete backend a task runs on: ``sim`` or ``sc2`` for SMAC; Flatland's only one, ``flatland``
    (the SMAC choice is accepted and ignored there, so one suite command can mix families)."""
    family = task.split("/", 1)[0]
    if family != "smac" and backend in BACKENDS + (family,):
        return family
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    from envs.smac.sc2 import INSTALL_HINT, sc2_available

    if backend == "sc2" and not sc2_available():
        raise UsageError(INSTALL_HINT)
    if backend == "auto":
        if sc2_available():
            return "sc2"
        if not quiet:
            print("note: StarCraft II not found; SMAC runs on the built-in simulator (--backend sim).",
                  file=sys.stderr)
        return "sim"
    return backend


def check_task(task: str) -> None:
    if task not in list_tasks():
        raise UsageError(f"unknown task {task!r}; valid tasks: {', '.join(list_tasks())}")


def make(task: str, num_envs: int = 1, device: str | torch.device = "cpu", seed: int = 0,
         backend: str = "auto", compile: bool = False, **kwargs) -> MultiAgentEnv:
    """Build ``num_envs`` batched environments of ``task`` on ``device``.

    ``compile`` runs the SMAC simulator's step through ``torch.compile`` (see ``SmacSimulator``); the other
    backends step outside torch, so it changes nothing there.

    Flatland takes ``workers`` (processes stepping environments, this one included; 1 steps all in-process),
    ``build_ahead`` (helper processes build next episodes), ``tree_depth``, ``state`` ("obs" or "rich") and
    task settings to change (``n_agents``, ``width``, ``height``, ``n_cities``, ``malfunction_rate``...)."""
    check_task(task)
    if num_envs < 1:
        raise UsageError(f"num_envs must be >= 1, got {num_envs}")
    family, name = task.split("/", 1)
    chosen = resolve_backend(task, backend)
    if family == "flatland":
        from envs.flatland.batched import FlatlandEnv

        return FlatlandEnv(name, num_envs=num_envs, device=device, seed=seed, **kwargs)
    if chosen == "sc2":
        from envs.smac.sc2 import Sc2Env

        return Sc2Env(name, num_envs=num_envs, device=device, seed=seed, **kwargs)
    from envs.smac.simulator import SmacSimulator

    return SmacSimulator(name, num_envs=num_envs, device=device, seed=seed, compile=compile, **kwargs)
