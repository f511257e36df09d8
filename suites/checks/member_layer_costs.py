"""What one layer costs when K seed members compute together: K separate calls, one ``torch.func.vmap`` call
over the members' stacked parameters (what ``algorithms/members.py`` does), and one call of batched matrix
products on the stacked parameters without ``vmap``. Forward and backward, microseconds per layer.

    python -m suites.checks.member_layer_costs --members 5

The layers have the shapes of a world-model step at the ``small`` preset on smac/3m (16 sequences x 3 agents,
32 wide): a linear layer, a GRU step (two linear layers and the gates), and the softmax over 8 classes of a
categorical latent. Each figure is one of ``REPEATS`` applications inside one call, so that the ``vmap``
call's own entry and exit are shared as in a learner step. docs/performance.md keeps the measured table, which
is why the world models' members walk their sequences on stacked parameters.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import vmap

from algorithms.layers import gru_cell, linear, softmax
from suites.launching import threads

REPEATS = 10


def microseconds(work: Callable[[], object], calls: int) -> float:
    for _ in range(10):
        work()
    start = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - start) / calls * 1e6


def layers(k: int, rows: tuple[int, ...], width: int) -> dict[str, tuple[Callable, Callable, list[torch.Tensor]]]:
    """Each layer as (function of one member's tensors, the same on the stacked tensors without ``vmap``
    (``algorithms/layers.py``), the members' stacked tensors)."""
    def categorical(logits):  # any leading axes; the networks' written-out softmax
        return softmax(logits.view(*logits.shape[:-1], 8, 8))

    def stacked(*shape):
        return torch.randn(k, *shape, requires_grad=True)

    return {
        f"linear {width}->{3 * width}": (F.linear, linear,
                                         [stacked(*rows, width), stacked(3 * width, width), stacked(3 * width)]),
        f"GRU step, {width} wide": (gru_cell, gru_cell,
                                    [stacked(*rows, width), stacked(*rows, width), stacked(3 * width, width),
                                     stacked(3 * width, width), stacked(3 * width), stacked(3 * width)]),
        "softmax over 8 classes (8 categoricals)": (categorical, categorical, [stacked(*rows, 64)]),
    }


def time_layer(layer: Callable, stacked_layer: Callable, tensors: list[torch.Tensor], calls: int) -> list[str]:
    """The layer's three forms' costs, "forward / forward + backward" in microseconds, after checking that they
    compute the same numbers."""
    k = tensors[0].shape[0]
    own = [[t[m].detach().clone().requires_grad_() for t in tensors] for m in range(k)]  # as K solo runs hold
    expected = torch.stack([layer(*mine) for mine in own])
    for form in (vmap(layer), stacked_layer):
        torch.testing.assert_close(form(*tensors), expected)

    def separate():
        return [layer(*mine) for mine in own for _ in range(REPEATS)]

    def vmapped():
        return vmap(lambda *member: [layer(*member) for _ in range(REPEATS)])(*tensors)

    def stacked():
        return [stacked_layer(*tensors) for _ in range(REPEATS)]

    cells = []
    for form in (separate, vmapped, stacked):
        forward = microseconds(form, calls) / REPEATS
        both = microseconds(lambda form=form: torch.stack([y.sum() for y in form()]).sum().backward(), calls) / REPEATS
        cells.append(f"{forward:.0f} / {both:.0f}")
    return cells


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=5, metavar="K")
    p.add_argument("--calls", type=int, default=300, help="timed calls per figure")
    args = p.parse_args(argv)
    if args.members < 2:
        p.error(f"--members: at least 2 members to compare, got {args.members}")
    threads.apply()
    print(f"K = {args.members}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); microseconds per "
          "layer, forward / forward + backward\n")
    print("| layer | K separate calls | one vmap call | stacked, no vmap |\n|---|---|---|---|")
    for name, (layer, stacked_layer, tensors) in layers(args.members, (16, 3), 32).items():
        print(f"| {name} | " + " | ".join(time_layer(layer, stacked_layer, tensors, args.calls)) + " |", flush=True)


if __name__ == "__main__":
    main()
