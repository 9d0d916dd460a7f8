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

import itertools

import numpy as np
import torch
from torch import nn

from ..errors import LrcodecError
from ..format.exact import ACT_BITS, IntegerNetwork, PositionConvolution
from ..format.tiling import tiled
from .base import SIGMA_MIN, Family, Quantizer, check_square, cheng2020_dims, gaussian_step, has_prefix, receptive_radius, zero_masked_taps
from .coding import ExactEntropyModel, YUnit, hyper_parts
from .layers import (AttentionBlock, CheckerboardMaskedConv2d, ResidualBottleneckBlock, cheng2020_g_a, cheng2020_g_s,
                     cheng2020_h_a, cheng2020_h_s, conv, conv1x1, deconv, sequential_channel_ramp)
from .priors import CompressionNet, EntropyBottleneck, GaussianConditional
from .two_pass import anchor_mask, anchors_of, checkerboard_units, two_pass


# ================================================================ the networks
# CompressAI 1.2.8's sensetime models (Cheng2020AnchorCheckerboard, Elic2022Official,
# Elic2022Chandelier), float part: its tensor names, module tree and initialisation, built from
# lrcodec's layers (``layers``, ``priors``). Their entropy model is a tree of CompressAI's
# latent codecs; these containers keep its names (net.latent_codec["hyper"] / ["y"], ...) and
# the modules the coder reads, not CompressAI's forward, compress or decompress.


class HyperLatentCodec(nn.Module):
    """z's branch: h_a, the entropy bottleneck, h_s."""

    def __init__(self, entropy_bottleneck: EntropyBottleneck, h_a: nn.Module, h_s: nn.Module, quantizer: str = "noise"):
        super().__init__()
        self.entropy_bottleneck = entropy_bottleneck
        self.h_a = h_a
        self.h_s = h_s
        self.quantizer = quantizer


class GaussianConditionalLatentCodec(nn.Module):
    """A group's Gaussian: its conditional's buffers and how its parameters split (``chunks``)."""

    def __init__(self, quantizer: str = "noise", chunks: tuple[str, ...] = ("scales", "means")):
        super().__init__()
        self.quantizer = quantizer
        self.gaussian_conditional = GaussianConditional(None)
        self.entropy_parameters = nn.Identity()
        self.chunks = tuple(chunks)


class CheckerboardLatentCodec(nn.Module):
    """A checkerboard-coded group: its spatial context and entropy parameters (``latent_codec``,
    a plain dict as in CompressAI, names its Gaussian ``y``)."""

    def __init__(self, latent_codec: dict, entropy_parameters: nn.Module, context_prediction: nn.Module,
                 anchor_parity: str = "even", forward_method: str = "twopass"):
        super().__init__()
        self.anchor_parity = anchor_parity
        self.non_anchor_parity = {"odd": "even", "even": "odd"}[anchor_parity]
        self.forward_method = forward_method
        self.entropy_parameters = entropy_parameters
        self.context_prediction = context_prediction
        self.y = latent_codec["y"]
        self.latent_codec = latent_codec

    def __getitem__(self, key: str) -> nn.Module:
        return self.latent_codec[key]


class ChannelGroupsLatentCodec(nn.Module):
    """ELIC's channel groups: group k's channel context (``channel_context["y{k}"]``, k > 0) and
    checkerboard codec (``latent_codec["y{k}"]``)."""

    def __init__(self, latent_codec: dict, channel_context: dict, *, groups: list[int]):
        super().__init__()
        self.groups = list(groups)
        self.groups_acc = list(itertools.accumulate(self.groups, initial=0))
        self.channel_context = nn.ModuleDict(channel_context)
        self.latent_codec = nn.ModuleDict(latent_codec)

    def __getitem__(self, key: str) -> nn.Module:
        return self.latent_codec[key]


class HyperpriorLatentCodec(nn.Module):
    """The whole entropy model: ``hyper`` (z) and ``y``, both in ``latent_codec`` (a plain dict)."""

    def __init__(self, latent_codec: dict):
        super().__init__()
        self.y = latent_codec["y"]
        self.hyper = latent_codec["hyper"]
        self.latent_codec = latent_codec

    def __getitem__(self, key: str) -> nn.Module:
        return self.latent_codec[key]


