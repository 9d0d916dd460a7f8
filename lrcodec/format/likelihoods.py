"""The likelihoods that the float graph scores rates with: a Gaussian's mass on an interval
and the learned factorized prior's (CompressAI's ``EntropyBottleneck`` density), with the
lower bound whose gradient lets a parameter leave it. The coder's own probabilities are
``lrcodec.format.exact``'s; these are their float, differentiable counterparts.
"""

from __future__ import annotations

import math

import torch

from .entropy import SIGMA_MIN

LIKELIHOOD_MIN = 1e-9


class _LowerBound(torch.autograd.Function):
    """max(x, bound), letting through gradients that push x up (CompressAI's LowerBound), so
    that a parameter stuck at its bound can still leave it; the bound a number or a tensor."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes, None


def lower_bound(x: torch.Tensor, bound) -> torch.Tensor:
    return _LowerBound.apply(x, bound)


def _std_normal_cdf(t: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-t * (1 / math.sqrt(2)))


def gaussian_interval_likelihood(lower, upper, sigma, sigma_min: float = SIGMA_MIN):
    """P(lower < V < upper) for V ~ N(0, max(sigma, sigma_min)^2), evaluated on the tail
    nearer the interval (as CompressAI's |v| form) so that small masses keep precision."""
    s = lower_bound(sigma, sigma_min)
    flip = torch.where((lower + upper) > 0, -1.0, 1.0).to(lower.dtype)
    a, b = flip * lower / s, flip * upper / s
    p = (_std_normal_cdf(b) - _std_normal_cdf(a)).abs()
    return lower_bound(p, LIKELIHOOD_MIN)


def gaussian_bits(v, sigma, sigma_min: float = SIGMA_MIN, channels: int = 8):
    """-sum log2 P(v - 1/2 < V < v + 1/2) under ``gaussian_interval_likelihood``, a few channels
    at a time: over a 12 MP image's whole y its temporaries would take a few hundred MB."""
    return sum((-torch.log2(gaussian_interval_likelihood(a - 0.5, a + 0.5, s, sigma_min)).sum()
                for a, s in zip(v.split(channels, 1), sigma.split(channels, 1))), v.new_zeros(()))


def factorized_logits(entropy_bottleneck, t: torch.Tensor) -> torch.Tensor:
    """Logit of the entropy bottleneck's learned CDF, elementwise on a (B, C, H, W) tensor."""
    B, C, H, W = t.shape
    flat = t.permute(1, 0, 2, 3).reshape(C, 1, -1)
    logits = entropy_bottleneck.logits_cumulative(flat, stop_gradient=False)
    return logits.reshape(C, B, H, W).permute(1, 0, 2, 3)


def factorized_interval_likelihood(entropy_bottleneck, lower, upper):
    """P(lower < Z < upper) under the factorized prior (interval in uncentred z units)."""
    lo = factorized_logits(entropy_bottleneck, lower)
    hi = factorized_logits(entropy_bottleneck, upper)
    flip = -torch.sign(lo + hi).detach()
    flip = torch.where(flip == 0, torch.ones_like(flip), flip)
    p = (torch.sigmoid(flip * hi) - torch.sigmoid(flip * lo)).abs()
    return lower_bound(p, LIKELIHOOD_MIN)


def z_medians(entropy_bottleneck) -> torch.Tensor:
    """Per-channel median m_c of the factorized prior, shape (1, C, 1, 1)."""
    return entropy_bottleneck.quantiles[:, 0, 1].detach().reshape(1, -1, 1, 1)
