"""The scale hyperprior (Ballé et al. 2018, ``bmshj2018-hyperprior``, arch "scale") and the
mean-scale hyperprior (Minnen et al. 2018, ``mbt2018-mean``, arch "mean-scale")::

    x -> g_a -> y -> h_a(|y| for "scale", y for "mean-scale") -> z -> [Q, factorized prior] -> z_hat
    z_hat -> h_s -> sigma ("scale") or (sigma, mu) ("mean-scale")
    y -> [Q around mu, N(mu, sigma^2)] -> y_hat -> g_s -> x_hat

y is coded as one unit: every element's (sigma, mu) comes from z alone.
"""

from __future__ import annotations

from torch import nn

from .base import SIGMA_MIN, Family, Quantizer, gaussian_step
from .coding import ExactHyperprior, hyper_parts
from .layers import conv, deconv, gdn_analysis, gdn_synthesis
from .priors import CompressionNet, EntropyBottleneck, GaussianConditional


# ================================================================ the networks
# CompressAI 1.2.8's ScaleHyperprior and MeanScaleHyperprior, float part: its tensor names,
# module tree and initialisation, built from lrcodec's layers (``layers``, ``priors``).


class ScaleHyperpriorNet(CompressionNet):
    """``bmshj2018-hyperprior``: GDN transforms, h_a of |y| with ReLUs, h_s -> sigma (M)."""

    def __init__(self, N: int, M: int, **kwargs):
        super().__init__(**kwargs)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.g_a = gdn_analysis(N, M)
        self.g_s = gdn_synthesis(N, M)
        self.h_a = nn.Sequential(conv(M, N, stride=1, kernel_size=3), nn.ReLU(inplace=True), conv(N, N),
                                 nn.ReLU(inplace=True), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(inplace=True), deconv(N, N), nn.ReLU(inplace=True),
                                 conv(N, M, stride=1, kernel_size=3), nn.ReLU(inplace=True))
        self.gaussian_conditional = GaussianConditional(None)
        self.N, self.M = int(N), int(M)


class MeanScaleHyperpriorNet(ScaleHyperpriorNet):
    """``mbt2018-mean``: h_a of y and h_s with leaky ReLUs, h_s -> (sigma, mu) (2M)."""

    def __init__(self, N: int, M: int, **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        self.h_a = nn.Sequential(conv(M, N, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True), conv(N, N),
                                 nn.LeakyReLU(inplace=True), conv(N, N))
        self.h_s = nn.Sequential(deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2),
                                 nn.LeakyReLU(inplace=True), conv(M * 3 // 2, M * 2, stride=1, kernel_size=3))


# ================================================================ (end of the networks)


class Hyperprior(Family):
    portable = True
    def __init__(self, mean_scale: bool):
        self.mean_scale = mean_scale
        self.archs = ("mean-scale",) if mean_scale else ("scale",)

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        return MeanScaleHyperpriorNet(N, M) if self.mean_scale else ScaleHyperpriorNet(N, M)

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
        return ExactHyperprior(hyper_parts(net), sigma_table, self.mean_scale)


def match(state: dict) -> str | None:
    """h_s ends in a convolution with 2M outputs (mean-scale) or M (scale)."""
    if "h_s.4.weight" not in state or "g_a.6.weight" not in state:
        return None
    return "mean-scale" if state["h_s.4.weight"].shape[0] == 2 * state["g_a.6.weight"].shape[0] else "scale"


MEAN_SCALE = Hyperprior(mean_scale=True)
SCALE = Hyperprior(mean_scale=False)
