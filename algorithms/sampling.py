"""The world models' random draws, in one place: categorical classes, Bernoulli outcomes and the PPO
minibatch order. One switch, :func:`deterministic`, makes every one of them take its most likely value (the
likeliest class, the likelier outcome, the identity order), which is what the checks against the official
code need (``suites/checks/official_parity.py``) without patching any module. Code that draws goes through
these functions, so that the switch reaches it."""
from __future__ import annotations

from contextlib import contextmanager

import torch

_deterministic = False


@contextmanager
def deterministic():
    """Within the block, every draw below takes its most likely value."""
    global _deterministic
    saved, _deterministic = _deterministic, True
    try:
        yield
    finally:
        _deterministic = saved


def sample_index(probs: torch.Tensor) -> torch.Tensor:
    """One draw from each categorical ``probs[..., K]`` by inverting its CDF: one uniform per
    categorical, scaled to the row's total so that float rounding never lands past the last class with
    mass (classes of probability 0 are never drawn). ``torch.multinomial`` would check its input on the
    host (a sync per call, no CUDA-graph capture); the exponential race it runs draws K variates per
    categorical and cost 5x more on the CPU."""
    if _deterministic:
        return probs.argmax(-1)
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[:-1] + (1,), dtype=probs.dtype, device=probs.device) * cdf[..., -1:]
    return (cdf < u).sum(-1)


def bernoulli(probs: torch.Tensor) -> torch.Tensor:
    """One 0/1 draw per probability."""
    if _deterministic:
        return (probs > 0.5).to(probs.dtype)
    return torch.bernoulli(probs)


def permutation(n: int, device) -> torch.Tensor:
    """A random order of ``n`` samples (``torch.rand`` argsorted: ``torch.randperm`` syncs with the host)."""
    if _deterministic:
        return torch.arange(n, device=device)
    return torch.rand(n, device=device).argsort()
