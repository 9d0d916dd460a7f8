"""Quantizers' differentiable surrogates for training (``docs/algorithms.md`` section 3).

Every quantizer acts on a *centred* latent v (y - mu for y, z - m for z, with m the
entropy bottleneck's per-channel median): the coder sends round(v) and the decoder adds the
centre back (section 2). A surrogate returns a ``Quantized``: the value fed to the next
transform, and the interval [lower, upper] of the centred latent whose probability mass is
the rate. For hard rounding and additive noise the interval is value +- 1/2; soft rounding
integrates over the pre-image of that interval.
"""

from __future__ import annotations

import math

import torch

from ..families.base import Quantized
from ..format.dither import uq_dither
from ..settings import SURROGATES


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


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
    noise: torch.Tensor | None = None,
) -> Quantized:
    """Training-time stand-in for round(v) (``docs/algorithms.md`` section 3).

    ``temperature`` is SUA's tau (1 = additive noise, 0 = hard rounding), ``alpha`` the
    soft-rounding sharpness, ``seed`` keys the UQ dither for this step; ``stop_gradient``
    False turns off SUA's partial stop-gradient (an ablation: then d value / d v = tau);
    ``noise``: the noise to use (None: uniform on [-1/2, 1/2) from torch's generator; the
    overfitted encoder gives soft-round-noise Gaussian noise, as Cool-chic does).
    """
    if surrogate == "round":
        return _unit_interval(torch.round(v))
    u = torch.rand_like(v) - 0.5 if noise is None else noise
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
    if surrogate == "soft-round-noise":
        # C3's and Cool-chic's: soft rounding, noise, soft rounding again; the rate of the result
        return _unit_interval(soft_round(soft_round(v, alpha) + u, alpha))
    raise ValueError(f"unknown surrogate {surrogate!r} (choose from {', '.join(SURROGATES)})")
