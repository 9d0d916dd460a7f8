"""The layers of the families' float networks, written in lrcodec so that coding needs no
CompressAI at run time.

Every class keeps CompressAI 1.2.8's parameter and buffer names, shapes, module tree and
default initialisation (the same draws from torch's generator, in the same order), because
the shipped weights, CompressAI's zoo and its checkpoints name their tensors that way, and
because ``lrcodec.format.exact`` and ``lrcodec.families.base.receptive_radius`` read the module
tree: its Conv2d, ConvTranspose2d and PixelShuffle leaves, a residual block's ``skip`` and
``upsample``, an attention block's ``conv_a`` and ``conv_b``. ``tests/families/test_layers.py``
and ``test_reference.py`` check each against CompressAI's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..format.likelihoods import lower_bound

# ---------------------------------------------------------------- bounds and GDN


class LowerBound(nn.Module):
    """max(x, bound), with ``lrcodec.format.likelihoods.lower_bound``'s gradient (a parameter
    stuck at its bound can leave it); the bound is a buffer (``bound``), as in CompressAI's
    state dicts."""

    bound: Tensor

    def __init__(self, bound: float):
        super().__init__()
        self.register_buffer("bound", torch.Tensor([float(bound)]))

    def forward(self, x: Tensor) -> Tensor:
        return lower_bound(x, self.bound)


class NonNegativeParametrizer(nn.Module):
    """A non-negative parameter stored as its square root plus a pedestal (GDN's beta and
    gamma): training stays stable near zero."""

    pedestal: Tensor

    def __init__(self, minimum: float = 0, reparam_offset: float = 2**-18):
        super().__init__()
        self.minimum = float(minimum)
        self.reparam_offset = float(reparam_offset)
        self.register_buffer("pedestal", torch.Tensor([self.reparam_offset**2]))
        self.lower_bound = LowerBound((self.minimum + self.reparam_offset**2) ** 0.5)

    def init(self, x: Tensor) -> Tensor:
        """The stored form of a value x."""
        return torch.sqrt(torch.max(x + self.pedestal, self.pedestal))

    def forward(self, x: Tensor) -> Tensor:
        return self.lower_bound(x) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016): x / sqrt(beta + gamma x^2), or
    with ``inverse`` (IGDN) x * sqrt(...)."""

    def __init__(self, in_channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = bool(inverse)
        self.beta_reparam = NonNegativeParametrizer(minimum=float(beta_min))
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(in_channels)))
        self.gamma_reparam = NonNegativeParametrizer()
        self.gamma = nn.Parameter(self.gamma_reparam.init(float(gamma_init) * torch.eye(in_channels)))

    def forward(self, x: Tensor) -> Tensor:
        C = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(C, C, 1, 1)
        norm = F.conv2d(x**2, gamma, beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


# ---------------------------------------------------------------- convolutions


def conv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    """A convolution padded to keep size / stride."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2)


def deconv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that multiplies the size by the stride."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              output_padding=stride - 1, padding=kernel_size // 2)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride)


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1)


def subpel_conv3x3(in_ch: int, out_ch: int, r: int = 1) -> nn.Sequential:
    """Up-sampling by r: a 3x3 convolution to r^2 times the channels, then a pixel shuffle
    (a Sequential, which ``lrcodec.format.exact.leaf_modules`` flattens)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch * r**2, kernel_size=3, padding=1), nn.PixelShuffle(r))


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the causal part of its window (PixelCNN's mask "A": the
    rows above and the positions left of the centre; "B" also the centre). ``forward``
    convolves with the masked weights, which gives CompressAI's outputs without rewriting the
    weights in place as CompressAI's does (a model shared by threads is never written by a
    call; loading zeroes the masked taps once, ``base.zero_masked_taps``); ``mask`` is a buffer
    of the weight's shape."""

    mask: Tensor

    def __init__(self, *args, mask_type: str = "A", **kwargs):
        super().__init__(*args, **kwargs)
        if mask_type not in ("A", "B"):
            raise ValueError(f'Invalid "mask_type" value "{mask_type}"')
        self.register_buffer("mask", torch.ones_like(self.weight.data))
        _, _, h, w = self.mask.size()
        self.mask[:, :, h // 2, w // 2 + (mask_type == "B") :] = 0
        self.mask[:, :, h // 2 + 1 :] = 0

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class CheckerboardMaskedConv2d(MaskedConv2d):
    """The checkerboard context (He et al. 2021): only the window's positions with i + j odd
    (the four neighbours, ...), the centre too with mask "B"."""

    def __init__(self, *args, mask_type: str = "A", **kwargs):
        super().__init__(*args, mask_type=mask_type, **kwargs)
        _, _, h, w = self.mask.size()
        self.mask[:] = 1
        self.mask[:, :, 0::2, 0::2] = 0
        self.mask[:, :, 1::2, 1::2] = 0
        self.mask[:, :, h // 2, w // 2] = mask_type == "B"


def gdn_analysis(N: int, M: int) -> nn.Sequential:
    """Ballé et al.'s analysis transform: four 5x5 stride-2 convolutions, GDN between them."""
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def gdn_synthesis(N: int, M: int) -> nn.Sequential:
    """Ballé et al.'s synthesis transform: four 5x5 stride-2 transposed convolutions, IGDN between."""
    return nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                         deconv(N, N), GDN(N, inverse=True), deconv(N, 3))


# ---------------------------------------------------------------- residual and attention blocks


class ResidualBlockWithStride(nn.Module):
    """Cheng et al.'s down-sampling residual block: conv (strided), leaky ReLU, conv, GDN, plus
    a strided 1x1 ``skip``."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 2):
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride=stride)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.gdn = GDN(out_ch)
        self.skip = conv1x1(in_ch, out_ch, stride=stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.gdn(self.conv2(self.leaky_relu(self.conv1(x))))
        return out + (x if self.skip is None else self.skip(x))


class ResidualBlockUpsample(nn.Module):
    """Cheng et al.'s up-sampling residual block: sub-pixel conv, leaky ReLU, conv, IGDN, plus
    a sub-pixel ``upsample`` branch."""

    def __init__(self, in_ch: int, out_ch: int, upsample: int = 2):
        super().__init__()
        self.subpel_conv = subpel_conv3x3(in_ch, out_ch, upsample)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv = conv3x3(out_ch, out_ch)
        self.igdn = GDN(out_ch, inverse=True)
        self.upsample = subpel_conv3x3(in_ch, out_ch, upsample)

    def forward(self, x: Tensor) -> Tensor:
        out = self.igdn(self.conv(self.leaky_relu(self.subpel_conv(x))))
        return out + self.upsample(x)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with leaky ReLUs, plus the input (through a 1x1 ``skip`` when the
    channel count changes)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.skip = conv1x1(in_ch, out_ch) if in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.leaky_relu(self.conv2(self.leaky_relu(self.conv1(x))))
        return out + (x if self.skip is None else self.skip(x))


class ResidualUnit(nn.Module):
    """The attention block's unit: 1x1 (halving), 3x3, 1x1 (restoring), plus the input, ReLU."""

    def __init__(self, N: int):
        super().__init__()
        self.conv = nn.Sequential(conv1x1(N, N // 2), nn.ReLU(inplace=True), conv3x3(N // 2, N // 2),
                                  nn.ReLU(inplace=True), conv1x1(N // 2, N))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x) + x)


class AttentionBlock(nn.Module):
    """Cheng et al.'s simplified attention: x + conv_a(x) * sigmoid(conv_b(x)), two parallel
    branches of residual units."""

    def __init__(self, N: int):
        super().__init__()
        self.conv_a = nn.Sequential(ResidualUnit(N), ResidualUnit(N), ResidualUnit(N))
        self.conv_b = nn.Sequential(ResidualUnit(N), ResidualUnit(N), ResidualUnit(N), conv1x1(N, N))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_a(x) * torch.sigmoid(self.conv_b(x)) + x


class ResidualBottleneckBlock(nn.Module):
    """ELIC's residual bottleneck (He et al. 2016): 1x1 to half the channels, 3x3, 1x1 back,
    plus the input (``skip``: identity, or a 1x1 convolution when the channels change)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        mid_ch = min(in_ch, out_ch) // 2
        self.conv1 = conv1x1(in_ch, mid_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(mid_ch, mid_ch)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(mid_ch, out_ch)
        self.skip = conv1x1(in_ch, out_ch) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        identity = self.skip(x)
        return self.conv3(self.relu2(self.conv2(self.relu1(self.conv1(x))))) + identity


def sequential_channel_ramp(in_ch: int, out_ch: int, *, min_ch: int = 0, num_layers: int = 3, make_layer=None,
                            make_act=None, skip_last_act: bool = True, **layer_kwargs) -> nn.Sequential:
    """Layers whose widths ramp linearly from in_ch to out_ch (at least min_ch inside), each
    followed by an activation but the last: ELIC's parameter aggregation."""
    channels = torch.linspace(in_ch, out_ch, num_layers + 1).floor().int()
    channels[1:-1] = channels[1:-1].clip(min=min_ch)
    channels = channels.tolist()
    layers = [module for ch_in, ch_out in zip(channels[:-1], channels[1:])
              for module in (make_layer(ch_in, ch_out, **layer_kwargs), make_act())]
    return nn.Sequential(*(layers[:-1] if skip_last_act else layers))


# ---------------------------------------------------------------- Cheng et al.'s transforms (autoregressive and checkerboard families)


def cheng2020_h_a(N: int) -> nn.Sequential:
    """Cheng et al.'s h_a: 3x3 convolutions with leaky ReLUs, two of stride 2."""
    return nn.Sequential(conv3x3(N, N), nn.LeakyReLU(inplace=True), conv3x3(N, N), nn.LeakyReLU(inplace=True),
                         conv3x3(N, N, stride=2), nn.LeakyReLU(inplace=True), conv3x3(N, N),
                         nn.LeakyReLU(inplace=True), conv3x3(N, N, stride=2))


def cheng2020_h_s(N: int) -> nn.Sequential:
    """Cheng et al.'s h_s: 3x3 and sub-pixel convolutions with leaky ReLUs -> 2N."""
    return nn.Sequential(conv3x3(N, N), nn.LeakyReLU(inplace=True), subpel_conv3x3(N, N, 2),
                         nn.LeakyReLU(inplace=True), conv3x3(N, N * 3 // 2), nn.LeakyReLU(inplace=True),
                         subpel_conv3x3(N * 3 // 2, N * 3 // 2, 2), nn.LeakyReLU(inplace=True),
                         conv3x3(N * 3 // 2, N * 2))


def cheng2020_g_a(N: int) -> nn.Sequential:
    """Cheng et al.'s anchor analysis: residual blocks, three strided, a strided 3x3 last."""
    return nn.Sequential(ResidualBlockWithStride(3, N, stride=2), ResidualBlock(N, N),
                         ResidualBlockWithStride(N, N, stride=2), ResidualBlock(N, N),
                         ResidualBlockWithStride(N, N, stride=2), ResidualBlock(N, N), conv3x3(N, N, stride=2))


def cheng2020_g_s(N: int) -> nn.Sequential:
    """Cheng et al.'s anchor synthesis: residual blocks, three up-sampling, a sub-pixel conv last."""
    return nn.Sequential(ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2), ResidualBlock(N, N),
                         ResidualBlockUpsample(N, N, 2), ResidualBlock(N, N), ResidualBlockUpsample(N, N, 2),
                         ResidualBlock(N, N), subpel_conv3x3(N, 3, 2))
