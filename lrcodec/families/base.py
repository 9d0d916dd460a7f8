"""What every family shares: the float graph's protocol, the z path under CompressAI's learned
factorized prior (written once, here), the Gaussian y step, and receptive fields.

A family is an object that owns its architecture's whole graph (``lrcodec.families``):

* ``build`` / ``dims`` / ``prepare``: the network, its size from a state dict, and what
  loading must do to the weights before they are hashed into the model id;
* the float graph for training and refinement: ``hyper_analysis`` (z from y, or None),
  ``z_forward`` (z -> z_hat and its bits), ``hyper_synthesis`` (z_hat -> the hyper tensor at
  y's resolution, or None), ``y_forward`` (y -> y_hat and its bits, given the hyper tensor);
  each takes a *quantizer* of centred latents, so the same graph serves every surrogate, the
  refinement samplers and hard rounding;
* ``exact``: the coder's exact graph (``lrcodec.format.exact``), which decides every symbol's
  probability and the order of y's coding units;
* ``hard_bits``: the information content of the coder's latents under the float model.

A quantizer is ``quantize(v, channels) -> Quantized``: v is a centred part of a latent (y - mu,
z - m) and ``channels`` its slice of the latent's channels; it returns the value fed on (still
centred) and the interval whose probability mass is the rate (the coder's hard rounding here, the training surrogates in ``lrcodec.learn.surrogates``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..format.entropy import SIGMA_MIN
from ..errors import LrcodecError
from ..format.likelihoods import factorized_interval_likelihood, gaussian_bits, gaussian_interval_likelihood, z_medians

@dataclass
class Quantized:
    """What a quantizer gives for a centred latent: the value fed on, and the interval whose
    probability mass is its rate."""

    value: torch.Tensor  # input to the next transform (centred)
    lower: torch.Tensor  # rate = P(lower < V < upper)
    upper: torch.Tensor


Quantizer = Callable[..., Quantized]


def hard_rounding(v, channels=None) -> Quantized:
    """The coder's quantizer for latents that are already rounded: the value itself."""
    return Quantized(v, v - 0.5, v + 0.5)


def factorized_forward(entropy_bottleneck, v, quantize: Quantizer, step: float = 1.0) -> tuple:
    """(v_hat, bits per element) of a latent under the learned factorized prior, quantized in
    steps of ``step`` around its per-channel medians: the z path of every hyperprior, and y of
    the factorized model."""
    m = z_medians(entropy_bottleneck)
    with torch.autocast(v.device.type, enabled=False):  # the prior's matmuls stay fp32
        q = quantize((v.float() - m) / step, slice(None))
        bits = -torch.log2(factorized_interval_likelihood(entropy_bottleneck, q.lower * step + m, q.upper * step + m))
    return q.value * step + m, bits


