"""Replay a training step as one CUDA graph instead of thousands of kernel launches.

The world models' learner steps are many small kernels (about 5,000 per world-model step at the
``paper`` preset): on a GPU, eager PyTorch spends most of its time launching them. A step that reads its
inputs from tensors that stay in place (parameters, optimiser state, the replay) and draws its randomness
from the default generator can be captured once and replayed; PyTorch advances the generator's offset
on every replay, so each replay draws fresh random numbers.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import torch

Step = Callable[[], dict[str, torch.Tensor]]


class GraphedStep:
    """Calls ``step`` eagerly; with ``enabled`` (CUDA only), the first ``warmup`` calls run eagerly on a side
    stream (optimiser state, allocator, library handles), the next one captures ``step`` in a CUDA graph
    and every call from then on replays it.

    ``step`` returns scalar tensors by name; they are copied after each replay, since a graph writes its
    outputs to the same memory every time. Anything that replaces a tensor the graph reads (an optimiser's
    ``load_state_dict``, for one) must call :meth:`reset`.

    Steps that never run concurrently and whose other outputs (gradients) are rewritten by every replay can
    share one memory ``pool`` (``torch.cuda.graph_pool_handle()``): each graph's temporaries are dead when
    another one runs. Before a capture, the eager warm-up's cached blocks are handed back to the driver, so
    the process does not hold both at once."""

    def __init__(self, step: Step, enabled: bool, warmup: int = 2, pool=None):
        self.step, self.enabled, self.warmup, self.pool = step, enabled, warmup, pool
        self.reset()

    def reset(self) -> None:
        self.graph: torch.cuda.CUDAGraph | None = None
        self.names: list[str] = []
        self.values: torch.Tensor | None = None
        self.calls = 0

    def __call__(self) -> dict[str, torch.Tensor]:
        if not self.enabled:
            return self.step()
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.step()
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            torch.cuda.empty_cache()  # the warm-up's cached blocks cannot serve the graph's pool: hand them back
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                out = self.step()
                values = torch.stack([v.float() for v in out.values()])
            self.graph, self.names, self.values = graph, list(out), values
        self.graph.replay()
        return dict(zip(self.names, self.values.clone()))


def prefer_expandable_segments() -> None:
    """Growable allocator segments, unless the user chose otherwise: with the learners' graphs the process
    holds far less GPU memory (27m_vs_30m, MABL, ``paper`` preset, H100: 49 -> 40 GiB). Takes effect only
    if called before the first CUDA allocation, so entry points call it first."""
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
