"""Learner steps that never let a NaN reach the parameters, without a host sync per step.

A non-finite loss or gradient sets one flag that every optimiser of the learner shares as fused Adam's
``found_inf``: that update and every later one become no-ops, inside replayed CUDA graphs too. Once per
learner call, :meth:`DivergenceGuard.check` reads the flag (one host read) and names the first non-finite
value watched since the last report."""
from __future__ import annotations

import math

import torch

from algorithms.base import Divergence


class DivergenceGuard:
    def __init__(self, device: torch.device):
        self.device = device
        # 1 once a loss or gradient was not finite; float32 whatever the default dtype, as fused Adam requires
        self.skip_updates = torch.zeros((), dtype=torch.float32, device=device)
        self.watched: list[tuple[str, torch.Tensor]] = []

    def adam(self, parameters, **options) -> torch.optim.Adam:
        """Fused Adam (one kernel per step; capturable in a CUDA graph) that skips its update once the guard trips."""
        optimiser = torch.optim.Adam(parameters, fused=True, capturable=self.device.type == "cuda", **options)
        optimiser.found_inf = self.skip_updates
        return optimiser

    def step(self, optimiser: torch.optim.Optimizer, module: torch.nn.Module, loss: torch.Tensor,
             clip: float) -> torch.Tensor:
        """Backward, clip, step; returns the gradient norm."""
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        self.skip_updates.masked_fill_(~torch.isfinite(loss.detach() + norm), 1.0)
        optimiser.step()
        return norm

    def watch(self, values: dict[str, torch.Tensor]) -> None:
        self.watched.extend((k, v.detach()) for k, v in values.items())

    def read(self, current: dict[str, torch.Tensor]) -> list[tuple[str, float]]:
        """The values watched since the last report, then ``current``'s, in one host read."""
        names = [k for k, _ in self.watched] + list(current)
        return list(zip(names, torch.stack([v.float() for _, v in self.watched] + list(current.values())).tolist()))

    def check(self, current: dict[str, torch.Tensor], learner_calls: int) -> None:
        """Raise :class:`Divergence` naming the first non-finite value watched since the last report."""
        if not bool(self.skip_updates):
            return
        name, value = next((n, v) for n, v in self.read(current) if not math.isfinite(v))
        raise Divergence(f"{name!r} is not finite ({value}) in learner call {learner_calls}; "
                         "that update and all later ones were skipped")

    def report(self, current: dict[str, torch.Tensor]) -> dict[str, float]:
        """Means of the values watched since the last report, and ``current``'s values; one host read."""
        values = self.read(current)
        watched, now = values[:len(self.watched)], values[len(self.watched):]
        self.watched.clear()
        sums: dict[str, list[float]] = {}
        for name, value in watched:
            sums.setdefault(name, []).append(value)
        return {**{k: sum(v) / len(v) for k, v in sums.items()}, **dict(now)}
