"""Seed members side by side: the environments of K runs that differ only in their seed, as one batch.

A family whose environment has a member axis of its own (the SMAC simulator: one generator per member)
builds one environment over all members; any other family gets :class:`StackedMembers`, K environments of
its own stepped one after another behind the same interface. Either way member ``k`` owns environments
``k*B .. (k+1)*B-1`` of the batch, and its stream equals that of an environment built with its seed alone.
"""
from __future__ import annotations

from collections.abc import Collection

import torch

import envs
from envs.base import MultiAgentEnv, Step


class StackedMembers(MultiAgentEnv):
    """K environments of one task (one per member), concatenated along the batch."""

    def __init__(self, parts: list[MultiAgentEnv]):
        self.parts = parts
        self.spec, self.device = parts[0].spec, parts[0].device
        self.members, self.member_envs = len(parts), parts[0].num_envs
        self.num_envs = self.members * self.member_envs

    def reset(self) -> Step:
        self.last = [part.reset() for part in self.parts]
        return Step.cat(self.last)

    def step(self, actions: torch.Tensor, held: Collection[int] = ()) -> Step:
        """Step every member's environments, except those of the members in ``held`` (indices), which stay
        where they were (their rows repeat their last step)."""
        self.last = [last if k in held else part.step(a)
                     for k, (part, last, a) in enumerate(zip(self.parts, self.last, actions.split(self.member_envs)))]
        return Step.cat(self.last)

    def get_state(self) -> dict | None:
        states = [part.get_state() for part in self.parts]
        return None if any(s is None for s in states) else {"members": states}

    def set_state(self, state: dict) -> None:
        for part, saved in zip(self.parts, state["members"]):
            part.set_state(saved)

    def member_state(self, member: int) -> dict | None:
        return self.parts[member].get_state()

    def load_member_state(self, member: int, state: dict) -> None:
        self.parts[member].set_state(state)

    def take_notices(self) -> list[tuple[int, str]]:
        return [(k * self.member_envs + b, text) for k, part in enumerate(self.parts) for b, text in part.take_notices()]

    def provenance(self, member: int = 0) -> dict:
        return self.parts[member].provenance()

    def close(self) -> None:
        for part in self.parts:
            part.close()


def step_holding(env: MultiAgentEnv, actions: torch.Tensor, held: Collection[int]) -> Step:
    """``env.step(actions)`` for every member except those in ``held`` (indices), whose environments stay exactly
    where they were, generators included: a member that waits for the others (``algorithms/members.py``)
    continues its own stream afterwards. Their rows of the result are not to be read."""
    if not held:
        return env.step(actions)
    if isinstance(env, StackedMembers):
        return env.step(actions, held)
    saved = {k: env.member_state(k) for k in held}
    step = env.step(actions)
    for k, state in saved.items():
        env.load_member_state(k, state)
    return step


def make_members(task: str, seeds: list[int], num_envs: int = 1, device: str = "cpu", backend: str = "auto",
                 compile: bool = False, **options):
    """``num_envs`` environments for each seed in ``seeds``, as one batch of ``len(seeds) * num_envs``:
    member ``k`` owns environments ``k*num_envs .. (k+1)*num_envs-1`` and behaves exactly as
    ``make(task, num_envs, seed=seeds[k])`` would (``envs/members.py``)."""
    if len(seeds) == 1:
        return envs.make(task, num_envs, device, seeds[0], backend, compile, **options)
    family, name = envs.family_of(task), task.split("/", 1)[1]
    concrete = envs.resolve_backend(task, backend)
    if family.member_axis(concrete):
        return family.make(name, concrete, num_envs * len(seeds), device, tuple(seeds), compile=compile, **options)
    return StackedMembers([envs.make(task, num_envs, device, s, backend, compile, **options) for s in seeds])
