"""The world models' random draws, in one place: categorical classes, Bernoulli outcomes, dropout masks, the
PPO minibatch order and replay positions. Code that draws goes through these functions, so that two
switches reach every draw:

- :func:`deterministic` makes each draw take its most likely value (the likeliest class, the likelier
  outcome, the identity order), which is what the checks against the official code need
  (``suites/checks/official_parity.py``) without patching any module;
- :func:`members` and :func:`folded` make each draw of a computation over seed members' stacked parameters
  (``algorithms/members.py``) come from each member's own generator, in the order and with the shapes its
  solo run draws, so that a member's numbers do not depend on the others'.

Every draw is a uniform or a Bernoulli mask whose shape, not its values, comes from the computation, so it can
be made per member outside the vectorised values (``bernoulli(p)`` is ``rand < p``: the same bits as
``torch.bernoulli`` on the CPU).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch

_deterministic = False
# Where draws come from: None (the process-wide generators), or (generators, form) as set by :func:`members`
# ("stacked"), :func:`folded` ("folded") and :func:`drawing_from` ("one")
_source: tuple[Sequence[torch.Generator | None], str] | None = None


@contextmanager
def deterministic():
    """Within the block, every draw below takes its most likely value."""
    global _deterministic
    saved, _deterministic = _deterministic, True
    try:
        yield
    finally:
        _deterministic = saved


@contextmanager
def _drawing(generators: Sequence[torch.Generator | None], form: str):
    global _source
    saved, _source = _source, (generators, form)
    try:
        yield
    finally:
        _source = saved


def members(generators: Sequence[torch.Generator | None]):
    """Within the block, every draw is made once per member, from ``generators[k]`` (None: the process-wide
    one), and returns the members' draws stacked, ``[K, ...]``."""
    return _drawing(generators, "stacked")


def folded(generators: Sequence[torch.Generator | None]):
    """Within the block, every draw's shape holds all K members, member-major in its first axis (their own axis,
    or folded into a batch): member k draws its part, ``shape[0] // K`` of that axis, from ``generators[k]``."""
    return _drawing(generators, "folded")


def drawing_from(generator: torch.Generator):
    """Within the block, every draw comes from ``generator``."""
    return _drawing([generator], "one")


def _draw(shape: Sequence[int], make: Callable[[tuple[int, ...], torch.Generator | None], torch.Tensor]) -> torch.Tensor:
    """``make(shape, generator)`` from where draws come now (``_source``)."""
    shape = tuple(shape)
    if _source is None:
        return make(shape, None)
    generators, form = _source
    if form == "one":
        return make(shape, generators[0])
    if form == "folded":
        own = (shape[0] // len(generators), *shape[1:])
        return torch.stack([make(own, g) for g in generators]).view(shape)
    return torch.stack([make(shape, g) for g in generators])


def uniform(shape: Sequence[int], dtype=None, device=None) -> torch.Tensor:
    """Uniform draws in [0, 1)."""
    return _draw(shape, lambda own, g: torch.rand(own, dtype=dtype, device=device, generator=g))


def sample_index(probs: torch.Tensor) -> torch.Tensor:
    """One draw from each categorical ``probs[..., K]`` by inverting its CDF: one uniform per
    categorical, scaled to the row's total so that float rounding never lands past the last class with
    mass (classes of probability 0 are never drawn). ``torch.multinomial`` would check its input on the
    host (a sync per call, no CUDA-graph capture); the exponential race it runs draws K variates per
    categorical and cost 5x more on the CPU."""
    if _deterministic:
        return probs.argmax(-1)
    cdf = probs.cumsum(-1)
    u = uniform(probs.shape[:-1] + (1,), probs.dtype, probs.device) * cdf[..., -1:]
    return (cdf < u).sum(-1)


def bernoulli(probs: torch.Tensor) -> torch.Tensor:
    """One 0/1 draw per probability."""
    if _deterministic:
        return (probs > 0.5).to(probs.dtype)
    return (uniform(probs.shape, probs.dtype, probs.device) < probs).to(probs.dtype)


def permutation(n: int, device) -> torch.Tensor:
    """A random order of ``n`` samples (``torch.rand`` argsorted: ``torch.randperm`` syncs with the host)."""
    if _deterministic:
        return torch.arange(n, device=device)
    return uniform((n,), device=device).argsort()


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout``, with the mask ATen draws for it on the CPU (``bernoulli_(1 - p)`` on an empty tensor of
    ``x``'s shape, scaled by ``1 / (1 - p)``), so a solo run's numbers are those of ``nn.Dropout``."""
    if not training or p == 0:
        return x
    keep = _draw(x.shape, lambda own, g: torch.empty(own, dtype=x.dtype, device=x.device).bernoulli_(1 - p, generator=g))
    return x * keep.div_(1 - p)
