"""Properties of the quantizers and surrogates (docs/algorithms.md sections 3 and 3.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrcodec import quantization as q


@pytest.mark.parametrize("surrogate", q.SURROGATES)
def test_surrogates_give_finite_gradients(surrogate):
    torch.manual_seed(0)
    v = (torch.randn(2, 3, 8, 8) * 3).requires_grad_()
    sigma = (torch.rand(2, 3, 8, 8) + 0.2).requires_grad_()
    out = q.surrogate_quantize(v, surrogate, temperature=0.5, alpha=8.0, seed=1)
    p = q.gaussian_interval_likelihood(out.lower, out.upper, sigma)
    loss = -torch.log2(p).sum() + (out.value ** 2).sum()
    loss.backward()
    assert torch.isfinite(v.grad).all() and torch.isfinite(sigma.grad).all()
    assert v.grad.abs().sum() > 0
    assert (out.upper > out.lower).all()


def test_sua_at_temperature_zero_is_hard_rounding_and_one_is_noise():
    torch.manual_seed(1)
    v = torch.randn(1000) * 4
    assert torch.equal(q.surrogate_quantize(v, "sua", temperature=0.0).value, torch.round(v))
    noisy = q.surrogate_quantize(v, "sua", temperature=1.0).value
    assert (noisy - v).abs().max() <= 0.5 + 1e-6 and (noisy - torch.round(v)).abs().max() > 0.1


def test_sua_partial_stop_gradient():
    """On, d value / d v = 1; the ablation without it has plain autograd's tau, same forward."""
    v = torch.randn(50, requires_grad=True)
    torch.manual_seed(1)
    on = q.surrogate_quantize(v, "sua", temperature=0.3)
    on.value.sum().backward()
    assert torch.allclose(v.grad, torch.ones(50))
    v.grad = None
    torch.manual_seed(1)
    off = q.surrogate_quantize(v, "sua", temperature=0.3, stop_gradient=False)
    off.value.sum().backward()
    assert torch.allclose(v.grad, torch.full((50,), 0.3))
    assert torch.allclose(on.value, off.value)


def test_ste_and_mixed_forward_values():
    v = torch.randn(100) * 3
    assert torch.equal(q.surrogate_quantize(v, "ste").value, torch.round(v))
    mixed = q.surrogate_quantize(v, "mixed")
    assert torch.equal(mixed.value, torch.round(v))
    centre = (mixed.lower + mixed.upper) / 2
    assert (centre - v).abs().max() <= 0.5 and not torch.equal(centre, torch.round(v))


def test_soft_round_limits_and_inverse():
    x = torch.linspace(-3, 3, 601)
    assert torch.allclose(q.soft_round(x, 1e-4), x)
    hard = q.soft_round(x, 60.0)
    away = (x - torch.round(x)).abs() < 0.4
    assert torch.allclose(hard[away], torch.round(x)[away], atol=1e-3)
    for alpha in (1.0, 5.0, 12.0):
        assert torch.allclose(q.soft_round_inverse(q.soft_round(x, alpha), alpha), x, atol=1e-3)
        assert (torch.diff(q.soft_round(x, alpha)) >= 0).all()


def test_likelihoods_sum_to_one():
    k = torch.arange(-60, 61, dtype=torch.float32)
    for sigma in (0.05, 0.3, 2.0, 9.0):
        p = q.gaussian_interval_likelihood(k - 0.5, k + 0.5, torch.full_like(k, sigma))
        assert p.sum().item() == pytest.approx(1.0, abs=1e-4)


def test_uq_dither_is_deterministic_keyed_and_uniform():
    a = q.uq_dither(5, (2, 3, 40, 40))
    assert torch.equal(a, q.uq_dither(5, (2, 3, 40, 40)))
    assert not torch.equal(a, q.uq_dither(6, (2, 3, 40, 40)))
    assert not torch.equal(a[0, 0, 0, :10], q.uq_dither(5, (2, 3, 40, 40), stream=1)[0, 0, 0, :10])
    levels = np.unique(a.numpy())
    assert len(levels) == q.UQ_LEVELS
    assert np.allclose(levels, (np.arange(15) + 1) / 16 - 0.5)
    counts = np.bincount(np.rint((a.numpy().ravel() + 0.5) * 16 - 1).astype(int))
    assert counts.min() > 0.8 * counts.mean()
    # Values pinned so that a change of generator (which would break old files) is noticed.
    assert q.uq_dither(0, (4,)).tolist() == pytest.approx(GOLDEN_DITHER)


GOLDEN_DITHER = [-0.125, 0.3125, -0.125, -0.3125]


def test_soft_mean_offsets_are_r_alpha_of_the_dither():
    """UQ in the soft-rounded domain is UQ with offset r_alpha(u): r_alpha(k + u) = k + r_alpha(u)."""
    u = torch.from_numpy(q.uq_offsets(0)).float()
    for alpha in (1, 4, 16):
        offsets = torch.from_numpy(q.uq_offsets(alpha)).float()
        assert torch.allclose(offsets, q.soft_round_conditional_mean(u, float(alpha)), atol=1e-6)
        for k in (-3.0, 0.0, 5.0):
            assert torch.allclose(q.soft_round_conditional_mean(k + u, float(alpha)), k + offsets, atol=1e-5)
        # k = round(s_alpha(v) - u)  <=>  k = round(v - r_alpha(u)), for v away from the boundaries.
        v = torch.linspace(-3, 3, 2001)[:, None]
        a = torch.round(q.soft_round(v, float(alpha)) - u)
        b = torch.round(v - offsets)
        assert (a != b).float().mean() < 0.002
    # Large alpha approaches hard rounding; offsets stay on the 2^-20 grid.
    assert np.abs(q.uq_offsets(64)).max() < 0.06
    assert np.array_equal(q.uq_offsets(16) * 2**20, np.round(q.uq_offsets(16) * 2**20))
