"""Sequence replay with absorbing states and ``fake`` masks, kept on the training device.

After jbr-ai-labs/mamba@2c97258 ``agent/memory/DreamerMemory.py`` and ``agent/workers/DreamerWorker.py``
(MABL's copy adds the global state). Entry k of an episode stream holds what the agent saw before acting
(observation, global state, available actions, ``fake``) and what followed the action (each agent's
reward, done): SMAC copies the team reward to every agent, Flatland trains have their own (official).
When an episode ends for a task reason (not a time limit), two absorbing entries follow: zero observation
and state, a random action, reward 0, done 1, fake 1, all actions available. ``last`` marks an episode's
final entry, where the recurrent state is reset.

The official buffer is one FIFO stream. Here each of the B environments has its own ring of
``capacity // B`` entries, so batched collection keeps every stream contiguous; with B = 1 it is the
official buffer. A sequence start is drawn uniformly over all valid starts of all streams (the official
rule: a sequence never crosses a stream's write position).
"""
from __future__ import annotations

import torch

from algorithms.sampling import uniform


class SequenceReplay:
    FIELDS = ("obs", "state", "avail", "fake", "action", "reward", "done", "last")

    def __init__(self, capacity: int, num_envs: int, n_agents: int, obs_dim: int, state_dim: int, n_actions: int,
                 seq_length: int, device):
        self.size, self.num_envs, self.seq_length = capacity // num_envs, num_envs, seq_length
        self.n_actions, self.device = n_actions, torch.device(device)
        c, b, n = self.size, num_envs, n_agents
        f32, boolean = dict(device=self.device), dict(dtype=torch.bool, device=self.device)
        self.data = {
            "obs": torch.zeros(c, b, n, obs_dim, **f32), "state": torch.zeros(c, b, state_dim, **f32),
            "avail": torch.zeros(c, b, n, n_actions, **boolean), "fake": torch.zeros(c, b, n, **boolean),
            "action": torch.zeros(c, b, n, dtype=torch.long, device=self.device),
            "reward": torch.zeros(c, b, n, **f32), "done": torch.zeros(c, b, n, **boolean),
            "last": torch.zeros(c, b, **boolean),
        }
        self.next_idx = torch.zeros(b, dtype=torch.long, device=self.device)
        self.count = torch.zeros(b, dtype=torch.long, device=self.device)

    def __len__(self) -> int:
        return int(self.count.sum())

    def _write(self, envs: torch.Tensor, entry: dict[str, torch.Tensor]) -> None:
        rows = self.next_idx[envs]
        for key, value in entry.items():
            self.data[key][rows, envs] = value
        self.next_idx[envs] = (rows + 1) % self.size
        self.count[envs] = (self.count[envs] + 1).clamp(max=self.size)

    def add(self, obs, state, avail, fake, action, reward, done, last, absorbing) -> None:
        """One step of all B environments; ``absorbing`` ``[B]`` appends two absorbing entries there."""
        everyone = torch.arange(self.num_envs, device=self.device)
        self._write(everyone, dict(obs=obs, state=state, avail=avail, fake=fake, action=action, reward=reward,
                                   done=done, last=last & ~absorbing))
        envs = absorbing.nonzero().squeeze(-1)
        k, n = envs.numel(), obs.shape[1]
        if k == 0:
            return
        for is_last in (False, True):
            self._write(envs, dict(
                obs=torch.zeros(k, n, obs.shape[-1], device=self.device),
                state=torch.zeros(k, state.shape[-1], device=self.device),
                avail=torch.ones(k, n, self.n_actions, dtype=torch.bool, device=self.device),
                fake=torch.ones(k, n, dtype=torch.bool, device=self.device),
                action=torch.randint(0, self.n_actions, (k, n), device=self.device),
                reward=torch.zeros(k, n, device=self.device),
                done=torch.ones(k, n, dtype=torch.bool, device=self.device),
                last=torch.full((k,), is_last, device=self.device),
            ))

    def _valid_starts(self) -> torch.Tensor:
        """Valid sequence starts per stream: [0, count - L) while filling (the official randint bound), else
        the C - L + 1 starts that do not cross the write position."""
        full = self.count == self.size
        return torch.where(full, self.size - self.seq_length + 1, self.count - self.seq_length).clamp(min=0)

    def ready(self) -> bool:
        """Whether some stream holds a whole sequence (one host read; :meth:`sample` itself never syncs)."""
        return bool(self._valid_starts().sum() > 0)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """``batch_size`` sequences ``[L-1, batch, ...]`` with the official shift: observation, state,
        available actions, fake and last from entries 1..L-1; action, reward and done from 0..L-2.

        Starts are uniform over all valid starts of all streams: one uniform position in their concatenation,
        mapped to (stream, offset). Without host reads, so it can run inside a CUDA graph; call it only when
        :meth:`ready`."""
        total = self._valid_starts().sum()
        return self.sequences(torch.minimum((uniform((batch_size,), device=self.device) * total).long(), total - 1))

    def sequences(self, position: torch.Tensor) -> dict[str, torch.Tensor]:
        """The sequences at ``position`` ``[batch]`` in the concatenation of all streams' valid starts, in the
        layout of :meth:`sample`."""
        n_starts = self._valid_starts()
        ends = n_starts.cumsum(0)
        env = torch.searchsorted(ends, position, right=True).clamp(max=self.num_envs - 1)
        offset = position - (ends[env] - n_starts[env])
        start = torch.where(self.count[env] == self.size, self.next_idx[env] + offset, offset)
        rows = (start.unsqueeze(0) + torch.arange(self.seq_length, device=self.device).unsqueeze(1)) % self.size
        cols = env.unsqueeze(0).expand_as(rows)
        seq = {key: value[rows, cols] for key, value in self.data.items()}
        out = {key: seq[key][1:] for key in ("obs", "state", "avail", "fake", "last")}
        out.update({key: seq[key][:-1] for key in ("action", "reward", "done")})
        out["action"] = torch.nn.functional.one_hot(out["action"], self.n_actions).float()
        return out

    def state_dict(self) -> dict:
        filled = int(self.count.max())  # rows beyond every stream's count were never written
        return {"data": {k: v[:filled].clone() for k, v in self.data.items()}, "next_idx": self.next_idx.clone(),
                "count": self.count.clone()}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state["data"].items():
            self.data[key][: value.shape[0]] = value.to(self.device)
        self.next_idx.copy_(state["next_idx"])
        self.count.copy_(state["count"])
