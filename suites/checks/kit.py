"""What the comparisons with the official code share: the weight copy by name, relative differences, and the
gradient comparison; and the error their library functions raise."""
from __future__ import annotations

from collections.abc import Callable

import torch


class CheckError(Exception):
    """A check cannot be made as asked (not an official checkout, a layout that does not match); the
    command-line entry points print it and exit with status 2."""


def copy_official_weights(official: torch.nn.Module, ours: torch.nn.Module, rename: Callable[[str], str] | None = None,
                          skip: tuple[str, ...] = ()) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copy every official parameter (but the names starting with ``skip``) into ours, named by ``rename``
    (default: the same name); every one of ours must be filled exactly once. Returns the (official, ours)
    parameter pairs."""
    rename = rename or (lambda name: name)
    mine, pairs = dict(ours.named_parameters()), []
    for name, param in official.named_parameters():
        if name.startswith(skip):
            continue
        target = mine.pop(rename(name), None)
        if target is None or target.shape != param.shape:
            raise CheckError(f"official parameter {name} {tuple(param.shape)} has no counterpart of that shape here")
        with torch.no_grad():
            target.copy_(param)
        pairs.append((param, target))
    if mine:
        raise CheckError(f"parameters of ours without an official counterpart: {sorted(mine)}")
    return pairs


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference of ``a`` from ``b``, relative to ``b``'s largest magnitude."""
    return float((a - b).detach().abs().max() / b.detach().abs().max().clamp(min=1e-12))


def gradient_difference(pairs) -> float:
    """Largest relative difference of our gradients from the official ones over (official, ours) pairs."""
    return max(relative(mine.grad, theirs.grad) for theirs, mine in pairs if theirs.grad is not None)
