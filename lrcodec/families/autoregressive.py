"""Joint autoregressive and hierarchical priors (Minnen, Ballé & Toderici 2018, ``mbt2018``,
arch "joint-autoregressive") and Cheng et al. 2020's anchor and attention models
(``cheng2020-anchor``, ``cheng2020-attn``), which keep its entropy model and change the
transforms (residual blocks, sub-pixel convolutions, attention)::

    z_hat -> h_s -> params (2M channels)
    y_hat (causal 5x5 neighbourhood) -> context_prediction (masked convolution) -> ctx (2M)
    entropy_parameters(params, ctx) (1x1 convolutions) -> (sigma, mu)
    y -> [Q around mu, N(mu, sigma^2)] -> y_hat -> g_s -> x_hat

The coder runs h_s, the masked convolution and entropy_parameters as integer networks. y is
coded in wavefront order: with a causal 5x5 mask, position (i, j) depends on (i, j-1),
(i, j-2) and on rows i-1 and i-2 up to column j+2, all of which have a smaller t = 3i + j, so
all positions with the same t are independent and are one coding unit (141 units for a
Kodak image instead of 1,536 positions). The arithmetic is integer, so batching positions
cannot change a symbol.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import LrcodecError
from ..format.exact import ACT_BITS, IntegerNetwork, PositionConvolution
from .base import SIGMA_MIN, Family, Quantizer, check_square, cheng2020_dims, gaussian_step, has_prefix, zero_masked_taps
from .coding import ExactEntropyModel, Rate, YUnit, hyper_parts
from .hyperprior import MeanScaleHyperpriorNet
from .layers import (AttentionBlock, MaskedConv2d, ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride,
                     cheng2020_g_a, cheng2020_g_s,
                     cheng2020_h_a, cheng2020_h_s, conv, conv3x3, deconv, gdn_analysis, gdn_synthesis, subpel_conv3x3)
from .priors import GaussianConditional


# ================================================================ the networks
# CompressAI 1.2.8's JointAutoregressiveHierarchicalPriors, Cheng2020Anchor and
# Cheng2020Attention, float part: its tensor names, module tree and initialisation, built from
# lrcodec's layers (``layers``, ``priors``).


class JointAutoregressiveNet(MeanScaleHyperpriorNet):
    """``mbt2018``: the mean-scale hyperprior plus a 5x5 masked context (``context_prediction``,
    2M outputs) and ``entropy_parameters`` (1x1 convolutions of h_s's and the context's 4M)."""

    def __init__(self, N: int = 192, M: int = 192, **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        self.g_a = gdn_analysis(N, M)
        self.g_s = gdn_synthesis(N, M)
        self.h_a = nn.Sequential(conv(M, N, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True),
                                 conv(N, N, stride=2, kernel_size=5), nn.LeakyReLU(inplace=True),
                                 conv(N, N, stride=2, kernel_size=5))
        self.h_s = nn.Sequential(deconv(N, M, stride=2, kernel_size=5), nn.LeakyReLU(inplace=True),
                                 deconv(M, M * 3 // 2, stride=2, kernel_size=5), nn.LeakyReLU(inplace=True),
                                 conv(M * 3 // 2, M * 2, stride=1, kernel_size=3))
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(M * 12 // 3, M * 10 // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 8 // 3, M * 6 // 3, 1))
        self.context_prediction = MaskedConv2d(M, 2 * M, kernel_size=5, padding=2, stride=1)
        self.gaussian_conditional = GaussianConditional(None)
        self.N, self.M = int(N), int(M)


class Cheng2020AnchorNet(JointAutoregressiveNet):
    """``cheng2020-anchor``: mbt2018's entropy model (M = N) with residual transforms."""

    def __init__(self, N: int = 192, **kwargs):
        super().__init__(N=N, M=N, **kwargs)
        self.g_a = cheng2020_g_a(N)
        self.h_a = cheng2020_h_a(N)
        self.h_s = cheng2020_h_s(N)
        self.g_s = cheng2020_g_s(N)


class Cheng2020AttentionNet(Cheng2020AnchorNet):
    """``cheng2020-attn``: the anchor with attention blocks in g_a and g_s."""

    def __init__(self, N: int = 192, **kwargs):
        super().__init__(N=N, **kwargs)
        self.g_a = nn.Sequential(ResidualBlockWithStride(3, N, stride=2), ResidualBlock(N, N),
                                 ResidualBlockWithStride(N, N, stride=2), AttentionBlock(N), ResidualBlock(N, N),
                                 ResidualBlockWithStride(N, N, stride=2), ResidualBlock(N, N),
                                 conv3x3(N, N, stride=2), AttentionBlock(N))
        self.g_s = nn.Sequential(AttentionBlock(N), ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2),
                                 ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2), AttentionBlock(N),
                                 ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2), ResidualBlock(N, N),
                                 subpel_conv3x3(N, 3, 2))


