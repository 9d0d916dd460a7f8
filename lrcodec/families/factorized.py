"""The factorized prior (Ballé et al. 2018, ``bmshj2018-factorized``, arch "factorized"; with
ReLU in place of GDN, ``bmshj2018-factorized-relu``, arch "factorized-relu")::

    x -> g_a -> y -> [Q around the channel's median, learned factorized prior] -> y_hat -> g_s -> x_hat

No hyperprior: the file's z payload is empty, and y is coded as z is in the other families,
one table per (channel, dither level) from the exact factorized CDF (``lrcodec.format.exact``).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..format.exact import FactorizedPrior, quantize_pmf
from .base import SIGMA_MIN, Family, Quantizer, factorized_forward, has_prefix
from .coding import ExactEntropyModel, Rate, YUnit
from .layers import conv, deconv, gdn_analysis, gdn_synthesis
from .priors import CompressionNet, EntropyBottleneck


# ================================================================ the networks
# CompressAI 1.2.8's FactorizedPrior and FactorizedPriorReLU, float part: its tensor names,
# module tree and initialisation, built from lrcodec's layers (``layers``, ``priors``).


class FactorizedPriorNet(CompressionNet):
    """``bmshj2018-factorized``: GDN transforms, y under the learned factorized prior (M channels)."""

    def __init__(self, N: int, M: int, **kwargs):
        super().__init__(**kwargs)
        self.entropy_bottleneck = EntropyBottleneck(M)
        self.g_a = gdn_analysis(N, M)
        self.g_s = gdn_synthesis(N, M)
        self.N, self.M = N, M


class FactorizedPriorReLUNet(FactorizedPriorNet):
    """``bmshj2018-factorized-relu``: ReLUs in place of GDN."""

    def __init__(self, N: int, M: int, **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        self.g_a = nn.Sequential(conv(3, N), nn.ReLU(inplace=True), conv(N, N), nn.ReLU(inplace=True), conv(N, N),
                                 nn.ReLU(inplace=True), conv(N, M))
        self.g_s = nn.Sequential(deconv(M, N), nn.ReLU(inplace=True), deconv(N, N), nn.ReLU(inplace=True),
                                 deconv(N, N), nn.ReLU(inplace=True), deconv(N, 3))


# ================================================================ (end of the networks)


class ExactFactorized(ExactEntropyModel):
    """The exact model of a y under a factorized prior: one unit, each element's table its
    channel's, centred on the channel's median (no z, no h_s: only the steps and ``restore``
    are inherited)."""

    medians = np.zeros(0)  # z has no channels
    sigma_table = None  # y's tables are the prior's, indexed by channel
    rate = Rate()

    def __init__(self, net):
        self.prior = FactorizedPrior.of(net.entropy_bottleneck)

    def hyper(self, z_symbols: np.ndarray, z_offsets: np.ndarray):
        return None

    def unit_keys(self, unit: YUnit, shape: tuple, hyper, y_hat_fixed=None) -> tuple[np.ndarray, np.ndarray]:
        part = (1, unit.hi - unit.lo, *shape[2:])
        channels = np.arange(unit.lo, unit.hi, dtype=np.int32).reshape(1, -1, 1, 1)
        medians = self.prior.medians[unit.lo : unit.hi].reshape(1, -1, 1, 1)
        return unit.pick(np.broadcast_to(channels, part)), unit.pick(np.broadcast_to(medians, part))

    def z_tables(self, channels: np.ndarray, offsets: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return np.zeros((0, hi - lo + 1))

    def y_tables(self, index: np.ndarray, offsets: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """The pmf of each (channel, dither offset) pair relative to the channel's median."""
        return quantize_pmf(self.prior.pmf(index, offsets, lo, hi))


class Factorized(Family):
    def __init__(self, relu: bool):
        self.relu = relu
        self.archs = ("factorized-relu",) if relu else ("factorized",)

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        return (FactorizedPriorReLUNet if self.relu else FactorizedPriorNet)(N, M)

    def hyper_analysis(self, net, y):
        """z has no channels: (B, 0, h/4, w/4)."""
        return y.new_zeros((y.shape[0], 0, y.shape[2] // 4, y.shape[3] // 4))

    def z_forward(self, net, z, quantize: Quantizer) -> tuple:
        return z, z.new_zeros(z.shape)

    def hyper_synthesis(self, net, z_hat):
        return None

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        return factorized_forward(net.entropy_bottleneck, y, quantize)

    def hard_bits(self, net, latents, sigma_min: float = SIGMA_MIN):
        """The coder's tables are the float prior's: its float bits."""
        device = next(net.parameters()).device
        return sum(self.float_bits(net, latents.y_hat.to(device), latents.z_hat.to(device))).cpu()

    def latent_shapes(self, net, height: int, width: int) -> tuple[tuple, tuple]:
        M = self.latent_channels(net)
        return (1, M, height // 16, width // 16), (1, 0, height // 64, width // 64)

    def exact(self, net, sigma_table):
        return ExactFactorized(net)


def match(state: dict) -> str | None:
    """An entropy bottleneck and no h_s: GDN's beta tells the GDN model from the ReLU one."""
    if has_prefix(state, "entropy_bottleneck.") and "g_a.0.weight" in state and not has_prefix(state, "h_s."):
        return "factorized" if "g_a.1.beta" in state else "factorized-relu"
    return None


FACTORIZED = Factorized(relu=False)
FACTORIZED_RELU = Factorized(relu=True)
