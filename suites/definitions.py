"""Suites are data: tasks x algorithms x preset, with named budgets.

A budget is (environment steps, evaluation interval). ``--steps N`` overrides the steps of any budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    algorithms: tuple[str, ...]
    preset: str
    budgets: dict[str, tuple[int, int]]  # name -> (env steps, eval interval)
    default_budget: str
    eval_episodes: int = 32
    description: str = ""
    overrides: dict = field(default_factory=dict)


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            name="smoke",
            description="Tiny CPU check of the whole pipeline: the four algorithms on two simulator maps (minutes).",
            tasks=("smac/3m", "smac/2s3z"),
            algorithms=("mabl", "mabl_single_level", "mamba", "mappo"),
            preset="tiny",
            budgets={"tiny": (5_120, 1_280), "short": (51_200, 5_120), "paper": (512_000, 25_600)},
            default_budget="tiny",
            eval_episodes=8,
        ),
    )
}


def get_suite(name: str) -> Suite:
    from envs import UsageError

    if name not in SUITES:
        raise UsageError(f"unknown suite {name!r}; valid suites: {', '.join(sorted(SUITES))}")
    return SUITES[name]
