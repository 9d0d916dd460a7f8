"""The scale hyperprior (Ballé et al. 2018, ``bmshj2018-hyperprior``, arch "scale") and the
mean-scale hyperprior (Minnen et al. 2018, ``mbt2018-mean``, arch "mean-scale")::

    x -> g_a -> y -> h_a(|y| for "scale", y for "mean-scale") -> z -> [Q, factorized prior] -> z_hat
    z_hat -> h_s -> sigma ("scale") or (sigma, mu) ("mean-scale")
    y -> [Q around mu, N(mu, sigma^2)] -> y_hat -> g_s -> x_hat

y is coded as one unit: every element's (sigma, mu) comes from z alone.
"""

from __future__ import annotations

from ..exact import ExactEntropyModel
from .base import SIGMA_MIN, Family, Quantizer, gaussian_step


class Hyperprior(Family):
    def __init__(self, mean_scale: bool):
        self.mean_scale = mean_scale
        self.archs = ("mean-scale",) if mean_scale else ("scale",)

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        from compressai.models import MeanScaleHyperprior, ScaleHyperprior

        return MeanScaleHyperprior(N, M) if self.mean_scale else ScaleHyperprior(N, M)

    def hyper_analysis(self, net, y):
        return net.h_a(y if self.mean_scale else y.abs())

    def split(self, hyper) -> tuple:
        """(sigma, mu) of the hyper tensor; mu is zero for the scale-only model."""
        import torch

        return hyper.chunk(2, 1) if self.mean_scale else (hyper, torch.zeros_like(hyper))

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        sigma, mu = self.split(hyper)
        return gaussian_step(quantize, sigma_min)(y, sigma, mu, slice(None))

    def exact(self, net, sigma_table):
        return ExactEntropyModel(net, sigma_table, self.mean_scale)


MEAN_SCALE = Hyperprior(mean_scale=True)
SCALE = Hyperprior(mean_scale=False)
