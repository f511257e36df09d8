"""Flatland as a task family: one backend (flatland-rl 4.3), its tasks, scores and environments."""
from __future__ import annotations

from envs.flatland.tasks import TASKS
from envs.spec import EnvSpec, Family, Score


class Flatland(Family):
    name, title = "flatland", "Flatland"
    backends = {"flatland": "flatland"}
    metric = "completion"
    scores = (Score("completion", 1.0, "completion"), Score("score", 1.0, "flatland score"))
    outcomes = (("completion", "completion"), ("score", "score"), ("deadlocked", "deadlocked"))
    action_masks = False  # the official code masks nothing on Flatland

    def tasks(self) -> list[str]:
        return list(TASKS)

    def spec(self, name: str, backend: str) -> EnvSpec:
        from envs.flatland.batched import layout
        from envs.flatland.tasks import get_task

        return self.describe(name, backend, **layout(get_task(name)))

    def make(self, name: str, backend: str, num_envs: int, device: str, seed: int, *,
             compile: bool = False, one_episode_each: bool = False, **options):
        """``compile`` changes nothing (stepping is outside torch); environments that play one episode each
        have nothing to build ahead."""
        from envs.flatland.batched import FlatlandEnv

        if one_episode_each:
            options["build_ahead"] = False
        return FlatlandEnv(name, num_envs=num_envs, device=device, seed=seed, **options)


FLATLAND = Flatland()
