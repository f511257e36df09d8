"""The shared layers (algorithms/layers.py): on members' stacked parameters each member gets its solo layer's
numbers bit for bit on the CPU, forward and backward, alone or beside others (so a group's member learns what
its solo run learns); the written-out softmax is torch's to rounding."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from algorithms.layers import NAIVE_PRODUCTS, LayerNorm, gru_cell, linear, softmax


def _forward_and_grads(fn, tensors: list[torch.Tensor], members: int):
    """``fn`` on the first ``members`` members' slices, its output and the gradients of a fixed weighting."""
    leaves = [t[:members].clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    weights = torch.linspace(-1.0, 1.0, out[0].numel(), dtype=out.dtype).view(out.shape[1:])  # each member's
    (out * weights).sum().backward()
    return [out] + [leaf.grad for leaf in leaves]


def _assert_member_is_solo(stacked_fn, solo_fn, tensors: list[torch.Tensor]) -> None:
    """Member 0's output and gradients: the same bits in a group of 3, alone, and from the solo layer."""
    together = _forward_and_grads(stacked_fn, tensors, 3)
    alone = _forward_and_grads(stacked_fn, tensors, 1)
    solo = _forward_and_grads(lambda *t: solo_fn(*(v[0] for v in t)).unsqueeze(0), tensors, 1)
    for name, mine, beside, theirs in zip(("output", *(f"gradient {i}" for i in range(len(tensors)))), alone, together,
                                          solo):
        assert torch.equal(mine[0], beside[0]), name
        assert torch.equal(mine[0], theirs[0]), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows, inputs, outputs", [(48, 64, 64), (720, 64, 9), (720, 64, 1), (330, 1, 20),
                                                   (90, 288, 14), (3, 32, 4), (8, 8, 2)])
def test_a_stacked_linear_layer_gives_each_member_its_solo_layers_bits(rows, inputs, outputs, dtype):
    """Ordinary widths take one batched product (with ``F.linear``'s backward layout: a weight gradient of 9
    outputs sums in another order otherwise); one output, one input, and products under ATen's naive-loop
    size (the last two shapes) take one solo product per member."""
    assert (3 * 32 * 4 < NAIVE_PRODUCTS) and (8 * 8 * 2 < NAIVE_PRODUCTS) and (48 * 64 * 64 >= NAIVE_PRODUCTS)
    torch.manual_seed(0)
    tensors = [torch.randn(3, rows, inputs, dtype=dtype), torch.randn(3, outputs, inputs, dtype=dtype),
               torch.randn(3, outputs, dtype=dtype)]
    _assert_member_is_solo(linear, F.linear, tensors)


def test_a_stacked_gru_step_gives_each_member_its_solo_steps_bits():
    torch.manual_seed(0)
    x, h = torch.randn(3, 48, 32), torch.randn(3, 48, 32)
    params = [torch.randn(3, 96, 32), torch.randn(3, 96, 32), torch.randn(3, 96), torch.randn(3, 96)]
    _assert_member_is_solo(gru_cell, gru_cell, [x, h, *params])
    solo = [t[0] for t in (x, h, *params)]  # and the solo step is torch's own GRU cell's, to rounding
    torch.testing.assert_close(gru_cell(*solo), torch.ops.aten.gru_cell(*solo))


def test_a_stacked_layer_norm_gives_each_member_its_solo_norms_bits():
    torch.manual_seed(0)
    x, weight, bias = torch.randn(3, 40, 3, 16), torch.randn(3, 16), torch.randn(3, 16)

    def stacked(x, weight, bias):  # the members' stacked tensors swapped in, as the members' calls do
        return functional_call(LayerNorm(16), {"weight": weight, "bias": bias}, (x,))

    _assert_member_is_solo(stacked, lambda x, w, b: F.layer_norm(x, (16,), w, b), [x, weight, bias])


@pytest.mark.parametrize("shape", [(16, 3, 32, 8), (240, 8, 11, 11), (4, 3, 9)])
def test_softmax_is_torch_softmax_to_rounding_forward_and_backward(shape):
    torch.manual_seed(0)
    x = (3 * torch.randn(*shape, dtype=torch.float64)).requires_grad_()
    grad = torch.randn(*shape, dtype=torch.float64)
    mine, theirs = softmax(x), x.softmax(-1)
    torch.testing.assert_close(mine, theirs, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(torch.autograd.grad(mine, x, grad)[0], torch.autograd.grad(theirs, x, grad)[0],
                               rtol=1e-12, atol=1e-15)
    with torch.no_grad():  # without autograd: the same bits
        assert torch.equal(softmax(x), mine.detach())
    # a masked class (the attention's -inf, the actions' -1e10) gets probability 0, and no NaN
    masked = x.detach().clone()
    masked[..., 0] = float("-inf")
    out = softmax(masked)
    assert torch.all(out[..., 0] == 0) and not out.isnan().any()
