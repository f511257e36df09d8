"""The evaluation protocol (Gorsane et al. 2022), identical for every algorithm.

Every ``eval_interval`` environment steps, at step 0 and at the last step whatever the interval, a run plays
``eval_episodes`` episodes with the decentralised policy, greedy by default, and logs ``eval/<outcome>`` (the
family's outcomes, e.g. SMAC's win rate) and ``eval/return_mean``. At the end, the best evaluated policy (by
the task's metric, ties broken by return) is re-evaluated on ``ABSOLUTE_FACTOR`` x ``eval_episodes``
episodes: the *absolute metric*. The exploring training episodes finished since the previous evaluation are
logged beside it as ``collect/...`` (the official MAMBA and MABL code logs only these).
"""
from __future__ import annotations

import torch

import envs
from suites.planning.spec import RunSpec

ABSOLUTE_FACTOR = 10


class EpisodeStats:
    """Returns, lengths and outcomes of finished episodes (training or evaluation), summed on the device as
    they finish (no host read per step) and reported as means. An episode a backend dropped (``info["dropped"]``:
    a StarCraft II game that faulted mid-episode) is counted apart, as ``dropped_episodes``, and in no mean."""

    def __init__(self, num_envs: int, device, outcomes: tuple[tuple[str, str], ...]):
        self.outcomes = outcomes  # (info key, name) read on the step that ends an episode (EnvSpec.outcomes)
        self.running = torch.zeros(2, num_envs, device=device)  # return and length of the unfinished episodes
        self.totals: dict[str, torch.Tensor] = {}

    def add(self, next_step, counted: torch.Tensor | None = None) -> None:
        """One batched step; the episodes it ends are summed where ``counted`` (default: all of them)."""
        self.running += torch.stack([next_step.reward, torch.ones_like(next_step.reward)])
        ending = next_step.done if counted is None else counted
        if "dropped" in next_step.info:
            dropped = ending & next_step.info["dropped"]
            self.totals["dropped_episodes"] = self.totals.get("dropped_episodes", 0.0) + dropped.sum()
            ending = ending & ~dropped
        ending = ending.float()
        finished = {"return_mean": self.running[0], "episode_length": self.running[1], "episodes": torch.ones_like(ending)}
        finished.update({name: next_step.info[k].float() for k, name in self.outcomes})
        for name, value in finished.items():
            self.totals[name] = self.totals.get(name, 0.0) + (value * ending).sum()
        self.running *= 1.0 - next_step.done.float()

    def report(self) -> dict[str, float]:
        """Means over the episodes finished since the last report (nothing if none finished); resets them."""
        totals, self.totals = self.totals, {}
        values = dict(zip(totals, torch.stack(list(totals.values())).tolist())) if totals else {}
        episodes, dropped = values.pop("episodes", 0.0), values.pop("dropped_episodes", None)
        counts = {"episodes": episodes} | ({} if dropped is None else {"dropped_episodes": dropped})
        if not episodes:
            return counts if dropped else {}
        return counts | {name: total / episodes for name, total in values.items()}

    def state_dict(self) -> dict:
        return {"running": self.running.clone(), "totals": dict(self.totals)}

    def load_state_dict(self, state: dict) -> None:
        self.running.copy_(state["running"])
        self.totals = dict(state["totals"])


def evaluate(algo, run_spec: RunSpec, episodes: int, seed: int, say=None) -> dict[str, float]:
    """Run exactly one episode in each of ``episodes`` fresh environments with the decentralised policy; an
    environment whose episode was dropped (a StarCraft II game that faulted) plays another in its place.
    ``say(line)``: where the environments' notices go (the run's log)."""
    env = envs.make(run_spec.task, num_envs=episodes, device=run_spec.device, seed=seed, backend=run_spec.backend, checked=False,
                    one_episode_each=True)
    try:
        step = env.reset()
        memory = algo.initial_memory(episodes)
        first = torch.ones(episodes, dtype=torch.bool, device=env.device)
        running = torch.ones(episodes, dtype=torch.bool, device=env.device)
        finished = EpisodeStats(episodes, env.device, run_spec.env_spec.outcomes)
        while bool(running.any()):
            actions, memory, _ = algo.act(step.obs, step.avail_actions, memory, first, explore=not run_spec.eval_greedy,
                                          neighbours=step.info.get("neighbours"))
            step = env.step(actions)
            finished.add(step, counted=running & step.done)  # an environment's later episodes are not counted
            ended = step.done & ~step.info["dropped"] if "dropped" in step.info else step.done
            running &= ~ended
            first = step.done
            for _, line in env.take_notices():
                if say is not None:
                    say(line)
    finally:
        env.close()
    out = finished.report()
    del out["episodes"]
    return out


def evaluation_rank(result: dict[str, float], metric: str) -> tuple[float, float]:
    """How evaluations compare when choosing the policy for the absolute metric: the task's metric, then the
    return, so that a run that never wins still keeps its best-scoring policy rather than its first."""
    return result.get(metric, result["return_mean"]), result["return_mean"]
