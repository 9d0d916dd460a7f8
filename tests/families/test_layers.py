"""The shared layers (``lrcodec.families.layers``) against CompressAI's: GDN and IGDN, the
lower bound's gradient, masked convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrcodec.families import layers
from test_reference import TOL, perturbed, shapes


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_forward_and_gradients_are_compressais(inverse):
    from compressai.layers import GDN

    ref, gdn = GDN(8, inverse=inverse), layers.GDN(8, inverse=inverse)
    assert shapes(ref.state_dict()) == shapes(gdn.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(v, gdn.state_dict()[k]), k
    perturbed(ref)
    gdn.load_state_dict(ref.state_dict())
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    w = torch.randn(2, 8, 5, 5)
    out, out2 = gdn(x), ref(x2)
    torch.testing.assert_close(out, out2, **TOL)
    (out * w).sum().backward()
    (out2 * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, **TOL)
    torch.testing.assert_close(gdn.beta.grad, ref.beta.grad, **TOL)
    torch.testing.assert_close(gdn.gamma.grad, ref.gamma.grad, **TOL)


def test_lower_bound_gradient_is_compressais():
    """max(x, bound), the gradient passing where x >= bound or where it would push x up."""
    from compressai.ops import LowerBound

    x = torch.tensor([-2.0, -0.5, 0.1, 0.1, 0.5, 2.0, -1.0, 3.0], requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    g = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, -2.0, 2.0])
    ours_, theirs_ = layers.LowerBound(0.1), LowerBound(0.1)
    assert torch.equal(ours_.bound, theirs_.bound) and list(ours_.state_dict()) == ["bound"]
    out, out2 = ours_(x), theirs_(x2)
    assert torch.equal(out, out2)
    out.backward(g)
    out2.backward(g)
    assert torch.equal(x.grad, x2.grad)
    assert x.grad.tolist() == [0.0, -1.0, 1.0, -1.0, 1.0, -1.0, -2.0, 2.0]


@pytest.mark.parametrize("checkerboard", [False, True])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_convolutions_are_compressais(checkerboard, mask_type):
    from compressai.layers import CheckerboardMaskedConv2d, MaskedConv2d

    cls, ref_cls = ((layers.CheckerboardMaskedConv2d, CheckerboardMaskedConv2d) if checkerboard
                    else (layers.MaskedConv2d, MaskedConv2d))
    torch.manual_seed(0)
    conv = cls(3, 6, kernel_size=5, padding=2, mask_type=mask_type)
    torch.manual_seed(0)
    ref = ref_cls(3, 6, kernel_size=5, padding=2, mask_type=mask_type)
    assert isinstance(conv, nn.Conv2d) and torch.equal(conv.mask, ref.mask) and torch.equal(conv.weight, ref.weight)
    x = torch.randn(1, 3, 9, 9)
    before = conv.weight.detach().clone()
    torch.testing.assert_close(conv(x), ref(x), **TOL)
    assert torch.equal(conv.weight, before)  # a call never writes the weights (CompressAI's zeroes them in place)
    with pytest.raises(ValueError):
        cls(3, 6, kernel_size=5, mask_type="C")
