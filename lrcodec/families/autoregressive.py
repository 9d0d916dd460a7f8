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

from ..errors import LrcodecError
from ..exact import ACT_BITS, ExactEntropyModel, IntegerNetwork, PositionConvolution, YUnit
from .base import SIGMA_MIN, Family, Quantizer, check_square, cheng2020_dims, gaussian_step, zero_masked_taps

PASSES = 2  # masked passes of the relaxed forward (docs/algorithms.md, "autoregressive models")


def wavefront_units(M: int, height: int, width: int) -> list[YUnit]:
    """One unit per t = 3i + j, all channels of its positions, in increasing t."""
    t = 3 * np.arange(height).reshape(-1, 1) + np.arange(width).reshape(1, -1)
    return [YUnit(0, M, step, mask=(t == step).reshape(1, 1, height, width)) for step in range(int(t.max()) + 1)]


class ExactAutoregressive(ExactEntropyModel):
    """h_s, the masked convolution and entropy_parameters as integer networks."""

    needs_y_hat = True
    params_at_positions = True

    def __init__(self, net, sigma_table, context_prediction=None):
        """``context_prediction``: the masked convolution, if not the network's own."""
        super().__init__(net, sigma_table, mean_scale=True)
        context = net.context_prediction if context_prediction is None else context_prediction
        self.context = PositionConvolution(IntegerNetwork(context))
        self.kernel = net.context_prediction.kernel_size[0]
        if self.kernel > 5:  # the wavefront t = 3i + j orders a causal 5x5 neighbourhood at most
            raise LrcodecError(f"a {self.kernel}x{self.kernel} masked context is wider than the coder's wavefront allows")
        self.entropy_parameters = IntegerNetwork(net.entropy_parameters)

    def y_units(self, shape: tuple) -> list[YUnit]:
        return wavefront_units(shape[1], *shape[2:])

    def unit_params(self, unit: YUnit, hyper: np.ndarray, y_hat_fixed=None) -> tuple[np.ndarray, np.ndarray]:
        """(sigma, mu) of a unit's positions, each (1, M, P): the masked convolution of the
        y_hat decoded so far and h_s's params through entropy_parameters, in integers, as
        matrix products over the unit's positions."""
        rows, cols = unit.positions
        params = torch.from_numpy(hyper[0][:, rows, cols].T * 2.0**ACT_BITS)
        inputs = torch.cat([params, self.context(y_hat_fixed, rows, cols)], 1)
        out = self.entropy_parameters.on_vectors(inputs).numpy() * 2.0**-ACT_BITS
        sigma, mu = np.split(out.T[None], 2, axis=1)
        return sigma, mu


class JointAutoregressive(Family):
    """The shared entropy model; the architecture name picks the transforms."""

    def __init__(self, arch: str):
        self.archs = (arch,)

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        from compressai.models import Cheng2020Anchor, Cheng2020Attention, JointAutoregressiveHierarchicalPriors

        if self.archs[0] == "joint-autoregressive":
            return JointAutoregressiveHierarchicalPriors(N, M)
        check_square(self.archs[0], N, M)
        return (Cheng2020Anchor if self.archs[0] == "cheng2020-anchor" else Cheng2020Attention)(N)

    def dims(self, state: dict) -> tuple[int, int]:
        if self.archs[0] == "joint-autoregressive":
            return super().dims(state)
        return cheng2020_dims(state, self.archs[0])

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


JOINT_AUTOREGRESSIVE = JointAutoregressive("joint-autoregressive")
CHENG2020_ANCHOR = JointAutoregressive("cheng2020-anchor")
CHENG2020_ATTN = JointAutoregressive("cheng2020-attn")
