"""Operations the algorithms' networks share, written so that seed members (``algorithms/members.py``) can
compute them together on their stacked parameters (``linear``, ``Linear``, ``layer_norm``, ``LayerNorm``,
``gru_cell``: a weight with a leading member axis). Each member gets its solo layer's numbers, bit for bit on
the CPU, forward and backward: a member learns exactly what its solo run learns
(``tests/algorithms/test_layers.py``, ``tests/algorithms/test_members.py``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ATen's CPU bmm/baddbmm multiply in a naive loop below this many multiply-adds per product (its
# ``bmm_out_or_baddbmm_``, aten/src/ATen/native/LinearAlgebra.cpp), not through the BLAS a solo layer's uses
NAIVE_PRODUCTS = 400


class _MemberLinear(torch.autograd.Function):
    """Each member's rows ``[K, R, in]`` times its weight ``[K, out, in]`` (plus bias ``[K, out]``), one batched
    product, with the backward ``F.linear``'s autograd takes on the CPU: the weight's gradient as gᵀx (autograd
    of ``baddbmm`` would compute (xᵀg)ᵀ, which sums in another order for some widths), so each member's
    gradients are a solo layer's bits."""

    @staticmethod
    def forward(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if bias is None:
            return torch.bmm(rows, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        rows, weight, bias = inputs
        ctx.save_for_backward(rows, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        return (torch.bmm(grad, weight) if needs[0] else None,
                torch.bmm(grad.transpose(1, 2), rows) if needs[1] else None,
                grad.sum(1) if ctx.has_bias and needs[2] else None)


def each_member(fn, *tensors: torch.Tensor | None) -> torch.Tensor:
    """``fn`` on each member's slices of ``tensors`` (their first axis; None passes through), stacked: one
    solo call per member, where a batched form would round differently from the solo one."""
    return torch.stack([fn(*(None if t is None else t[i] for t in tensors)) for i in range(tensors[0].shape[0])])


def per_member(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One value per member (``values`` ``[K]`` or ``[K, 1]``) shaped ``[K, 1, ...]`` to broadcast over the members'
    ``x`` ``[K, ...]``."""
    return values.view(-1, *(1,) * (x.dim() - 1))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``; with K members' stacked ``weight`` ``[K, out, in]`` (and ``bias`` ``[K, out]``), each
    member's rows of ``x`` times its own weight, one batched product: ``x`` holds the members first, as its
    own axis ``[K, ..., in]`` or folded member-major into its first axis. Each member gets a solo layer's
    numbers, bit for bit on the CPU, forward and backward (``tests/algorithms/test_layers.py``)."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    k = weight.shape[0]
    rows = x.reshape(k, -1, x.shape[-1])
    if 1 in weight.shape[1:] or rows.shape[1] * weight.shape[1] * weight.shape[2] < NAIVE_PRODUCTS:
        # one output or one input (a few heads), or a product so small that ATen's batched product takes its
        # naive loop: these sum in another order than the solo layer's product, so they take one per member
        return each_member(F.linear, rows, weight, bias).view(*x.shape[:-1], -1)
    if torch.is_grad_enabled() and (rows.requires_grad or weight.requires_grad):
        product = _MemberLinear.apply(rows, weight, bias)
    else:
        product = _MemberLinear.forward(rows, weight, bias)
    return product.view(*x.shape[:-1], -1)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, initialisation and numbers) that also computes members' stacked weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """``norm(x)``; with members' stacked affine parameters ``[K, d]``, each member's rows through its own
    ``F.layer_norm`` (one call per member: its fused backward sums the affine parameters' gradients in an order
    that separate operations do not reproduce, and a solo run's bits are the point)."""
    def solo(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(rows, norm.normalized_shape, weight, bias, norm.eps)  # what nn.LayerNorm computes

    if norm.weight.dim() == 1:
        return solo(x, norm.weight, norm.bias)
    k, d = norm.weight.shape
    return each_member(solo, x.reshape(k, -1, d), norm.weight, norm.bias).view(x.shape)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters, initialisation and numbers) that also computes members' stacked affine
    parameters (``layer_norm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self)


def gru_cell(x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
             bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> torch.Tensor:
    """One GRU step with ``nn.GRU``/``nn.GRUCell`` parameters: the operations ATen's ``gru_cell`` runs on the
    CPU, in its order (so the result is bit for bit the same there), written out so that its products take
    members' stacked weights (``linear``); ``torch.gru_cell`` takes one member's."""
    i_r, i_z, i_n = linear(x, weight_ih, bias_ih).chunk(3, -1)
    h_r, h_z, h_n = linear(h, weight_hh, bias_hh).chunk(3, -1)
    reset, update = (h_r + i_r).sigmoid(), (h_z + i_z).sigmoid()
    new = (i_n + h_n * reset).tanh()
    return (h - new) * update + new


class _Softmax(torch.autograd.Function):
    """Softmax over the last axis with its backward in one expression (``y * (g - sum(g * y))``)."""

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
    """``F.one_hot(index, classes)`` as ``dtype``, by comparison with ``arange``: one elementwise operation, with
    no check of the indices' range."""
    return (index.unsqueeze(-1) == torch.arange(classes, device=index.device)).to(dtype)
