"""Seed members computed as one: the networks of K runs that differ only in their seed, stacked on a leading
member axis and called once for all (``torch.func.functional_call`` with the stacked tensors), as JaxMARL and
PureJaxRL train seeds with ``jax.vmap``. The algorithms' layers take the member axis themselves
(``algorithms/layers.py``), so no ``torch.func.vmap`` is needed, which would cost more per operation and
round differently from a solo run.

What stays each member's own: its parameters and buffers (one slice of every stacked tensor), its Adam moments
and step count, its gradient clipping (the norm of its own slice of the gradients), its divergence check, and
its random draws, made from its own generators. Nothing a member computes reads another member's slice, and
every operation gives a member's slice its solo run's numbers, bit for bit on the CPU (``algorithms/layers.py``,
``StackedAdam``): a member's series is its solo run's, whatever the others hold.

The algorithm's own methods do the computing, in their members forms: ``call`` runs one of them with the
stacked tensors swapped into the template member's modules, so the batched path has no second copy of any
network or loss.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.optim.adam import adam

from algorithms import sampling
from algorithms.base import Divergence, check_finite
from algorithms.layers import per_member


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
    """K members' ``Networks`` as stacked tensors ``[K, ...]``: trainable leaves for one optimiser, plus the
    persistent buffers (each member's state, updated in place through its slice; ``call`` says why the
    non-persistent ones are not stacked)."""

    def __init__(self, members: Sequence[Networks]):
        self.members, self.template = list(members), members[0]
        self.params, buffers = stack_module_state(self.members)
        persistent = self.template.state_dict().keys()
        self.buffers = {name: b for name, b in buffers.items() if name in persistent}
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

    def call(self, fn: Callable, *args, modules: tuple[str, ...] | None = None,
             generators: Sequence[torch.Generator | None] | None = None):
        """``fn(*args)`` of every member at once, on the stacked parameters: ``args`` carry the member axis first,
        so do the results. ``fn`` is a method of the template member's algorithm in its members form: it reads
        the template's modules, whose layers take the member axis themselves (``algorithms/layers.py``);
        ``modules`` names the ones it uses (default: all), as swapping costs time per tensor. Where ``fn``
        draws (through ``algorithms/sampling.py``), member k draws from ``generators[k]``.

        The modules' persistent buffers (state, such as MAPPO's value normaliser) are the stacked ones, updated
        in place; a non-persistent buffer is a constant of the architecture, the same for every member (the
        attention's position table), and the template's own serves all."""
        params, buffers = self._tensors(modules)
        with sampling.folded(generators) if generators is not None else nullcontext():
            return functional_call(self.template, (params, buffers), (fn, *args), strict=False)

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
    """Adam over the stacked parameters of K members' copies of one module, each member with its own moments and
    its own step count, so that members that began learning at different times each take exactly their own
    step. The update is ``torch.optim.Adam``'s (L2 weight decay, no AMSGrad) with the bias corrections of each
    member's step count, bit for bit each member's own optimiser's step on the CPU: a fused optimiser's (the
    world models') through torch's fused kernel on each member's slices, which keep a step count each as a solo
    optimiser's parameters do; the single-tensor one's (MAPPO's on the CPU) written out over the stacked
    tensors in its order of operations."""

    def __init__(self, optimisers: Sequence[torch.optim.Adam], stacked: list[torch.Tensor]):
        self.optimisers, self.params = list(optimisers), stacked
        self.group = {k: v for k, v in optimisers[0].param_groups[0].items() if k != "params"}
        if self.group.get("amsgrad") or self.group.get("maximize"):
            raise ValueError("StackedAdam implements Adam without amsgrad or maximize")
        own = [o.param_groups[0]["params"] for o in optimisers]
        self.steps = [int(next(iter(o.state.values()))["step"]) if o.state else 0 for o in optimisers]

        def moments(i: int, name: str) -> torch.Tensor:
            return torch.stack([o.state[mine[i]][name] if mine[i] in o.state else torch.zeros_like(mine[i])
                                for o, mine in zip(optimisers, own)])

        self.exp_avg = [moments(i, "exp_avg") for i in range(len(stacked))]
        self.exp_avg_sq = [moments(i, "exp_avg_sq") for i in range(len(stacked))]
        if self.group.get("fused"):  # each member's slices, and a step count per slice (the kernel counts them)
            self.slices = [[t for x in tensors for t in x.unbind(0)] for tensors in (stacked, self.exp_avg, self.exp_avg_sq)]
            self.slice_steps = [torch.tensor(float(s), dtype=torch.float32, device=p.device)
                                for p in stacked for s in self.steps]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        lr, (beta1, beta2), eps, decay = (self.group[k] for k in ("lr", "betas", "eps", "weight_decay"))
        self.steps = [s + 1 for s in self.steps]
        if self.group.get("fused"):
            params, exp_avg, exp_avg_sq = self.slices
            adam(params, [g for p in self.params for g in p.grad.unbind(0)], exp_avg, exp_avg_sq, [], self.slice_steps,
                 fused=True, capturable=self.group.get("capturable", False), amsgrad=False, beta1=beta1, beta2=beta2,
                 lr=lr, weight_decay=decay, eps=eps, maximize=False)
            return
        step_size = [lr / (1 - beta1 ** s) for s in self.steps]
        bias_correction2_sqrt = [(1 - beta2 ** s) ** 0.5 for s in self.steps]
        factors: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            key = (p.dtype, p.device, p.dim())
            if key not in factors:  # [K, 1, ...] to broadcast over each member's slice
                factors[key] = tuple(per_member(torch.tensor(values, dtype=p.dtype, device=p.device), p)
                                     for values in (step_size, bias_correction2_sqrt))
            size, correction = factors[key]
            grad = p.grad if decay == 0 else p.grad.add(p, alpha=decay)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            p.addcdiv_(m * -size, (v.sqrt() / correction).add_(eps))  # param + (-step_size * m) / denom

    @torch.no_grad()
    def write_back(self, members: Sequence[int]) -> None:
        """Give each of ``members`` (indices) its slice of the moments and its step count, as its own optimiser
        state, so its checkpoint and any later solo step continue from them."""
        on_device = self.group.get("fused") or self.group.get("capturable")
        for k in members:
            own = self.optimisers[k].param_groups[0]["params"]
            for mine, m, v in zip(own, self.exp_avg, self.exp_avg_sq):
                step = torch.tensor(float(self.steps[k]), dtype=torch.float32 if on_device else torch.get_default_dtype(),
                                    device=mine.device if on_device else "cpu")
                self.optimisers[k].state[mine] = {"step": step, "exp_avg": m[k].clone(), "exp_avg_sq": v[k].clone()}


def clip_members(stacked: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` for every member at once: each member's gradients scaled by its own total norm
    (``max_norm / (norm + 1e-6)``, at most 1); returns the norms ``[K]`` before clipping."""
    norms = torch.stack([p.grad.flatten(1).norm(dim=1) for p in stacked], 1).norm(dim=1)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in stacked:
        p.grad.mul_(per_member(scale, p))
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


def take(x: torch.Tensor, index: torch.Tensor, axis: int) -> torch.Tensor:
    """Each member's own selection along ``axis``: ``x[k].index_select(axis - 1, index[k])`` for every k, as one
    gather."""
    shape = [1] * x.dim()
    shape[0], shape[axis] = index.shape
    return x.gather(axis, index.view(shape).expand(*x.shape[:axis], index.shape[1], *x.shape[axis + 1:]))


def _default_generator_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


@contextmanager
def own_generators(draws: Sequence[Callable[[], AbstractContextManager]], device):
    """Each member's torch generator as a ``torch.Generator`` of its own, for draws made for all members at once
    (``algorithms/sampling.py``); what they drew is each member's own generator state afterwards."""
    device = torch.device(device)
    generators = []
    for draw in draws:
        with draw():
            generators.append(torch.Generator(device).set_state(_default_generator_state(device)))
    try:
        yield generators
    finally:
        for draw, generator in zip(draws, generators):
            with draw():
                if device.type == "cuda":
                    torch.cuda.set_rng_state(generator.get_state(), device)
                else:
                    torch.set_rng_state(generator.get_state())


class Waiting:
    """A member's outcome when its update is due and waits to be computed with the other members'
    (``MemberBatch.update_waiting``); its environments hold still meanwhile."""

    def __repr__(self) -> str:
        return "WAITING"


WAITING = Waiting()


class MemberBatch(abc.ABC):
    """An algorithm's seed members acting and learning as one. ``draws[k]`` swaps member k's generators in
    (a context manager), for every random draw of its own. Made by ``Algorithm.member_batch``.

    Where members' updates fall on different steps (the world models learn after each finished episode of a
    member's own), a member whose update is due waits (``WAITING``; the group loop holds its environments
    still) until every running member waits, and then all update together: each member's series is the one
    it would have alone, only its wall-clock timing changes."""

    def __init__(self, draws: Sequence[Callable[[], AbstractContextManager]]):
        self.draws = list(draws)

    @abc.abstractmethod
    def act(self, obs, avail_actions, memory, first, neighbours=None,
            held: frozenset[int] = frozenset()) -> list[tuple[torch.Tensor, torch.Tensor, dict] | None]:
        """Each member's ``act`` (exploring) on its inputs (member axis first); members in ``held`` (indices)
        are waiting: they draw nothing and get None."""

    @abc.abstractmethod
    def observe_and_update(self, transitions: list) -> list[dict[str, float] | Divergence | Waiting | None]:
        """Each member's ``observe`` of its transition (None for a held member), then its ``update``: its
        metrics, the Divergence that stopped it (its modules then keep what they held before the update),
        ``WAITING`` where its update waits for the others', or None for a held member."""

    def update_waiting(self) -> list[dict[str, float] | Divergence | None]:
        """The waiting members' updates, computed together: each one's outcome (None: it was not waiting)."""
        return [None] * len(self.draws)
