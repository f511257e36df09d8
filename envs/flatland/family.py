"""Flatland as a task family: one backend (flatland-rl 4.3), its tasks, scores and environments."""
from __future__ import annotations

from envs.flatland.tasks import TASKS, get_task
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
        from envs.flatland.rail import sizes

        return self.describe(name, backend, **sizes(get_task(name)))

    def make(self, name: str, backend: str, num_envs: int, device: str, seed: int, *,
             compile: bool = False, one_episode_each: bool = False, checked: bool = True, **options):
        """The task with the settings among ``options`` changed, and its spec for the observation options
        (``tree_depth``, ``state``), handed to the environment. ``compile`` changes nothing (stepping is
        outside torch); environments that play one episode each have nothing to build ahead."""
        from envs.flatland.batched import ENV_OPTIONS, FlatlandEnv
        from envs.flatland.rail import TREE_DEPTH, sizes

        env_options = {k: options.pop(k) for k in ENV_OPTIONS if k in options}
        tree_depth, state = options.pop("tree_depth", TREE_DEPTH), options.pop("state", "obs")
        if one_episode_each:
            env_options["build_ahead"] = False
        task = get_task(name, **options)
        spec = self.describe(name, backend, **sizes(task, tree_depth, state))
        return FlatlandEnv(spec, task, tree_depth, state, num_envs=num_envs, device=device, seed=seed, checked=checked,
                           **env_options)


FLATLAND = Flatland()