class Cheng2020AnchorCheckerboardNet(CompressionNet):
    """``cheng2020-anchor-checkerboard``: Cheng et al.'s anchor transforms, one checkerboard group."""

    def __init__(self, N: int = 192, **kwargs):
        super().__init__(**kwargs)
        self.g_a = cheng2020_g_a(N)
        self.g_s = cheng2020_g_s(N)
        h_a, h_s = cheng2020_h_a(N), cheng2020_h_s(N)
        y = CheckerboardLatentCodec(
            latent_codec={"y": GaussianConditionalLatentCodec(quantizer="ste")},
            entropy_parameters=nn.Sequential(
                nn.Conv2d(N * 12 // 3, N * 10 // 3, 1), nn.LeakyReLU(inplace=True),
                nn.Conv2d(N * 10 // 3, N * 8 // 3, 1), nn.LeakyReLU(inplace=True),
                nn.Conv2d(N * 8 // 3, N * 6 // 3, 1)),
            context_prediction=CheckerboardMaskedConv2d(N, 2 * N, kernel_size=5, stride=1, padding=2))
        hyper = HyperLatentCodec(entropy_bottleneck=EntropyBottleneck(N), h_a=h_a, h_s=h_s, quantizer="ste")
        self.latent_codec = HyperpriorLatentCodec({"y": y, "hyper": hyper})


def _elic_transforms(N: int, M: int) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    """ELIC's g_a, g_s and h_a: 5x5 (transposed) convolutions, residual bottlenecks, attention."""
    def blocks():
        return [ResidualBottleneckBlock(N, N), ResidualBottleneckBlock(N, N), ResidualBottleneckBlock(N, N)]

    g_a = nn.Sequential(conv(3, N, kernel_size=5, stride=2), *blocks(), conv(N, N, kernel_size=5, stride=2), *blocks(),
                        AttentionBlock(N), conv(N, N, kernel_size=5, stride=2), *blocks(),
                        conv(N, M, kernel_size=5, stride=2), AttentionBlock(M))
    g_s = nn.Sequential(AttentionBlock(M), deconv(M, N, kernel_size=5, stride=2), *blocks(),
                        deconv(N, N, kernel_size=5, stride=2), AttentionBlock(N), *blocks(),
                        deconv(N, N, kernel_size=5, stride=2), *blocks(), deconv(N, 3, kernel_size=5, stride=2))
    h_a = nn.Sequential(conv(M, N, kernel_size=3, stride=1), nn.ReLU(inplace=True), conv(N, N, kernel_size=5, stride=2),
                        nn.ReLU(inplace=True), conv(N, N, kernel_size=5, stride=2))
    return g_a, g_s, h_a


def _elic_channel_context(inputs: int, outputs: int) -> nn.Sequential:
    """g_ch: three 5x5 convolutions (224 and 128 hidden channels) with ReLUs."""
    return nn.Sequential(conv(inputs, 224, kernel_size=5, stride=1), nn.ReLU(inplace=True),
                         conv(224, 128, kernel_size=5, stride=1), nn.ReLU(inplace=True),
                         conv(128, outputs, kernel_size=5, stride=1))


class Elic2022OfficialNet(CompressionNet):
    """``elic2022-official``: uneven channel groups, each with a checkerboard context; group k's
    channel context reads all earlier groups."""

    chandelier = False

    def __init__(self, N: int = 192, M: int = 320, groups: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.groups = list(groups if groups is not None else [16, 16, 32, 64, M - 128])
        if sum(self.groups) != M:
            raise ValueError(f"channel groups {self.groups} do not sum to M={M}")
        g = self.groups
        self.g_a, self.g_s, h_a = _elic_transforms(N, M)
        if self.chandelier:
            h_s = nn.Sequential(deconv(N, N, kernel_size=5, stride=2), nn.ReLU(inplace=True),
                                deconv(N, N * 3 // 2, kernel_size=5, stride=2), nn.ReLU(inplace=True),
                                conv(N * 3 // 2, M * 2, kernel_size=3, stride=1))
            channel_context = {f"y{k}": _elic_channel_context(g[0] + (k > 1) * g[k - 1], g[k] * 2)
                               for k in range(1, len(g))}
        else:
            h_s = nn.Sequential(deconv(N, N, kernel_size=5, stride=2), nn.ReLU(inplace=True),
                                deconv(N, N * 3 // 2, kernel_size=5, stride=2), nn.ReLU(inplace=True),
                                deconv(N * 3 // 2, N * 2, kernel_size=3, stride=1))
            channel_context = {f"y{k}": _elic_channel_context(sum(g[:k]), g[k] * 2) for k in range(1, len(g))}
        spatial_context = [CheckerboardMaskedConv2d(g[k], g[k] * 2, kernel_size=5, stride=1, padding=2)
                           for k in range(len(g))]
        param_aggregation = [self._param_aggregation(N, M, k) for k in range(len(g))]
        chunks = ("means", "scales") if self.chandelier else ("scales", "means")
        scctx = {f"y{k}": CheckerboardLatentCodec(
                     latent_codec={"y": GaussianConditionalLatentCodec(quantizer="ste", chunks=chunks)},
                     context_prediction=spatial_context[k], entropy_parameters=param_aggregation[k])
                 for k in range(len(g))}
        self.latent_codec = HyperpriorLatentCodec({
            "y": ChannelGroupsLatentCodec(groups=g, channel_context=channel_context, latent_codec=scctx),
            "hyper": HyperLatentCodec(entropy_bottleneck=EntropyBottleneck(N), h_a=h_a, h_s=h_s, quantizer="ste"),
        })

    def _param_aggregation(self, N: int, M: int, k: int) -> nn.Sequential:
        """Group k's entropy parameters: 1x1 convolutions of its spatial context, channel
        context (k > 0) and the hyper params, widths ramping down to its 2 g_k outputs."""
        g = self.groups
        return sequential_channel_ramp(g[k] * 2 + (k > 0) * g[k] * 2 + N * 2, g[k] * 2, min_ch=N * 2, num_layers=3,
                                       make_layer=nn.Conv2d, make_act=lambda: nn.ReLU(inplace=True),
                                       kernel_size=1, stride=1, padding=0)


class Elic2022ChandelierNet(Elic2022OfficialNet):
    """``elic2022-chandelier``: group k's channel context reads the first and the latest group,
    h_s ends in a convolution, parameters are split means first."""

    chandelier = True

    def _param_aggregation(self, N: int, M: int, k: int) -> nn.Sequential:
        g = self.groups
        return nn.Sequential(conv1x1(g[k] * 2 + (k > 0) * g[k] * 2 + M * 2, M * 2), nn.ReLU(inplace=True),
                             conv1x1(M * 2, 512), nn.ReLU(inplace=True), conv1x1(512, g[k] * 2))


# ================================================================ (end of the networks)


def _y_codec(net):
    return net.latent_codec["y"]


class SpaceChannel:
    """Where a network keeps each group's parts (``checkerboards``: each group's spatial
    context and entropy parameters; ``channel_contexts``: None for the first group), the
    groups' sizes, and how a group's inputs are laid out (``chandelier``: Chandelier's)."""

    def __init__(self, checkerboards: list, channel_contexts: list, groups: list[int], chandelier: bool = False):
        self.checkerboards, self.channel_contexts, self.groups = checkerboards, channel_contexts, groups
        self.bounds = np.cumsum([0, *self.groups]).tolist()
        self.first_and_latest = self.means_first = chandelier

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
        self.fixed = hyper * 2.0**ACT_BITS
        self.channel_context: dict = {}


class ExactCheckerboard(ExactEntropyModel):
    needs_y_hat = True
    params_at_positions = True

    def __init__(self, net, layout: SpaceChannel, sigma_table):
        super().__init__(hyper_parts(net.latent_codec["hyper"], "latent_codec.hyper."), sigma_table)
        self.layout = layout
        self.spatial = [PositionConvolution(IntegerNetwork.of(cb.context_prediction)) for cb in layout.checkerboards]
        self.parameters = [IntegerNetwork.of(cb.entropy_parameters) for cb in layout.checkerboards]
        self.channel = [None if c is None else IntegerNetwork.of(c) for c in layout.channel_contexts]

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
                hyper.channel_context[k] = self._run(self.channel[k], np.concatenate(self.layout.earlier(k, groups), 1))
            side.insert(0, hyper.channel_context[k])
        rows, cols = unit.positions
        anchors = anchors_of(unit, y_hat_fixed)  # the group's, decoded in its first pass
        if anchors is not None:
            spatial = self.spatial[k](anchors, rows, cols)
        else:
            spatial = np.zeros((len(rows), 2 * (unit.hi - unit.lo)))
        at_positions = [s[0][:, rows, cols].T for s in side]
        params = self.parameters[k].on_vectors(np.concatenate([spatial, *at_positions], 1)) * 2.0**-ACT_BITS
        return self.layout.chunk(params.T[None])


class Checkerboard(Family):
    """Cheng2020AnchorCheckerboard: all of y one group, M = N."""

    def __init__(self, arch: str = "cheng2020-anchor-checkerboard"):
        self.archs = (arch,)

    def layout(self, net) -> SpaceChannel:
        codec = _y_codec(net)
        return SpaceChannel([codec], [None], [codec.context_prediction.in_channels])

    def hyper(self, net):
        return net.latent_codec["hyper"]

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        check_square(self.archs[0], N, M)
        return Cheng2020AnchorCheckerboardNet(N)

    def dims(self, state: dict) -> tuple[int, int]:
        return cheng2020_dims(state, self.archs[0])

    def latent_channels(self, net) -> int:
        return sum(self.layout(net).groups)

    def prepare(self, net):
        for cb in self.layout(net).checkerboards:
            zero_masked_taps(cb.context_prediction)
        return net

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        """Group by group, anchors then the others, exactly as the coder (teacher-forced)."""
        layout, step = self.layout(net), gaussian_step(quantize, sigma_min)
        y_hats, bits, first = [], [], anchor_mask(*y.shape[2:], y.device)
        for k, (cb, channel) in enumerate(zip(layout.checkerboards, layout.channel_contexts)):
            lo, hi = layout.bounds[k], layout.bounds[k + 1]
            side = hyper if channel is None else torch.cat([channel(torch.cat(layout.earlier(k, y_hats), 1)), hyper], 1)

            def params(anchors, first, cb=cb, side=side, lo=lo, hi=hi):
                """The group's (sigma, mu) from its spatial context (zero for the anchors) and the side."""
                if anchors is None:
                    spatial = side.new_zeros((side.shape[0], 2 * (hi - lo), *side.shape[2:]))
                else:
                    spatial = cb.context_prediction(anchors).to(side.dtype)
                return layout.chunk(cb.entropy_parameters(torch.cat([spatial, side], 1)).float())

            y_hat, bits_k, _, _ = two_pass(y[:, lo:hi], params, step, slice(lo, hi), first)
            y_hats.append(y_hat)
            bits.append(bits_k)
        return torch.cat(y_hats, 1), torch.cat(bits, 1)

    def y_context_radius(self, net) -> int:
        """A group's y_hat reaches its anchors through the spatial context and earlier groups
        through the channel context, group after group."""
        layout = self.layout(net)
        spatial = layout.checkerboards[0].context_prediction.kernel_size[0] // 2
        channel = 0 if len(layout.groups) == 1 else receptive_radius(layout.channel_contexts[1])
        return spatial + (len(layout.groups) - 1) * (channel + spatial)

    def exact(self, net, sigma_table):
        return ExactCheckerboard(net, self.layout(net), sigma_table)


class Elic(Checkerboard):
    """ELIC: uneven channel groups, each with its checkerboard and (after the first) a channel
    context; ``net_class`` CompressAI's or Chandelier's network (``chandelier``: its layout)."""

    def __init__(self, arch: str, net_class: type, chandelier: bool):
        super().__init__(arch)
        self.net_class, self.chandelier = net_class, chandelier

    def layout(self, net) -> SpaceChannel:
        codec = _y_codec(net)
        groups = list(codec.groups)
        return SpaceChannel([codec.latent_codec[f"y{k}"] for k in range(len(groups))],
                            [None] + [codec.channel_context[f"y{k}"] for k in range(1, len(groups))], groups,
                            self.chandelier)

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        groups = (shape or {}).get("groups")  # None: CompressAI's, 16, 16, 32, 64 and the rest
        if (sum(groups) != M) if groups else M <= 128:
            raise LrcodecError(f"{self.archs[0]}: channel groups {groups or [16, 16, 32, 64, '...']} do not split M={M}")
        return self.net_class(N, M, groups)

    def dims(self, state: dict) -> tuple[int, int]:
        if "g_a.0.weight" not in state:
            raise LrcodecError(f"not a {self.archs[0]} checkpoint: missing tensor g_a.0.weight")
        return state["g_a.0.weight"].shape[0], sum(channel_groups(state))

    def shape_of(self, state: dict, M: int) -> dict | None:
        return {"groups": channel_groups(state)}


def match(state: dict) -> str | None:
    """CompressAI's latent-codec models: ELIC's channel contexts, else the checkerboard."""
    if has_prefix(state, "latent_codec.y.channel_context."):
        # h_s starts with a transposed convolution (N, N, 5, 5) in both; Chandelier's ends in a
        # convolution (2M, 3N/2, 3, 3), CompressAI's ELIC in a transposed one (3N/2, 2N, 3, 3).
        try:
            N, last = state["latent_codec.hyper.h_s.0.weight"].shape[0], state["latent_codec.hyper.h_s.4.weight"]
        except KeyError as e:
            raise LrcodecError(f"not an ELIC checkpoint: missing tensor {e.args[0]}") from None
        return "elic2022-chandelier" if last.shape[1] == N * 3 // 2 else "elic2022-official"
    return "cheng2020-anchor-checkerboard" if has_prefix(state, "latent_codec.y.context_prediction.") else None


def channel_groups(state: dict) -> list[int]:
    """ELIC's channel group sizes, from its spatial contexts' weights (y0, y1, ...)."""
    groups = []
    while (key := f"latent_codec.y.latent_codec.y{len(groups)}.context_prediction.weight") in state:
        groups.append(state[key].shape[1])
    if not groups:
        raise LrcodecError("not an ELIC checkpoint: no channel groups (latent_codec.y.latent_codec.y0...)")
    return groups


CHENG2020_ANCHOR_CHECKERBOARD = Checkerboard()
ELIC2022_OFFICIAL = Elic("elic2022-official", Elic2022OfficialNet, chandelier=False)
ELIC2022_CHANDELIER = Elic("elic2022-chandelier", Elic2022ChandelierNet, chandelier=True)
