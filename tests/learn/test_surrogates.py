"""Properties of the training surrogates (``lrcodec.learn.surrogates``; docs/algorithms.md
sections 3 and 3.4)."""

from __future__ import annotations

import pytest
import torch

from lrcodec.format.likelihoods import gaussian_interval_likelihood
from lrcodec.learn import surrogates as s
from lrcodec.settings import SURROGATES


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_surrogates_give_finite_gradients(surrogate):
    torch.manual_seed(0)
    v = (torch.randn(2, 3, 8, 8) * 3).requires_grad_()
    sigma = (torch.rand(2, 3, 8, 8) + 0.2).requires_grad_()
    out = s.surrogate_quantize(v, surrogate, temperature=0.5, alpha=8.0, seed=1)
    p = gaussian_interval_likelihood(out.lower, out.upper, sigma)
    loss = -torch.log2(p).sum() + (out.value ** 2).sum()
    loss.backward()
    assert torch.isfinite(v.grad).all() and torch.isfinite(sigma.grad).all()
    assert v.grad.abs().sum() > 0
    assert (out.upper > out.lower).all()


def test_sua_at_temperature_zero_is_hard_rounding_and_one_is_noise():
    torch.manual_seed(1)
    v = torch.randn(1000) * 4
    assert torch.equal(s.surrogate_quantize(v, "sua", temperature=0.0).value, torch.round(v))
    noisy = s.surrogate_quantize(v, "sua", temperature=1.0).value
    assert (noisy - v).abs().max() <= 0.5 + 1e-6 and (noisy - torch.round(v)).abs().max() > 0.1


def test_sua_partial_stop_gradient():
    """On, d value / d v = 1; the ablation without it has plain autograd's tau, same forward."""
    v = torch.randn(50, requires_grad=True)
    torch.manual_seed(1)
    on = s.surrogate_quantize(v, "sua", temperature=0.3)
    on.value.sum().backward()
    assert torch.allclose(v.grad, torch.ones(50))
    v.grad = None
    torch.manual_seed(1)
    off = s.surrogate_quantize(v, "sua", temperature=0.3, stop_gradient=False)
    off.value.sum().backward()
    assert torch.allclose(v.grad, torch.full((50,), 0.3))
    assert torch.allclose(on.value, off.value)


def test_ste_and_mixed_forward_values():
    v = torch.randn(100) * 3
    assert torch.equal(s.surrogate_quantize(v, "ste").value, torch.round(v))
    mixed = s.surrogate_quantize(v, "mixed")
    assert torch.equal(mixed.value, torch.round(v))
    centre = (mixed.lower + mixed.upper) / 2
    assert (centre - v).abs().max() <= 0.5 and not torch.equal(centre, torch.round(v))


def test_soft_round_limits_and_inverse():
    x = torch.linspace(-3, 3, 601)
    assert torch.allclose(s.soft_round(x, 1e-4), x)
    hard = s.soft_round(x, 60.0)
    away = (x - torch.round(x)).abs() < 0.4
    assert torch.allclose(hard[away], torch.round(x)[away], atol=1e-3)
    for alpha in (1.0, 5.0, 12.0):
        assert torch.allclose(s.soft_round_inverse(s.soft_round(x, alpha), alpha), x, atol=1e-3)
        assert (torch.diff(s.soft_round(x, alpha)) >= 0).all()
