"""The float likelihoods the rate is scored with (``lrcodec.format.likelihoods``)."""

from __future__ import annotations

import pytest
import torch

from lrcodec.format.likelihoods import gaussian_interval_likelihood, lower_bound


def test_likelihoods_sum_to_one():
    k = torch.arange(-60, 61, dtype=torch.float32)
    for sigma in (0.05, 0.3, 2.0, 9.0):
        p = gaussian_interval_likelihood(k - 0.5, k + 0.5, torch.full_like(k, sigma))
        assert p.sum().item() == pytest.approx(1.0, abs=1e-4)


def test_lower_bound_passes_gradients_that_push_up():
    """max(x, bound) with a number or a tensor bound; below it, only a gradient that would
    raise x passes (descent then moves x up, off the bound)."""
    for bound in (0.1, torch.tensor([0.1])):
        x = torch.tensor([-1.0, -1.0, 0.5], requires_grad=True)
        y = lower_bound(x, bound)
        assert y.tolist() == pytest.approx([0.1, 0.1, 0.5])
        y.backward(torch.tensor([1.0, -1.0, 1.0]))
        assert x.grad.tolist() == [0.0, -1.0, 1.0]
