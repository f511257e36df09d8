"""Seed members computed as one: the networks of K runs that differ only in their seed, stacked on a leading
member axis and called once for all (``torch.func.vmap`` over ``torch.func.functional_call``), as JaxMARL
and PureJaxRL train seeds with ``jax.vmap``.

What stays each member's own: its parameters and buffers (one slice of every stacked tensor), its Adam moments
(Adam is elementwise, so one Adam over the stacked tensors is K independent ones), its gradient clipping (the
norm of its own slice of the gradients), its divergence check, and its random draws, which the caller makes
outside the vectorised computation with the member's generators swapped in. Nothing a member computes reads
another member's slice, so its numbers do not depend on the others; they equal a solo run's to float
rounding (batched matrix products sum in another order), not bit for bit.

The algorithm's own methods do the computing: ``call`` runs one of them with every member's slice swapped
into the template member's modules in turn, so the batched path has no second copy of any network or loss.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from algorithms.base import Divergence, check_finite


class Networks(nn.Module):
    """The modules an algorithm computes with, under one root, so that ``functional_call`` can swap all their
    parameters and buffers at once; calling it runs ``fn(*args)`` with them swapped in."""

    def __init__(self, **modules: nn.Module):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, fn: Callable, *args):
        return fn(*args)


class StackedNetworks:
    """K members' ``Networks`` as stacked tensors ``[K, ...]``: trainable leaves for one optimiser, plus
    buffers (updated in place through their slices)."""

    def __init__(self, members: Sequence[Networks]):
        self.members, self.template = list(members), members[0]
        self.params, self.buffers = stack_module_state(self.members)
        self._subsets: dict[tuple[str, ...], tuple[dict, dict]] = {}  # by the modules a call names

    def _tensors(self, modules: tuple[str, ...] | None) -> tuple[dict, dict]:
        """The stacked parameters and buffers of ``modules`` (all when None), picked out once per set of modules
        (the stacked tensors themselves never change identity: they are updated in place)."""
        if modules is None:
            return self.params, self.buffers
        if modules not in self._subsets:
            self._subsets[modules] = tuple({name: t for name, t in tensors.items() if name.split(".", 1)[0] in modules}
                                           for tensors in (self.params, self.buffers))
        return self._subsets[modules]

    def call(self, fn: Callable, *args, modules: tuple[str, ...] | None = None):
        """``fn(*args)`` of every member at once: ``args`` carry the member axis first, so do the results.
        ``fn`` must be a method of the template member's algorithm (it reads the template's modules);
        ``modules`` names the ones it uses (default: all), as swapping costs time per tensor."""
        params, buffers = self._tensors(modules)

        def one(params, buffers, *member_args):
            return functional_call(self.template, (params, buffers), (fn, *member_args), strict=False)

        return vmap(one)(params, buffers, *args)

    def parameters(self, module: str) -> list[torch.Tensor]:
        """The stacked parameters of one module, in its ``parameters()`` order (the order its optimiser holds)."""
        return [p for name, p in self.params.items() if name.split(".", 1)[0] == module]

    @torch.no_grad()
    def write_back(self, members: Sequence[int]) -> None:
        """Copy the stacked values into the modules of ``members`` (indices), which then hold what they learnt."""
        for k in members:
            own = dict(self.members[k].named_parameters()) | dict(self.members[k].named_buffers())
            for name, stacked in (self.params | self.buffers).items():
                own[name].copy_(stacked[k])


class StackedAdam:
    """One ``torch.optim.Adam`` over a module's stacked parameters, holding the members' moments stacked. Adam
    works elementwise, so each member's slice takes exactly the step its own optimiser would. All members must
    have taken the same number of steps (one step counter serves them all): see ``same_steps``."""

    def __init__(self, optimisers: Sequence[torch.optim.Adam], stacked: list[torch.Tensor]):
        self.optimisers = list(optimisers)
        self.adam = torch.optim.Adam(stacked)
        self.adam.param_groups[0].update({k: v for k, v in optimisers[0].param_groups[0].items() if k != "params"})
        own = [o.param_groups[0]["params"] for o in optimisers]
        for i, p in enumerate(stacked):
            states = [o.state.get(mine[i]) for o, mine in zip(optimisers, own)]
            if states[0]:
                self.adam.state[p] = {"step": states[0]["step"].clone(),
                                      **{k: torch.stack([s[k] for s in states]) for k in ("exp_avg", "exp_avg_sq")}}

    @staticmethod
    def same_steps(optimisers: Sequence[torch.optim.Optimizer]) -> bool:
        def steps(o):
            return float(next(iter(o.state.values()))["step"]) if o.state else 0.0

        return len({steps(o) for o in optimisers}) == 1

    @torch.no_grad()
    def write_back(self, members: Sequence[int]) -> None:
        """Give each of ``members`` (indices) its slice of the moments and the step count, as its own optimiser
        state, so its checkpoint and any later solo step continue from them."""
        for k in members:
            own = self.optimisers[k].param_groups[0]["params"]
            for mine, p in zip(own, self.adam.param_groups[0]["params"]):
                state = self.adam.state.get(p)
                if state:
                    self.optimisers[k].state[mine] = {"step": state["step"].clone(), "exp_avg": state["exp_avg"][k].clone(),
                                                      "exp_avg_sq": state["exp_avg_sq"][k].clone()}


def clip_members(stacked: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` for every member at once: each member's gradients scaled by its own total norm
    (``max_norm / (norm + 1e-6)``, at most 1); returns the norms ``[K]`` before clipping."""
    norms = torch.stack([p.grad.flatten(1).norm(dim=1) for p in stacked], 1).norm(dim=1)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in stacked:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
    return norms


def diverged_members(losses: dict[str, torch.Tensor], grad_norms: dict[str, torch.Tensor]) -> dict[int, Divergence]:
    """The members (index -> the error ``check_finite`` raises for it alone) whose losses or gradient norms,
    each ``[K]``, are not finite; one host sync when all are."""
    values = torch.stack([v.detach().float() for v in (*losses.values(), *grad_norms.values())], 1)
    finite = torch.isfinite(values).all(1)
    if bool(finite.all()):
        return {}
    diverged = {}
    for k in (~finite).nonzero().flatten().tolist():
        try:
            check_finite({n: v[k] for n, v in losses.items()}, {n: v[k] for n, v in grad_norms.items()})
        except Divergence as err:
            diverged[k] = err
    return diverged


class MemberBatch(abc.ABC):
    """An algorithm's seed members acting and learning as one. ``draws[k]`` swaps member k's generators in
    (a context manager), for every random draw of its own. Made by ``Algorithm.member_batch``."""

    def __init__(self, draws: Sequence[Callable[[], AbstractContextManager]]):
        self.draws = list(draws)

    @abc.abstractmethod
    def act(self, obs, avail_actions, memory, first) -> list[tuple[torch.Tensor, torch.Tensor, dict]]:
        """Each member's ``act`` (exploring) on its inputs (member axis first)."""

    @abc.abstractmethod
    def observe_and_update(self, transitions) -> list[dict[str, float] | Divergence]:
        """Each member's ``observe`` of its transition, then its ``update``: its metrics, or the Divergence that
        stopped it (its modules then keep what they held before the update)."""
