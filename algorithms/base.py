"""The algorithm interface shared by MAPPO, MAMBA, MABL and its ablation.

Centralised training, decentralised execution (CTDE) is enforced by the signatures: ``act`` receives
only per-agent local inputs (each agent's observation, available actions and its own recurrent memory);
``observe`` receives the full transition, global state included, for centralised training.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from envs.base import Step
from envs.errors import UsageError
from envs.spec import EnvSpec


@dataclass
class Transition:
    """One batched environment step as the runner hands it to ``observe``."""

    obs: torch.Tensor  # [B,N,obs]
    state: torch.Tensor  # [B,S]
    avail_actions: torch.Tensor  # [B,N,A] bool
    alive: torch.Tensor  # [B,N] bool
    first: torch.Tensor  # [B] bool, obs is the first of an episode
    actions: torch.Tensor  # [B,N] long
    reward: torch.Tensor  # [B] team reward
    agent_reward: torch.Tensor  # [B,N] each agent's: the team reward (SMAC) or the task's own (Flatland trains)
    done: torch.Tensor  # [B] episode ended after this step
    terminated: torch.Tensor  # [B] ended for a task reason (no bootstrapping); done & ~time limit
    next_obs: torch.Tensor  # what agents see next (a new episode's first obs where done)
    next_state: torch.Tensor
    next_avail_actions: torch.Tensor
    next_alive: torch.Tensor
    final_obs: torch.Tensor  # observation right after the step, before any auto-reset
    final_state: torch.Tensor
    final_avail_actions: torch.Tensor
    final_alive: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # whatever ``act`` returned

    @classmethod
    def between(cls, step: Step, first: torch.Tensor, actions: torch.Tensor, next_step: Step,
                extras: dict[str, torch.Tensor] | None = None) -> Transition:
        """The transition from ``step`` (where ``actions`` were taken) to ``next_step``, the env's answer."""
        after = next_step
        return cls(
            obs=step.obs, state=step.state, avail_actions=step.avail_actions, alive=step.alive, first=first,
            actions=actions, reward=after.reward, done=after.done, terminated=after.terminated, next_obs=after.obs,
            agent_reward=after.info.get("agent_reward", after.reward.unsqueeze(-1).expand_as(after.alive)),
            next_state=after.state, next_avail_actions=after.avail_actions, next_alive=after.alive, final_obs=after.final_obs,
            final_state=after.final_state, final_avail_actions=after.final_avail_actions, final_alive=after.final_alive,
            extras=extras or {},
        )


@dataclass(frozen=True)
class AlgorithmConfig:
    """What the suite needs of every algorithm's config. A frozen dataclass whose fields all have defaults
    (``--set`` converts a value to its default's type); ``preset`` builds one for a task, ``asdict`` is what
    the run's config.json records, ``num_envs`` how many training environments the runner steps."""

    ALGORITHM: ClassVar[str] = ""  # the registry name, for messages
    DISPLAY_NAME: ClassVar[str] = ""  # as a paper names it; recorded with each run, read by the analysis
    # Fields checked whenever a config is made: above zero (whole numbers: at least 1), zero or more, or
    # between 0 and 1. A value outside trains nothing or nonsense, so it is refused before anything runs.
    POSITIVE: ClassVar[tuple[str, ...]] = ("num_envs",)
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ()
    UNIT_INTERVAL: ClassVar[tuple[str, ...]] = ()
    num_envs: int = 8

    def __post_init__(self):
        for name in self.POSITIVE:
            value = getattr(self, name)
            if not value > 0:
                self.refuse(name, "at least 1" if isinstance(value, int) else "positive")
        for name in self.NON_NEGATIVE:
            if not getattr(self, name) >= 0:
                self.refuse(name, "zero or more")
        for name in self.UNIT_INTERVAL:
            if not 0 <= getattr(self, name) <= 1:
                self.refuse(name, "between 0 and 1")

    def refuse(self, name: str, what: str) -> None:
        raise UsageError(f"{self.ALGORITHM} config: {name} must be {what}, got {getattr(self, name)}")

    @classmethod
    def preset(cls, name: str, spec: EnvSpec) -> AlgorithmConfig:
        """The config preset ``name`` gives for ``spec``'s task; UsageError for a name that does not exist or fit."""
        raise NotImplementedError

    @classmethod
    def preset_names(cls) -> list[str]:
        raise NotImplementedError

    @classmethod
    def unknown_preset(cls, name: str) -> UsageError:
        return UsageError(f"unknown {cls.ALGORITHM} preset {name!r}; valid presets: {', '.join(cls.preset_names())}")

    def asdict(self) -> dict:
        return dataclasses.asdict(self)


class Divergence(RuntimeError):
    """A loss or gradient became NaN or inf; the run must stop."""


class Algorithm(abc.ABC):
    """Built from an env spec, a frozen config preset and a device."""

    def __init__(self, spec: EnvSpec, config: Any, device: torch.device | str = "cpu"):
        self.spec, self.config, self.device = spec, config, torch.device(device)

    @abc.abstractmethod
    def initial_memory(self, num_envs: int) -> torch.Tensor:
        """Per-agent recurrent memory ``[B, N, ...]`` at the start of an episode."""

    @abc.abstractmethod
    def act(self, obs: torch.Tensor, avail_actions: torch.Tensor, memory: torch.Tensor, first: torch.Tensor,
            explore: bool = True, neighbours: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Decentralised actions ``[B,N]`` from local inputs only; returns (actions, memory, extras).

        ``first`` ``[B]`` marks environments whose episode just started (memory is reset there).
        ``explore=False`` acts greedily (evaluation). ``neighbours`` ``[B,N,N]`` (Flatland's
        ``info["neighbours"]``): which other agents each agent currently observes; only algorithms that
        communicate at execution (MAMBA) read it, to limit whom each agent hears."""

    @abc.abstractmethod
    def observe(self, transition: Transition) -> None:
        """Store a full transition for centralised training."""

    @abc.abstractmethod
    def update(self) -> dict[str, float]:
        """Learn if it is time to (the algorithm's own schedule); returns metrics, empty if it did not."""

    @classmethod
    def member_batch(cls, members: list[Algorithm], draws: list) -> Any:
        """The seed members computed as one (a ``MemberBatch``, ``algorithms/members.py``), or None: where an
        algorithm has no batched form, or its members are not in step, each acts and learns on its own.
        ``draws[k]()`` swaps member k's generators in, for its random draws."""
        return None

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-for-bit on CPU (networks, optimisers, buffers, RNG)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def check_finite(losses: dict[str, torch.Tensor], grad_norms: dict[str, torch.Tensor]) -> None:
    """Raise :class:`Divergence` naming the first non-finite loss, else the first non-finite gradient norm
    (a NaN or inf anywhere in a module's gradients makes its norm non-finite). One host sync when all is well;
    call it before the optimiser step so a NaN never reaches the parameters."""
    values = [v.detach().float().reshape(()) for v in (*losses.values(), *grad_norms.values())]
    if bool(torch.isfinite(torch.stack(values)).all()):
        return
    for name, value in losses.items():
        if not bool(torch.isfinite(value)):
            raise Divergence(f"loss {name!r} is not finite ({float(value.detach())})")
    for name, norm in grad_norms.items():
        if not bool(torch.isfinite(norm)):
            raise Divergence(f"gradient of {name!r} is not finite")
