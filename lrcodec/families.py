"""Model families: one object per family owns its whole graph, found by the model card's
``arch`` (``FAMILIES``).

* the float graph: analysis (g_a, h_a), hyper-synthesis, and the y step of the training
  surrogate's forward pass (``y_forward``), which training and refinement share;
* the coder's exact graph (``exact``): what decides each symbol's probability, as integer
  networks and IEEE-754 basic operations (``lrcodec.exact``), and the order in which y is
  coded (``ExactEntropyModel.y_units``).

Data flow (Ballé et al. 2018; Minnen et al. 2018; Minnen & Singh 2020)::

    x -> g_a -> y -> h_a(y, or |y| for the scale-only model) -> z -> [Q, factorized prior] -> z_hat
    z_hat -> h_s -> (sigma, mu)   [channel-context, slice s: (d_sigma, d_mu) = c_s(sigma, mu, y_hat<s),
                                   sigma * exp(d_sigma), mu + d_mu]
    y -> [Q around mu, Gaussian(sigma)] -> y_hat -> g_s -> x_hat
"""

from __future__ import annotations

from typing import Callable

# quantize(y, sigma, mu, channels) -> (y_hat, bits per element) of a part of y (``channels``,
# a slice of y's channels): the training surrogate, a refinement sampler or hard rounding.
Quantizer = Callable


class Hyperprior:
    """CompressAI's ScaleHyperprior ("scale") and MeanScaleHyperprior ("mean-scale")."""

    archs = ("mean-scale", "scale")

    def build(self, arch: str, N: int, M: int, context: dict | None = None):
        from compressai.models import MeanScaleHyperprior, ScaleHyperprior

        return MeanScaleHyperprior(N, M) if arch == "mean-scale" else ScaleHyperprior(N, M)

    def mean_scale(self, net) -> bool:
        from compressai.models import MeanScaleHyperprior

        return isinstance(net, MeanScaleHyperprior)

    def hyper_analysis(self, net, y):
        """z from y (the scale-only model looks at |y|)."""
        return net.h_a(y if self.mean_scale(net) else y.abs())

    def hyper_synthesis(self, net, z_hat):
        """(sigma, mu) from z_hat; mu is zero for the scale-only model."""
        import torch

        params = net.h_s(z_hat)
        if self.mean_scale(net):
            sigma, mu = params.chunk(2, 1)
            return sigma, mu
        return params, torch.zeros_like(params)

    def y_forward(self, net, y, sigma, mu, quantize: Quantizer) -> tuple:
        """(sigma, mu, y_hat, bits per element) of y given the hyperprior's (sigma, mu)."""
        y_hat, bits = quantize(y, sigma, mu, slice(None))
        return sigma, mu, y_hat, bits

    def forward(self, net, y, z_hat, quantize: Quantizer) -> tuple:
        """The y half of the graph from z_hat: (sigma, mu, y_hat, bits per element)."""
        sigma, mu = self.hyper_synthesis(net, z_hat)
        return self.y_forward(net, y, sigma.float(), mu.float(), quantize)

    def exact(self, net, sigma_table):
        from .exact import ExactEntropyModel

        return ExactEntropyModel(net, sigma_table, self.mean_scale(net))

    def y_context_radius(self, net) -> int:
        """How far (in y positions) an element's y_hat and bits reach, given (sigma, mu): here
        each element alone, 0."""
        return 0

    def context_shape(self, state: dict, M: int) -> dict | None:
        return None


class ChannelContextFamily(Hyperprior):
    """A mean-scale hyperprior whose y is coded in channel slices, each slice's (sigma, mu)
    corrected from the slices before it (and with the checkerboard, from the slice's anchors);
    ``lrcodec.context``."""

    archs = ("channel-context",)

    def build(self, arch: str, N: int, M: int, context: dict | None = None):
        from .context import DEFAULT_SHAPE, ChannelContext, ContextShape

        net = super().build("mean-scale", N, M)
        shape = {**DEFAULT_SHAPE, **(context or {})}
        net.context = ChannelContext(ContextShape(M, shape["slices"], tuple(shape["hidden"]), shape["checkerboard"]))
        return net

    def mean_scale(self, net) -> bool:
        return True

    def y_forward(self, net, y, sigma, mu, quantize: Quantizer) -> tuple:
        return net.context(y, sigma, mu, quantize)

    def exact(self, net, sigma_table):
        from .exact import ExactEntropyModel

        return ExactEntropyModel(net, sigma_table, True, net.context)

    def y_context_radius(self, net) -> int:
        """Each pass of a slice network (its 3x3 convolutions) reaches as far as their summed
        radii into the y_hat before it: one pass a slice, two with the checkerboard."""
        from torch import nn

        radius = sum(layer.kernel_size[0] // 2 for layer in net.context.nets[0] if isinstance(layer, nn.Conv2d))
        return radius * len(net.context.nets) * (2 if net.context.shape.checkerboard else 1)

    def context_shape(self, state: dict, M: int) -> dict:
        """The context's shape from its weights' shapes (a checkpoint needs no card)."""
        slices = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("context.nets."))
        first, last = state["context.nets.0.0.weight"], state["context.nets.0.4.weight"]
        k = last.shape[0] // 2
        return {"slices": slices, "hidden": [first.shape[0], state["context.nets.0.2.weight"].shape[0]],
                "checkerboard": first.shape[1] == 2 * M + k + 1}


HYPERPRIOR = Hyperprior()
CHANNEL_CONTEXT = ChannelContextFamily()
FAMILIES = {arch: family for family in (HYPERPRIOR, CHANNEL_CONTEXT) for arch in family.archs}
ARCHITECTURES = tuple(FAMILIES)


def family_of(net) -> Hyperprior:
    """The family of a network built by one of the families."""
    return CHANNEL_CONTEXT if hasattr(net, "context") else HYPERPRIOR
