"""Operations the algorithms' networks share, written so that ``torch.func.vmap`` can vectorise them over
seed members (``algorithms/members.py``) with the numbers of the library calls they replace, bit for bit on
the CPU."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def gru_cell(x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
             bias_ih: torch.Tensor, bias_hh: torch.Tensor, linear: Callable = F.linear) -> torch.Tensor:
    """One GRU step with ``nn.GRU``/``nn.GRUCell`` parameters: the operations ATen's ``gru_cell`` runs on the
    CPU, in its order (so the result is bit for bit the same there), written out because ``torch.gru_cell``
    has no batching rule for ``vmap`` (pytorch/pytorch#112459). ``linear`` computes the two input products
    (``suites/checks/member_layer_costs.py`` passes one over members' stacked parameters)."""
    i_r, i_z, i_n = linear(x, weight_ih, bias_ih).chunk(3, -1)
    h_r, h_z, h_n = linear(h, weight_hh, bias_hh).chunk(3, -1)
    reset, update = (h_r + i_r).sigmoid(), (h_z + i_z).sigmoid()
    new = (i_n + h_n * reset).tanh()
    return (h - new) * update + new


def one_hot(index: torch.Tensor, classes: int, dtype=torch.float32) -> torch.Tensor:
    """``F.one_hot(index, classes)`` as ``dtype``, by comparison with ``arange`` (``F.one_hot`` and
    ``scatter_`` into a fresh tensor have no batching rule)."""
    return (index.unsqueeze(-1) == torch.arange(classes, device=index.device)).to(dtype)
