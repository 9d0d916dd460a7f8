"""The channel-conditional context (Minnen & Singh 2020), optionally with a checkerboard
spatial pass (He et al. 2021), on top of a mean-scale hyperprior (``docs/algorithms.md``
section 6), arch "channel-context"::

    z_hat -> h_s -> (sigma, mu)
    slice s: (d_sigma, d_mu) = c_s(sigma, mu, y_hat of slices < s [, the slice's anchors])
             y_s -> [Q around mu + d_mu, N(., (sigma * exp(d_sigma))^2)] -> y_hat_s

y's M channels are cut into equal slices coded one after another. Slice s's (sigma, mu) are
the hyperprior's corrected by a small network that reads the hyperprior's (sigma, mu) of all
channels and the decoded y_hat of the slices before s: sigma * exp(d_sigma), mu + d_mu. With the
checkerboard, each slice is coded in two passes: the anchors (even i + j) first, then the
other half with the anchors' y_hat of the slice as one more input (plus a mask channel
that tells the two passes apart).

The correction networks are convolutions and leaky ReLUs only, so that the coder can run them
as integer networks (``lrcodec.format.exact``); their last layer starts at zero, so an untrained
context codes exactly as the hyperprior does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import LrcodecError
from ..format.exact import ACT_BITS, ACT_LIMIT, IntegerNetwork, exp
from ..format.tiling import tiled
from .base import SIGMA_MIN, Quantizer, gaussian_step, has_prefix
from .coding import ExactHyperprior, YUnit, hyper_parts
from .hyperprior import Hyperprior
from .two_pass import anchor_mask, anchors_of, checkerboard_units, two_pass

DEFAULT_SHAPE = {"slices": 6, "hidden": [128, 64], "checkerboard": True}


@dataclass(frozen=True)
class ContextShape:
    M: int
    slices: int
    hidden: tuple[int, int]
    checkerboard: bool

    @property
    def slice_size(self) -> int:
        return self.M // self.slices

    def inputs(self, s: int) -> int:
        """Input channels of slice s's network: hyper (sigma, mu), earlier slices, and with the
        checkerboard the slice's anchors plus the mask."""
        return 2 * self.M + s * self.slice_size + (self.slice_size + 1 if self.checkerboard else 0)


class SaturatingLeakyReLU(nn.LeakyReLU):
    """Saturation at +-ACT_LIMIT, then leaky ReLU: what every layer of the integer network does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.clamp(-ACT_LIMIT, ACT_LIMIT))


def _slice_net(inputs: int, hidden: tuple[int, int], outputs: int) -> nn.Sequential:
    net = nn.Sequential(
        nn.Conv2d(inputs, hidden[0], 3, padding=1), SaturatingLeakyReLU(0.01),
        nn.Conv2d(hidden[0], hidden[1], 3, padding=1), SaturatingLeakyReLU(0.01),
        nn.Conv2d(hidden[1], outputs, 3, padding=1),
    )
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class ChannelContext(nn.Module):
    """The slice networks (float form, for training and refinement)."""

    def __init__(self, shape: ContextShape):
        super().__init__()
        if shape.M % shape.slices:
            raise LrcodecError(f"M={shape.M} is not a multiple of {shape.slices} slices")
        self.shape = shape
        self.nets = nn.ModuleList(_slice_net(shape.inputs(s), shape.hidden, 2 * shape.slice_size)
                                  for s in range(shape.slices))

    @staticmethod
    def _run(net: nn.Sequential, inputs: torch.Tensor) -> torch.Tensor:
        return net(inputs).clamp(-ACT_LIMIT, ACT_LIMIT)

    def inputs(self, hyper: torch.Tensor, earlier: torch.Tensor | None, anchors: torch.Tensor | None,
               mask: torch.Tensor | None) -> torch.Tensor:
        """The network input of one pass: hyper (sigma, mu), earlier slices' y_hat and, with the
        checkerboard, this slice's anchors (zero in the first pass) and the anchor mask."""
        parts = [hyper]
        if earlier is not None and earlier.shape[1]:
            parts.append(earlier.clamp(-ACT_LIMIT, ACT_LIMIT))
        if self.shape.checkerboard:
            parts += [anchors.clamp(-ACT_LIMIT, ACT_LIMIT), mask]
        return torch.cat(parts, 1)

    def forward(self, y: torch.Tensor, sigma: torch.Tensor, mu: torch.Tensor, quantize) -> tuple:
        """Slice by slice (and pass by pass): the parameters of each y element and the values
        ``quantize(y, sigma, mu)`` returns for it, in teacher-forced order exactly as the coder
        decodes. ``quantize(y part, sigma, mu, channels)`` -> (y_hat, anything per element), where
        ``channels`` is the part's slice of y's channels; returns (sigma, mu, y_hat, extra)."""
        k, B = self.shape.slice_size, y.shape[0]
        hyper = torch.cat([sigma, mu], 1).clamp(-ACT_LIMIT, ACT_LIMIT)
        sigmas, mus, y_hats, extras = [], [], [], []
        first = anchor_mask(*y.shape[2:], y.device) if self.shape.checkerboard else None
        for s, net in enumerate(self.nets):
            lo, hi = s * k, (s + 1) * k
            earlier = torch.cat(y_hats, 1) if y_hats else None

            def params(anchors, first, net=net, lo=lo, hi=hi, earlier=earlier):
                """The slice's (sigma, mu): the hyperprior's, corrected by its network."""
                mask = None
                if self.shape.checkerboard:  # the first pass reads zeros for the anchors and the mask
                    mask = first.expand(B, 1, *first.shape[2:])
                    if anchors is None:
                        anchors, mask = torch.zeros_like(y[:, lo:hi]), torch.zeros_like(mask)
                d_sigma, d_mu = self._run(net, self.inputs(hyper, earlier, anchors, mask)).chunk(2, 1)
                return sigma[:, lo:hi] * torch.exp(d_sigma), mu[:, lo:hi] + d_mu

            if self.shape.checkerboard:
                y_hat, extra, sig, m = two_pass(y[:, lo:hi], params, quantize, slice(lo, hi), first)
            else:
                sig, m = params(None, None)
                y_hat, extra = quantize(y[:, lo:hi], sig, m, slice(lo, hi))
            sigmas.append(sig)
            mus.append(m)
            y_hats.append(y_hat)
            extras.append(extra)
        return torch.cat(sigmas, 1), torch.cat(mus, 1), torch.cat(y_hats, 1), torch.cat(extras, 1)


