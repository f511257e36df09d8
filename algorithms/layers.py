"""Operations the algorithms' networks share, written so that seed members (``algorithms/members.py``) can
compute them together with the numbers of the library calls they replace, bit for bit on the CPU: under
``torch.func.vmap``, or directly on the members' stacked parameters (``linear``, ``Linear``, ``layer_norm``:
a weight with a leading member axis takes one batched product for all members)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``; with K members' stacked ``weight`` ``[K, out, in]`` (and ``bias`` ``[K, out]``), each
    member's rows of ``x`` times its own weight, one batched product: ``x`` holds the members first, as its
    own axis ``[K, ..., in]`` or folded member-major into its first axis."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    rows = x.reshape(weight.shape[0], -1, x.shape[-1])
    if 1 in weight.shape[1:]:  # one output or one input: batched products over one member run other kernels
        # than over several (the last bits differ), so these take broadcast products, the same for any K
        product = (rows * weight).sum(-1, keepdim=True) if weight.shape[1] == 1 else rows * weight.transpose(1, 2)
        return (product if bias is None else product + bias.unsqueeze(1)).view(*x.shape[:-1], -1)
    product = (torch.bmm(rows, weight.transpose(1, 2)) if bias is None
               else torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2)))
    return product.view(*x.shape[:-1], -1)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, initialisation and numbers) that also computes members' stacked weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """``norm(x)``; with members' stacked affine parameters ``[K, d]``, each member's rows scaled by its own."""
    if norm.weight.dim() == 1:
        return norm(x)
    k, d = norm.weight.shape
    rows = F.layer_norm(x, norm.normalized_shape, eps=norm.eps).view(k, -1, d)
    return torch.addcmul(norm.bias.unsqueeze(1), rows, norm.weight.unsqueeze(1)).view(x.shape)


def gru_cell(x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
             bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> torch.Tensor:
    """One GRU step with ``nn.GRU``/``nn.GRUCell`` parameters: the operations ATen's ``gru_cell`` runs on the
    CPU, in its order (so the result is bit for bit the same there), written out because ``torch.gru_cell``
    has no batching rule for ``vmap`` (pytorch/pytorch#112459)."""
    i_r, i_z, i_n = linear(x, weight_ih, bias_ih).chunk(3, -1)
    h_r, h_z, h_n = linear(h, weight_hh, bias_hh).chunk(3, -1)
    reset, update = (h_r + i_r).sigmoid(), (h_z + i_z).sigmoid()
    new = (i_n + h_n * reset).tanh()
    return (h - new) * update + new


class _Softmax(torch.autograd.Function):
    """Softmax over the last axis with its backward in one expression (``y * (g - sum(g * y))``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        shifted = (x - x.amax(-1, keepdim=True)).exp()
        return shifted / shifted.sum(-1, keepdim=True)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(-1, keepdim=True))


def softmax(x: torch.Tensor) -> torch.Tensor:
    """``x.softmax(-1)``, the same function to float rounding, written out: torch's CPU kernel over a short
    last axis (the latents' 8 or 32 classes, a few agents, the actions) is several times slower than these
    whole-tensor operations, forward and backward (docs/performance.md)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Softmax.apply(x)
    return _Softmax.forward(x)


def one_hot(index: torch.Tensor, classes: int, dtype=torch.float32) -> torch.Tensor:
    """``F.one_hot(index, classes)`` as ``dtype``, by comparison with ``arange`` (``F.one_hot`` and
    ``scatter_`` into a fresh tensor have no batching rule)."""
    return (index.unsqueeze(-1) == torch.arange(classes, device=index.device)).to(dtype)
