"""Scripted SMAC baselines registered as algorithms: ``attack_nearest`` and ``focus_fire``.

They act from each agent's own observation and available actions (see ``policies.py``), learn nothing and
carry no state, so any suite can include them and the analysis reports them beside the learners, as each
map's difficulty floor. They exist for SMAC only: other families are refused with the tasks they support.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

import envs
from algorithms.base import Algorithm, AlgorithmConfig, Transition
from algorithms.scripted.policies import POLICIES
from envs.errors import UsageError
from envs.smac.tactical_view import ObservationDecoder
from envs.spec import EnvSpec

FAMILIES = ("smac",)  # the policies read SMAC's observation layout (envs/smac/tactical_view.py)


@dataclass(frozen=True)
class ScriptedConfig(AlgorithmConfig):
    """A script has no hyperparameters; every preset name is accepted so that any suite can include it."""

    num_envs: int = 8  # training environments the runner steps (a script gains nothing from more)

    @classmethod
    def preset(cls, name: str, spec: EnvSpec) -> ScriptedConfig:
        if spec.family not in FAMILIES:
            supported = [f"{family}/{task}" for family in FAMILIES for task in envs.FAMILIES[family].tasks()]
            raise UsageError(f"{cls.ALGORITHM} is a scripted SMAC policy and cannot play {spec.task}; "
                             f"it supports: {', '.join(supported)}")
        return cls()

    @classmethod
    def preset_names(cls) -> list[str]:
        return ["any"]


class AttackNearestConfig(ScriptedConfig):
    ALGORITHM = "attack_nearest"
    DISPLAY_NAME = "Attack nearest (script)"


class FocusFireConfig(ScriptedConfig):
    ALGORITHM = "focus_fire"
    DISPLAY_NAME = "Focus fire (script)"


class ScriptedPolicy(Algorithm):
    """Acts by ``POLICIES[config.ALGORITHM]`` on each agent's decoded observation."""

    def __init__(self, spec: EnvSpec, config: ScriptedConfig, device: torch.device | str = "cpu"):
        super().__init__(spec, config, device)
        self.policy = POLICIES[config.ALGORITHM]
        self.decode = ObservationDecoder(spec.task.split("/", 1)[1], self.device)

    def initial_memory(self, num_envs: int) -> torch.Tensor:
        return torch.zeros(num_envs, self.spec.n_agents, 0, device=self.device)

    def act(self, obs, avail_actions, memory, first, explore=True, neighbours=None):
        return self.policy(self.decode(obs, avail_actions)), memory, {}

    def observe(self, transition: Transition) -> None:
        pass

    def update(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


__all__ = ["AttackNearestConfig", "FocusFireConfig", "ScriptedConfig", "ScriptedPolicy"]