# ================================================================ (end of the networks)

PASSES = 2  # masked passes of the relaxed forward (docs/algorithms.md, "autoregressive models")


def wavefront_units(M: int, height: int, width: int) -> list[YUnit]:
    """One unit per t = 3i + j, all channels of its positions, in increasing t."""
    t = 3 * np.arange(height).reshape(-1, 1) + np.arange(width).reshape(1, -1)
    return [YUnit(0, M, step, mask=(t == step).reshape(1, 1, height, width)) for step in range(int(t.max()) + 1)]


class ExactAutoregressive(ExactEntropyModel):
    """h_s, the masked convolution and entropy_parameters as integer networks."""

    needs_y_hat = True
    params_at_positions = True

    def __init__(self, net, sigma_table, context_prediction=None, rate: Rate = Rate()):
        """``context_prediction``: the masked convolution, if not the network's own."""
        super().__init__(hyper_parts(net), sigma_table, rate)
        context = net.context_prediction if context_prediction is None else context_prediction
        self.context = PositionConvolution(IntegerNetwork.of(context))
        self.kernel = net.context_prediction.kernel_size[0]
        if self.kernel > 5:  # the wavefront t = 3i + j orders a causal 5x5 neighbourhood at most
            raise LrcodecError(f"a {self.kernel}x{self.kernel} masked context is wider than the coder's wavefront allows")
        self.entropy_parameters = IntegerNetwork.of(net.entropy_parameters)

    def y_units(self, shape: tuple) -> list[YUnit]:
        return wavefront_units(shape[1], *shape[2:])

    def unit_params(self, unit: YUnit, hyper: np.ndarray, y_hat_fixed=None) -> tuple[np.ndarray, np.ndarray]:
        """(sigma, mu) of a unit's positions, each (1, M, P): the masked convolution of the
        y_hat decoded so far and h_s's params through entropy_parameters, in integers, as
        matrix products over the unit's positions."""
        rows, cols = unit.positions
        params = hyper[0][:, rows, cols].T * 2.0**ACT_BITS
        inputs = np.concatenate([params, self.context(y_hat_fixed, rows, cols)], 1)
        out = self.entropy_parameters.on_vectors(inputs) * 2.0**-ACT_BITS
        sigma, mu = np.split(out.T[None], 2, axis=1)
        return sigma, mu


class JointAutoregressive(Family):
    """The shared entropy model; each architecture brings its network (``net_class``): mbt2018's
    of (N, M), Cheng et al.'s of N alone (``square``: M = N)."""

    def __init__(self, arch: str, net_class: type, square: bool = False):
        self.archs, self.net_class, self.square = (arch,), net_class, square

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        if not self.square:
            return self.net_class(N, M)
        check_square(self.archs[0], N, M)
        return self.net_class(N)

    def dims(self, state: dict) -> tuple[int, int]:
        return cheng2020_dims(state, self.archs[0]) if self.square else super().dims(state)

    def prepare(self, net):
        zero_masked_taps(net.context_prediction)
        return net

    def params(self, net, hyper, y_hat) -> tuple:
        """(sigma, mu) from h_s's params and the masked convolution of y_hat."""
        ctx = net.context_prediction(y_hat)
        return net.entropy_parameters(torch.cat([hyper, ctx.to(hyper.dtype)], 1)).float().chunk(2, 1)

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        """The relaxed forward: the context reads the relaxed y_hat of the pass before (the
        first pass: y rounded around 0), PASSES times; the coder's ŷ is rounding around the
        mu that its own causal ŷ gives (docs/algorithms.md)."""
        mu = torch.zeros_like(y)
        for _ in range(PASSES):
            sigma, mu = self.params(net, hyper, quantize(y - mu, slice(None)).value + mu)
        return gaussian_step(quantize, sigma_min)(y, sigma, mu, slice(None))

    def y_context_radius(self, net) -> int:
        return PASSES * (net.context_prediction.kernel_size[0] // 2)

    def exact(self, net, sigma_table):
        return ExactAutoregressive(net, sigma_table)


def match(state: dict) -> str | None:
    """A masked context: Cheng et al.'s residual transforms, with attention (``conv_a``) or
    not, or mbt2018's plain ones."""
    if not has_prefix(state, "context_prediction."):
        return None
    if not has_prefix(state, "g_a.0.conv1."):
        return "joint-autoregressive"
    return "cheng2020-attn" if any(k.startswith("g_a.") and ".conv_a." in k for k in state) else "cheng2020-anchor"


JOINT_AUTOREGRESSIVE = JointAutoregressive("joint-autoregressive", JointAutoregressiveNet)
CHENG2020_ANCHOR = JointAutoregressive("cheng2020-anchor", Cheng2020AnchorNet, square=True)
CHENG2020_ATTN = JointAutoregressive("cheng2020-attn", Cheng2020AttentionNet, square=True)
