"""Quantizers and their differentiable surrogates, with the likelihoods they are scored by.

Every quantizer acts on a *centred* latent v (y - mu for y, z - m for z, with m the
entropy bottleneck's per-channel median): the coder sends round(v) and the decoder adds the
centre back (``docs/algorithms.md`` section 2). A surrogate returns a :class:`Quantized`:
the value fed to the next transform, and the interval [lower, upper] of the centred latent
whose probability mass is the rate. For hard rounding and additive noise the interval is
value +- 1/2; soft rounding integrates over the pre-image of that interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .entropy import SIGMA_MIN
from .settings import SURROGATES

LIKELIHOOD_MIN = 1e-9
UQ_LEVELS = 15  # tensorflow-compression's num_noise_levels


class _LowerBound(torch.autograd.Function):
    """max(x, bound), letting through gradients that push x up (CompressAI's LowerBound)."""

    @staticmethod
    def forward(ctx, x, bound: float):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, bound)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


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


# ---------------------------------------------------------------- shared dither (UQ)

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays: a fixed, platform-independent hash."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def uq_levels(seed: int, shape: tuple[int, ...], stream: int = 0) -> np.ndarray:
    """Dither level (0..14) of every element in C order, keyed by (seed, stream, shape) with a
    counter-based hash, so encoder and decoder on any machine draw the same levels (never
    torch's global generator). ``stream`` separates tensors of the same shape (0 y, 1 z)."""
    key = np.array([seed & 0xFFFFFFFF, stream, *shape], dtype=np.uint64)
    k = np.uint64(0)
    for part in key:
        k = _splitmix64(np.array([k ^ part], dtype=np.uint64))[0]
    n = int(np.prod(shape)) if shape else 1
    with np.errstate(over="ignore"):
        h = _splitmix64(np.arange(n, dtype=np.uint64) ^ k)
    return ((h >> np.uint64(32)) % np.uint64(UQ_LEVELS)).astype(np.int64).reshape(shape)


def uq_offsets(alpha: int = 0) -> np.ndarray:
    """The value each dither level adds to the rounded symbol: u_l = (l+1)/16 - 1/2, or with
    soft-mean reconstruction r_alpha(u_l), rounded to 2^-20 so that both sides agree exactly.

    Why r_alpha(u_l): UQ in the soft-rounded domain codes k = round(s_alpha(v) - u) and decodes
    r_alpha(k + u). Since s_alpha(x + 1) = s_alpha(x) + 1, that k equals round(v - r_alpha(u))
    and r_alpha(k + u) = k + r_alpha(u): the same coder with the offset r_alpha(u) in place of u.
    """
    u = (np.arange(UQ_LEVELS) + 1) / (UQ_LEVELS + 1) - 0.5
    if alpha:
        # r_alpha(u) = s_alpha^-1(u - 1/2) + 1/2 = atanh(2 tanh(alpha/2) u) / alpha for |u| < 1/2.
        u = np.arctanh(2 * math.tanh(alpha / 2) * u) / alpha
    return np.round(u * 2**20) / 2**20


def uq_dither(seed: int, shape: tuple[int, ...], stream: int = 0, alpha: int = 0) -> torch.Tensor:
    """The per-element offset (see :func:`uq_offsets`) for a tensor of this shape."""
    return torch.from_numpy(uq_offsets(alpha).astype(np.float32)[uq_levels(seed, shape, stream)])


# ---------------------------------------------------------------- soft rounding (UQ paper)


def soft_round(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """s_alpha(x) = m + tanh(alpha r) / (2 tanh(alpha/2)), m = floor(x) + 1/2, r = x - m."""
    if alpha < 1e-3:
        return x
    m = torch.floor(x) + 0.5
    return m + torch.tanh(alpha * (x - m)) / (2 * math.tanh(alpha / 2))


def soft_round_inverse(y: torch.Tensor, alpha: float) -> torch.Tensor:
    if alpha < 1e-3:
        return y
    m = torch.floor(y) + 0.5
    arg = (2 * math.tanh(alpha / 2) * (y - m)).clamp(-1 + 1e-6, 1 - 1e-6)
    return m + (torch.atanh(arg) / alpha).clamp(-0.5, 0.5)


def soft_round_conditional_mean(y: torch.Tensor, alpha: float) -> torch.Tensor:
    """r_alpha(y) = E[Y | s_alpha(Y) + U = y] for Y uniform on the consistent interval."""
    return soft_round_inverse(y - 0.5, alpha) + 0.5


# ---------------------------------------------------------------- training surrogates


@dataclass
class Quantized:
    value: torch.Tensor  # input to the next transform (centred)
    lower: torch.Tensor  # rate = P(lower < V < upper)
    upper: torch.Tensor


def _unit_interval(value: torch.Tensor, rate_point: torch.Tensor | None = None) -> Quantized:
    centre = value if rate_point is None else rate_point
    return Quantized(value, centre - 0.5, centre + 0.5)


def surrogate_quantize(
    v: torch.Tensor,
    surrogate: str,
    *,
    temperature: float = 1.0,
    alpha: float = 16.0,
    seed: int = 0,
    stream: int = 0,
    expected_slope: bool = True,
    stop_gradient: bool = True,
) -> Quantized:
    """Training-time stand-in for round(v) (``docs/algorithms.md`` section 3).

    ``temperature`` is SUA's tau (1 = additive noise, 0 = hard rounding), ``alpha`` the
    soft-rounding sharpness, ``seed`` keys the UQ dither for this step; ``stop_gradient``
    False turns off SUA's partial stop-gradient (an ablation: then d value / d v = tau).
    """
    if surrogate == "round":
        return _unit_interval(torch.round(v))
    u = torch.rand_like(v) - 0.5
    if surrogate == "noise":
        return _unit_interval(v + u)
    if surrogate == "ste":
        return _unit_interval(ste_round(v))
    if surrogate == "mixed":
        return _unit_interval(ste_round(v), rate_point=v + u)
    if surrogate == "uq":
        d = uq_dither(seed, tuple(v.shape), stream).to(v.device, v.dtype)
        return _unit_interval(v + (torch.round(v - d) + d - v).detach())
    if surrogate == "sua":
        k = torch.round(v)
        forward = k + temperature * (v - k + u)
        if not stop_gradient:
            return _unit_interval(forward)
        # Partial stop-gradient: d value / d v = 1 and no gradient to the centre through Q.
        return _unit_interval(v + (forward - v).detach())
    if surrogate == "soft-round":
        s = soft_round(v, alpha)
        noisy = s + u
        value = soft_round_conditional_mean(noisy, alpha)
        if expected_slope:
            # Forward keeps the sampled value; backward uses E_u[r'(s(v)+u)] s'(v).
            slope = (
                soft_round_conditional_mean(s + 0.5, alpha)
                - soft_round_conditional_mean(s - 0.5, alpha)
            ).detach()
            value = value.detach() + slope * (s - s.detach())
        lower = soft_round_inverse(noisy - 0.5, alpha)
        upper = soft_round_inverse(noisy + 0.5, alpha)
        return Quantized(value, lower, upper)
    raise ValueError(f"unknown surrogate {surrogate!r} (choose from {', '.join(SURROGATES)})")