class ExactChannelContext(ExactHyperprior):
    """The mean-scale hyperprior's exact model with the slice networks as integer networks:
    y is coded slice by slice (and pass by pass)."""

    needs_y_hat = True

    def __init__(self, net, sigma_table):
        super().__init__(hyper_parts(net), sigma_table, mean_scale=True)
        self.shape = net.context.shape
        self.nets = [IntegerNetwork.of(n) for n in net.context.nets]

    def y_units(self, shape: tuple) -> list[YUnit]:
        k = self.shape.slice_size
        if not self.shape.checkerboard:
            return [YUnit(s * k, (s + 1) * k, s) for s in range(self.shape.slices)]
        return checkerboard_units([s * k for s in range(self.shape.slices + 1)], *shape[2:])

    def delta(self, unit: YUnit, hyper_fixed, y_hat_fixed, tile: int = 64):
        """The slice network's fixed-point (d_sigma, d_mu) for a unit, each (1, k, h, w): its
        input is the hyperprior's (sigma, mu), the y_hat of earlier slices and with the
        checkerboard the slice's anchors and the anchor mask (zero in the first pass), all in
        fixed point, exactly as ``ChannelContext.inputs`` lays them out in float."""
        parts = [hyper_fixed, y_hat_fixed[:, : unit.lo]]
        if self.shape.checkerboard:
            anchors = anchors_of(unit, y_hat_fixed)
            if anchors is not None:
                parts += [anchors, (~unit.mask) * 2.0**ACT_BITS]
            else:
                height, width = y_hat_fixed.shape[2:]
                parts.append(np.zeros((1, unit.hi - unit.lo + 1, height, width)))
        net = self.nets[unit.slice_index]
        out = tiled(net, np.concatenate(parts, 1), tile=tile, halo=net.radius)
        return np.split(out, 2, axis=1)

    def unit_params(self, unit: YUnit, hyper: np.ndarray, y_hat_fixed=None) -> tuple[np.ndarray, np.ndarray]:
        """sigma_h * exp(d_sigma) with ``lrcodec.format.exact``'s exp, mu_h + d_mu (multiples of
        2**-ACT_BITS, added exactly)."""
        sigma, mu = super().unit_params(unit, hyper)
        d_sigma, d_mu = self.delta(unit, self.fixed(hyper), y_hat_fixed)
        return sigma * exp(d_sigma * 2.0**-ACT_BITS), mu + d_mu * 2.0**-ACT_BITS


class ChannelContextFamily(Hyperprior):
    portable = False  # its slice networks run with torch only

    def __init__(self):
        super().__init__(mean_scale=True)
        self.archs = ("channel-context",)

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        net = super().build("mean-scale", N, M)
        shape = {**DEFAULT_SHAPE, **(shape or {})}
        net.context = ChannelContext(ContextShape(M, shape["slices"], tuple(shape["hidden"]), shape["checkerboard"]))
        return net

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        sigma, mu = self.split(hyper)
        _, _, y_hat, bits = net.context(y, sigma, mu, gaussian_step(quantize, sigma_min))
        return y_hat, bits

    def exact(self, net, sigma_table):
        return ExactChannelContext(net, sigma_table)

    def y_context_radius(self, net) -> int:
        """Each pass of a slice network (its 3x3 convolutions) reaches as far as their summed
        radii into the y_hat before it: one pass a slice, two with the checkerboard."""
        radius = sum(layer.kernel_size[0] // 2 for layer in net.context.nets[0] if isinstance(layer, nn.Conv2d))
        return radius * len(net.context.nets) * (2 if net.context.shape.checkerboard else 1)

    def shape_of(self, state: dict, M: int) -> dict:
        """The context's shape from its weights' shapes (a checkpoint needs no card)."""
        slices = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("context.nets."))
        first = state["context.nets.0.0.weight"]
        k = state["context.nets.0.4.weight"].shape[0] // 2
        return {"slices": slices, "hidden": [first.shape[0], state["context.nets.0.2.weight"].shape[0]],
                "checkerboard": first.shape[1] == 2 * M + k + 1}


def match(state: dict) -> str | None:
    return "channel-context" if has_prefix(state, "context.nets.") else None


CHANNEL_CONTEXT = ChannelContextFamily()
