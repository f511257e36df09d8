"""Batched multi-agent environments: the family registry, the task list and ``make``.

Task ids are ``<family>/<name>``, e.g. ``smac/3s5z_vs_3s6z`` or ``flatland/10_agents``. Each family
(``envs/<family>/family.py``) says what the rest of the suite needs to know about it: its backends, tasks,
scores and outcomes (see :class:`envs.spec.Family`). SMAC runs on our torch simulator (``backend="sim"``)
or on StarCraft II through smacv2 (``backend="sc2"``); ``backend="auto"`` picks StarCraft II when it is
installed and the simulator otherwise, with a one-line notice.
"""
from __future__ import annotations

from envs.errors import UsageError
from envs.flatland.family import FLATLAND
from envs.smac.family import SMAC
from envs.spec import EnvSpec, Family, Score

__all__ = ["EnvSpec", "FAMILIES", "Family", "Score", "UsageError",
           "backends", "check_task", "env_spec", "family_of", "list_tasks", "make", "resolve_backend"]

FAMILIES: dict[str, Family] = {f.name: f for f in (SMAC, FLATLAND)}


def list_tasks() -> list[str]:
    return [f"{family.name}/{name}" for family in FAMILIES.values() for name in family.tasks()]


def check_task(task: str) -> None:
    if task not in list_tasks():
        raise UsageError(f"unknown task {task!r}; valid tasks: {', '.join(list_tasks())}")


def family_of(task: str) -> Family:
    check_task(task)
    return FAMILIES[task.split("/", 1)[0]]


def backends() -> tuple[str, ...]:
    """What ``--backend`` accepts: ``auto`` and every family's concrete backends."""
    return ("auto", *dict.fromkeys(b for family in FAMILIES.values() for b in family.backends))


def resolve_backend(task: str, backend: str = "auto", quiet: bool = False) -> str:
    """The concrete backend ``task`` runs on. Another family's backend counts as ``auto`` here, so one suite
    command can mix families (``--backend sim`` leaves Flatland on flatland)."""
    if backend not in backends():
        raise UsageError(f"unknown backend {backend!r}; valid backends: {', '.join(backends())}")
    family = family_of(task)
    return family.choose_backend(backend if backend in family.backends else "auto", quiet)


def env_spec(task: str, backend: str = "auto") -> EnvSpec:
    """The spec of ``task`` on ``backend`` (with default options) without building an environment."""
    family = family_of(task)
    return family.spec(task.split("/", 1)[1], resolve_backend(task, backend, quiet=True))


def make(task: str, num_envs: int = 1, device: str = "cpu", seed: int = 0,
         backend: str = "auto", compile: bool = False, one_episode_each: bool = False, checked: bool = True, **options):
    """Build ``num_envs`` batched environments of ``task`` on ``device``.

    ``compile`` runs the SMAC simulator's step through ``torch.compile`` (see ``SmacSimulator``); the other
    backends step outside torch, so it changes nothing there. ``one_episode_each`` tells the family that each
    environment plays a single episode (evaluation), so nothing is prepared for later ones. ``checked`` checks every
    action against the available ones (a ValueError names the first that is not).

    SMAC on StarCraft II takes ``timeout`` and ``start_timeout`` (seconds before a game counts as hung) and
    ``env_factory`` (what builds one game; smacv2's ``StarCraft2Env`` by default); the simulator ``substeps``.

    Flatland takes ``workers`` (processes stepping environments, this one included; 1 steps all in-process),
    ``build_ahead`` (helper processes build next episodes), ``tree_depth``, ``state`` ("obs" or "rich") and
    task settings to change (``n_agents``, ``width``, ``height``, ``n_cities``, ``malfunction_rate``...)."""
    family = family_of(task)
    if num_envs < 1:
        raise UsageError(f"num_envs must be >= 1, got {num_envs}")
    return family.make(task.split("/", 1)[1], resolve_backend(task, backend), num_envs, device, seed, compile=compile,
                       one_episode_each=one_episode_each, checked=checked, **options)