def gaussian_step(quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> Callable:
    """``step(y, sigma, mu, channels) -> (y_hat, bits per element)``: a part of y quantized
    around mu and scored under N(mu, sigma^2)."""
    def step(y, sigma, mu, channels):
        q = quantize(y - mu, channels)
        return q.value + mu, -torch.log2(gaussian_interval_likelihood(q.lower, q.upper, sigma, sigma_min))

    return step


# Children of CompressAI's blocks that are a parallel branch beside the others, not after them
_PARALLEL = ("skip", "upsample", "conv_a", "conv_b")


def receptive_radius(transform, radius: int = 0) -> int:
    """An upper bound of how far (in input positions) the outputs within ``radius`` of one
    output of a float transform reach: a Sequential's layers composed in order; a block's
    children too, except its parallel branches (CompressAI's residual ``skip`` and
    ``upsample``, an attention block's two branches), which take the larger reach. The tile
    halo of g_a and g_s comes from it."""
    if isinstance(transform, nn.Conv2d):
        k, s, p = transform.kernel_size[0], transform.stride[0], transform.padding[0]
        return radius * s + max(p, transform.dilation[0] * (k - 1) - p)
    if isinstance(transform, nn.ConvTranspose2d):
        k, s, p = transform.kernel_size[0], transform.stride[0], transform.padding[0]
        return -(-(radius + max(p, k - 1 - p)) // s)
    if isinstance(transform, nn.PixelShuffle):
        return -(-radius // transform.upscale_factor)
    children = list(transform.named_children())
    main = radius
    for name, child in reversed(children):
        if isinstance(transform, nn.Sequential) or name not in _PARALLEL:
            main = receptive_radius(child, main)
    branches = [receptive_radius(c, radius) for n, c in children if n in _PARALLEL and not isinstance(transform, nn.Sequential)]
    return max([main, *branches])


def zero_masked_taps(conv) -> None:
    """A masked convolution's weights times its mask, +0.0 under the mask (not the -0.0 that
    multiplying can leave): CompressAI applies the mask only in ``forward``, so a checkpoint
    may hold non-zero masked taps, which must not reach the coder or the model id."""
    with torch.no_grad():
        conv.weight.copy_(torch.where(conv.mask.bool(), conv.weight, torch.zeros_like(conv.weight)))


def has_prefix(state: dict, prefix: str) -> bool:
    """Whether a state dict has a tensor under ``prefix`` (a checkpoint matcher's test)."""
    return any(k.startswith(prefix) for k in state)


def cheng2020_dims(state: dict, arch: str) -> tuple[int, int]:
    """(N, N): Cheng et al.'s transforms have as many latent channels as hidden ones."""
    try:
        N = state["g_a.0.conv1.weight"].shape[0]
    except KeyError as e:
        raise LrcodecError(f"not a {arch} checkpoint: missing tensor {e.args[0]}") from None
    return N, N


def check_square(arch: str, N: int, M: int) -> None:
    if M != N:
        raise LrcodecError(f"{arch} has as many latent channels as hidden ones (M = N), got N={N} M={M}")


class Family:
    """The protocol (module docstring) and what the hyperprior families share."""

    archs: tuple[str, ...] = ()
    # Whether the family codes without torch: its exact path and transforms have a runtime
    # export (``lrcodec.models.export_runtime``, read by ``lrcodec.runtime``).
    portable: bool = False

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        raise NotImplementedError

    def dims(self, state: dict) -> tuple[int, int]:
        """(N, M) of a CompressAI-format state dict."""
        try:
            return state["g_a.0.weight"].shape[0], state["g_a.6.weight"].shape[0]
        except KeyError as e:
            raise LrcodecError(f"not a {self.archs[0]} checkpoint: missing tensor {e.args[0]}") from None

    def shape_of(self, state: dict, M: int) -> dict | None:
        """More of the architecture's shape than (N, M), read from the weights (None: nothing)."""
        return None

    def prepare(self, net):
        """What loading does to the weights before they are hashed (nothing by default)."""
        return net

    def rate_levels(self, net) -> int:
        """How many rates one network codes at (``lrcodec.families.vbr``); 0: one rate."""
        return 0

    def level(self, net) -> int:
        """The rate level the network codes at (0 for one rate)."""
        return 0

    def set_level(self, net, level: int) -> None:
        raise LrcodecError(f"{self.archs[0]} models code at one rate: they have no rate levels")

    def lmbda(self, net) -> float | None:
        """The lambda the network was trained for at its level, where it knows (else None:
        the model card's)."""
        return None

    def identity(self, net) -> bytes:
        """What the model id hashes besides the weights (a variable-rate model's level)."""
        return b""

    def hyper(self, net):
        """The module holding the network's h_a, h_s and z's entropy_bottleneck (the network
        itself in CompressAI's older models; ``latent_codec["hyper"]`` in its latent-codec ones)."""
        return net

    # -------------------------------------------------------------- the float graph

    def hyper_analysis(self, net, y):
        return self.hyper(net).h_a(y)

    def z_forward(self, net, z, quantize: Quantizer) -> tuple:
        return factorized_forward(self.hyper(net).entropy_bottleneck, z, quantize)

    def hyper_synthesis(self, net, z_hat):
        return self.hyper(net).h_s(z_hat)

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        raise NotImplementedError

    def hard_bits(self, net, latents, sigma_min: float = SIGMA_MIN):
        """The information content (bits, a float scalar tensor) of the coder's latents under
        the float entropy model: y under the coder's own (sigma, mu), z under the prior."""
        bits = gaussian_bits(latents.y_hat - latents.mu.float(), latents.sigma.float(), sigma_min)
        _, bits_z = self.z_forward(net, latents.z_hat.to(next(net.parameters()).device), hard_rounding)
        return bits + bits_z.sum().cpu()

    def float_bits(self, net, y_hat, z_hat, sigma_min: float = SIGMA_MIN) -> tuple:
        """(bits of y, bits of z), float scalar tensors, of already quantized latents under the
        float graph's own continuous parameters (a context reads y_hat itself)."""
        z_hat, bits_z = self.z_forward(net, z_hat, hard_rounding)
        hyper = self.hyper_synthesis(net, z_hat)
        _, bits_y = self.y_forward(net, y_hat, None if hyper is None else hyper.float(), hard_rounding, sigma_min)
        return bits_y.sum(), bits_z.sum()

    def latent_shapes(self, net, height: int, width: int) -> tuple[tuple, tuple]:
        """Shapes of y and z for a padded image of height x width pixels."""
        N, M = self.hyper(net).entropy_bottleneck.channels, self.latent_channels(net)
        return (1, M, height // 16, width // 16), (1, N, height // 64, width // 64)

    def latent_channels(self, net) -> int:
        return net.M  # CompressAI keeps it on every model but its latent-codec ones

    def y_context_radius(self, net) -> int:
        """How far (in y positions) an element's y_hat and bits reach, given the hyper tensor:
        0 when each element stands alone."""
        return 0

    def halos(self, net) -> tuple[int, int]:
        """(g_a's halo in pixels, g_s's in y positions) for tiled analysis and synthesis: the
        transforms' receptive fields, never below 64 pixels and 4 positions (what the first
        families were decoded with, so their pixels stay the same)."""
        g_a = -(-receptive_radius(net.g_a) // 16) * 16
        return max(64, g_a), max(4, receptive_radius(net.g_s))

    def exact(self, net, sigma_table):
        raise NotImplementedError
