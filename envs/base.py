"""The batched multi-agent environment interface shared by every task family.

One environment object simulates ``B`` independent episodes on one torch device. Every tensor is
batched: observations ``[B, N, obs_dim]``, global state ``[B, state_dim]``, available actions
``[B, N, n_actions]``, alive masks ``[B, N]``, team reward ``[B]``, done ``[B]``. Finished episodes
reset themselves inside ``step``; the ``final_*`` fields of the returned :class:`Step` keep the data of
the step that ended the episode, while ``obs``/``state``/... already describe the new episode.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field

import torch

from envs.spec import EnvSpec


@dataclass
class Step:
    """What ``reset`` and ``step`` return; see the module docstring for the auto-reset contract."""

    obs: torch.Tensor  # [B, N, obs_dim] float32
    state: torch.Tensor  # [B, state_dim] float32
    avail_actions: torch.Tensor  # [B, N, n_actions] bool
    alive: torch.Tensor  # [B, N] bool
    reward: torch.Tensor  # [B] float32, team reward of the step just taken
    done: torch.Tensor  # [B] bool, episode ended (terminated or truncated)
    info: dict[str, torch.Tensor] = field(default_factory=dict)  # [B] tensors: won, episode_limit, ...
    final_obs: torch.Tensor | None = None  # observation after the step, before any auto-reset
    final_state: torch.Tensor | None = None
    final_avail_actions: torch.Tensor | None = None
    final_alive: torch.Tensor | None = None

    @property
    def terminated(self) -> torch.Tensor:
        """Episodes that ended for a reason inside the task (not the time limit): no bootstrapping."""
        return self.done & ~self.info["episode_limit"]

    def rows(self, start: int, stop: int) -> Step:
        """Environments ``start..stop-1`` of the batch (views, no copy): one seed member's share of a batch."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "info"}
        return Step(**{k: None if v is None else v[start:stop] for k, v in fields.items()},
                    info={k: v[start:stop] for k, v in self.info.items()})

    @classmethod
    def cat(cls, steps: list[Step]) -> Step:
        """The batches of ``steps`` side by side, in order (the inverse of :meth:`rows`)."""
        first = steps[0]
        fields = {f.name: torch.cat([getattr(s, f.name) for s in steps])
                  for f in dataclasses.fields(cls) if f.name != "info" and getattr(first, f.name) is not None}
        return cls(**fields, info={k: torch.cat([s.info[k] for s in steps]) for k in first.info})


def first_unavailable(avail: torch.Tensor, actions: torch.Tensor) -> tuple[int, int, int] | None:
    """(environment, agent, action) of the first action outside ``avail`` ``[B,N,A]`` or out of range;
    None when all are allowed (one host sync). The environments' checked mode words the error."""
    n_actions = avail.shape[-1]
    ok = avail.gather(2, actions.clamp(0, n_actions - 1).long().unsqueeze(-1)).squeeze(-1)
    ok &= (actions >= 0) & (actions < n_actions)
    if bool(ok.all()):
        return None
    b, i = (int(v) for v in (~ok).nonzero()[0])
    return b, i, int(actions[b, i])


class MultiAgentEnv(abc.ABC):
    """Batched cooperative multi-agent environment (see module docstring)."""

    spec: EnvSpec
    num_envs: int
    device: torch.device

    @abc.abstractmethod
    def reset(self) -> Step:
        """Start a fresh episode in every environment."""

    @abc.abstractmethod
    def step(self, actions: torch.Tensor) -> Step:
        """Apply ``actions`` ``[B, N]`` (long) and advance every environment by one step."""

    def get_state(self) -> dict | None:
        """Snapshot for resuming mid-episode; ``None`` where a backend cannot (StarCraft II)."""
        return None

    def set_state(self, state: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot restore a snapshot")

    members: int = 1  # seed members side by side in the batch, each num_envs // members environments

    def member_state(self, member: int) -> dict | None:
        """One member's snapshot, in the format of a one-member environment's :meth:`get_state` (so a member's
        checkpoint resumes alone or in any group); ``None`` where a backend cannot snapshot."""
        if self.members != 1:
            raise NotImplementedError(f"{type(self).__name__} has no per-member snapshots")
        return self.get_state()

    def load_member_state(self, member: int, state: dict) -> None:
        if self.members != 1:
            raise NotImplementedError(f"{type(self).__name__} has no per-member snapshots")
        self.set_state(state)

    def take_notices(self) -> list[tuple[int, str]]:
        """What happened since the last call that a run's log should say, as (environment, sentence): e.g. a
        StarCraft II game restarted after a fault. Empty for backends that cannot fault that way."""
        return []

    def provenance(self, member: int = 0) -> dict:
        """What produced a member's episodes beyond this package (StarCraft II's build, smacv2, the map file), for
        its record; empty where the package is everything (the simulator, Flatland). Valid after ``reset``."""
        return {}

    def close(self) -> None:
        """Release processes or game instances; a no-op for pure-torch environments."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
