"""Two-pass checkerboard models from CompressAI's ``models.sensetime``, by checkpoint: Cheng
et al. 2020's anchor with He et al. 2021's checkerboard context (arch
"cheng2020-anchor-checkerboard"), and ELIC (He et al. 2022) with uneven channel groups, as
CompressAI gives it ("elic2022-official") and with Chandelier's simplifications
("elic2022-chandelier": each group's channel context reads the first and the latest group
only, and its parameters are split means first)::

    z_hat -> h_s -> side (the hyper params)
    group k of y (one group for the checkerboard model):
        ch_k   = g_ch,k(y_hat of earlier groups)            (k > 0; 5x5 convolutions)
        anchors (i + j even):   (sigma, mu) = e_k(0, ch_k, side)
        the others:             (sigma, mu) = e_k(g_sp,k(y_hat anchors), ch_k, side)
    (g_sp,k: a 5x5 checkerboard-masked convolution; e_k: 1x1 convolutions)

The coding units are each group's anchors, then its other positions. The anchor pass has no
spatial context at all (CompressAI zeroes the masked convolution's output, bias included).
The coder runs every network as an integer network. Training and refinement run the same two
passes in float, so the relaxed forward is exactly the coder's graph, teacher-forced.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import LrcodecError
from ..exact import ACT_BITS, ExactEntropyModel, IntegerNetwork, PositionConvolution, YUnit
from ..tiling import tiled
from . import channel_groups
from .base import (SIGMA_MIN, Family, Quantizer, check_square, cheng2020_dims, gaussian_step, receptive_radius,
                   zero_masked_taps)
from .channel_context import anchor_mask, checkerboard_units


def _y_codec(net):
    return net.latent_codec["y"]


class SpaceChannel:
    """Where a network keeps each group's parts, and how a group's inputs are laid out."""

    def __init__(self, net, arch: str):
        codec = _y_codec(net)
        if arch == "cheng2020-anchor-checkerboard":
            self.checkerboards, self.channel_contexts = [codec], [None]
            self.groups = [codec.context_prediction.in_channels]
        else:
            self.groups = list(codec.groups)
            self.checkerboards = [codec.latent_codec[f"y{k}"] for k in range(len(self.groups))]
            self.channel_contexts = [None] + [codec.channel_context[f"y{k}"] for k in range(1, len(self.groups))]
        self.bounds = np.cumsum([0, *self.groups]).tolist()
        self.first_and_latest = arch == "elic2022-chandelier"
        self.means_first = arch == "elic2022-chandelier"

    def earlier(self, k: int, y_hat_groups: list):
        """The channel context's input for group k: every earlier group, or (Chandelier) the
        first and the latest."""
        if self.first_and_latest and k > 1:
            return [y_hat_groups[0], y_hat_groups[k - 1]]
        return y_hat_groups[:k]

    def chunk(self, params) -> tuple:
        """(sigma, mu) of the entropy parameters' output."""
        a, b = (params[:, : params.shape[1] // 2], params[:, params.shape[1] // 2 :])
        return (b, a) if self.means_first else (a, b)


class HyperState:
    """The state one file's units share (one walk over y, never reused): the hyper params in
    fixed point, and each group's channel context once computed."""

    def __init__(self, hyper: np.ndarray):
        self.fixed = torch.from_numpy(hyper * 2.0**ACT_BITS)
        self.channel_context: dict = {}


class ExactCheckerboard(ExactEntropyModel):
    needs_y_hat = True
    params_at_positions = True

    def __init__(self, net, arch: str, sigma_table):
        hyper = net.latent_codec["hyper"]
        super().__init__(hyper, sigma_table)
        self.layout = layout = SpaceChannel(net, arch)
        self.spatial = [PositionConvolution(IntegerNetwork(cb.context_prediction)) for cb in layout.checkerboards]
        self.parameters = [IntegerNetwork(cb.entropy_parameters) for cb in layout.checkerboards]
        self.channel = [None if c is None else IntegerNetwork(c) for c in layout.channel_contexts]

    def hyper(self, z_symbols: np.ndarray, z_offsets: np.ndarray, tile: int = 16) -> HyperState:
        return HyperState(super().hyper(z_symbols, z_offsets, tile))

    def y_units(self, shape: tuple) -> list[YUnit]:
        return checkerboard_units(self.layout.bounds, *shape[2:])

    @staticmethod
    def _run(net: IntegerNetwork, x):
        return tiled(net, x, tile=64, halo=net.radius)

    def unit_params(self, unit: YUnit, hyper: HyperState, y_hat_fixed=None) -> tuple[np.ndarray, np.ndarray]:
        """(sigma, mu) of the unit's positions, each (1, k, P): the spatial context and the
        entropy parameters (1x1 convolutions) run at those positions only."""
        k, b = unit.slice_index, self.layout.bounds
        side = [hyper.fixed]
        if k > 0:
            if k not in hyper.channel_context:
                groups = [y_hat_fixed[:, b[j] : b[j + 1]] for j in range(k)]
                hyper.channel_context[k] = self._run(self.channel[k], torch.cat(self.layout.earlier(k, groups), 1))
            side.insert(0, hyper.channel_context[k])
        rows, cols = unit.positions
        if unit.second_pass:  # the anchors of the group, decoded in its first pass
            spatial = self.spatial[k](y_hat_fixed[:, unit.lo : unit.hi] * torch.from_numpy(~unit.mask), rows, cols)
        else:
            spatial = torch.zeros((len(rows), 2 * (unit.hi - unit.lo)), dtype=torch.float64)
        at_positions = [s[0][:, torch.from_numpy(rows), torch.from_numpy(cols)].T for s in side]
        params = self.parameters[k].on_vectors(torch.cat([spatial, *at_positions], 1)).numpy() * 2.0**-ACT_BITS
        return self.layout.chunk(params.T[None])


class Checkerboard(Family):
    def __init__(self, arch: str):
        self.archs = (arch,)

    @property
    def arch(self) -> str:
        return self.archs[0]

    def hyper(self, net):
        return net.latent_codec["hyper"]

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        from compressai.models.sensetime import Cheng2020AnchorCheckerboard, Elic2022Chandelier, Elic2022Official

        if self.arch == "cheng2020-anchor-checkerboard":
            check_square(self.arch, N, M)
            return Cheng2020AnchorCheckerboard(N)
        groups = (shape or {}).get("groups")  # None: CompressAI's, 16, 16, 32, 64 and the rest
        if (sum(groups) != M) if groups else M <= 128:
            raise LrcodecError(f"{self.arch}: channel groups {groups or [16, 16, 32, 64, '...']} do not split M={M}")
        return (Elic2022Official if self.arch == "elic2022-official" else Elic2022Chandelier)(N, M, groups)

    def dims(self, state: dict) -> tuple[int, int]:
        if self.arch == "cheng2020-anchor-checkerboard":
            return cheng2020_dims(state, self.arch)
        if "g_a.0.weight" not in state:
            raise LrcodecError(f"not a {self.arch} checkpoint: missing tensor g_a.0.weight")
        return state["g_a.0.weight"].shape[0], sum(channel_groups(state))

    def shape_of(self, state: dict, M: int) -> dict | None:
        return None if self.arch == "cheng2020-anchor-checkerboard" else {"groups": channel_groups(state)}

    def latent_channels(self, net) -> int:
        return sum(SpaceChannel(net, self.arch).groups)

    def prepare(self, net):
        for cb in SpaceChannel(net, self.arch).checkerboards:
            zero_masked_taps(cb.context_prediction)
        return net

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        """Group by group, anchors then the others, exactly as the coder (teacher-forced)."""
        layout, step = SpaceChannel(net, self.arch), gaussian_step(quantize, sigma_min)
        B, _, H, W = y.shape
        first = anchor_mask(H, W, y.device)
        y_hats, bits = [], []
        for k, (cb, channel) in enumerate(zip(layout.checkerboards, layout.channel_contexts)):
            lo, hi = layout.bounds[k], layout.bounds[k + 1]
            side = hyper if channel is None else torch.cat([channel(torch.cat(layout.earlier(k, y_hats), 1)), hyper], 1)
            part = y[:, lo:hi]
            spatial = torch.zeros((B, 2 * (hi - lo), H, W), device=y.device, dtype=side.dtype)
            sigma, mu = layout.chunk(cb.entropy_parameters(torch.cat([spatial, side], 1)).float())
            y_hat1, bits1 = step(part, sigma, mu, slice(lo, hi))
            spatial = cb.context_prediction(y_hat1 * first).to(side.dtype)
            sigma, mu = layout.chunk(cb.entropy_parameters(torch.cat([spatial, side], 1)).float())
            y_hat2, bits2 = step(part, sigma, mu, slice(lo, hi))
            y_hats.append(torch.lerp(y_hat2, y_hat1, first))
            bits.append(torch.lerp(bits2, bits1, first))
        return torch.cat(y_hats, 1), torch.cat(bits, 1)

    def y_context_radius(self, net) -> int:
        """A group's y_hat reaches its anchors through the spatial context and earlier groups
        through the channel context, group after group."""
        layout = SpaceChannel(net, self.arch)
        spatial = layout.checkerboards[0].context_prediction.kernel_size[0] // 2
        channel = 0 if len(layout.groups) == 1 else receptive_radius(layout.channel_contexts[1])
        return spatial + (len(layout.groups) - 1) * (channel + spatial)

    def exact(self, net, sigma_table):
        return ExactCheckerboard(net, self.arch, sigma_table)


CHENG2020_ANCHOR_CHECKERBOARD = Checkerboard("cheng2020-anchor-checkerboard")
ELIC2022_OFFICIAL = Checkerboard("elic2022-official")
ELIC2022_CHANDELIER = Checkerboard("elic2022-chandelier")
