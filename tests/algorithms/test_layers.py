"""The shared layers (algorithms/layers.py): on members' stacked parameters a member gets the same bits
alone as beside others (so a member left alone in a group computes as a group of one), and the solo path
keeps the library's numbers; the written-out softmax is torch's to rounding."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import vmap

from algorithms.layers import gru_cell, linear, softmax


def _forward_and_grads(fn, tensors: list[torch.Tensor], members: int):
    """``fn`` on the first ``members`` members' slices, its output and the gradients of a fixed weighting."""
    leaves = [t[:members].clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    weights = torch.linspace(-1.0, 1.0, out[0].numel(), dtype=out.dtype).view(out.shape[1:])  # each member's
    (out * weights).sum().backward()
    return [out] + [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("rows, inputs, outputs", [(48, 64, 64), (720, 64, 1), (330, 1, 20), (90, 288, 14)])
def test_a_stacked_linear_layer_gives_a_member_the_same_bits_alone_as_beside_others(rows, inputs, outputs):
    """One output and one input are the shapes where a batched product over one member runs another kernel
    than over several; the layer takes broadcast products there."""
    torch.manual_seed(0)
    x, weight, bias = torch.randn(3, rows, inputs), torch.randn(3, outputs, inputs), torch.randn(3, outputs)
    together = _forward_and_grads(linear, [x, weight, bias], 3)
    alone = _forward_and_grads(linear, [x, weight, bias], 1)
    for mine, theirs in zip(alone, together):
        assert torch.equal(mine[0], theirs[0])
    solo = _forward_and_grads(lambda *t: F.linear(*(v[0] for v in t)).unsqueeze(0), [x, weight, bias], 1)
    for mine, theirs in zip(solo, alone):  # the solo layer, to float rounding
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_a_stacked_gru_step_gives_a_member_the_same_bits_alone_as_beside_others():
    torch.manual_seed(0)
    x, h = torch.randn(3, 48, 32), torch.randn(3, 48, 32)
    params = [torch.randn(3, 96, 32), torch.randn(3, 96, 32), torch.randn(3, 96), torch.randn(3, 96)]
    together = _forward_and_grads(gru_cell, [x, h, *params], 3)
    alone = _forward_and_grads(gru_cell, [x, h, *params], 1)
    for mine, theirs in zip(alone, together):
        assert torch.equal(mine[0], theirs[0])


@pytest.mark.parametrize("shape", [(16, 3, 32, 8), (240, 8, 11, 11), (4, 3, 9)])
def test_softmax_is_torch_softmax_to_rounding_forward_backward_and_under_vmap(shape):
    torch.manual_seed(0)
    x = (3 * torch.randn(*shape, dtype=torch.float64)).requires_grad_()
    grad = torch.randn(*shape, dtype=torch.float64)
    mine, theirs = softmax(x), x.softmax(-1)
    torch.testing.assert_close(mine, theirs, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(torch.autograd.grad(mine, x, grad)[0], torch.autograd.grad(theirs, x, grad)[0],
                               rtol=1e-12, atol=1e-15)
    with torch.no_grad():  # without autograd: the same bits
        assert torch.equal(softmax(x), mine.detach())
    torch.testing.assert_close(vmap(softmax)(x.detach()), theirs.detach(), rtol=1e-14, atol=1e-15)
    # a masked class (the attention's -inf, the actions' -1e10) gets probability 0, and no NaN
    masked = x.detach().clone()
    masked[..., 0] = float("-inf")
    out = softmax(masked)
    assert torch.all(out[..., 0] == 0) and not out.isnan().any()
