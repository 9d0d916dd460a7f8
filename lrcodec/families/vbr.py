"""CompressAI's variable-rate models (Kamisli, Racapé & Choi, "Variable-rate learned image
compression with multi-objective optimization and quantization-reconstruction offsets", DCC
2024; ``compressai.models.vbr``): ``bmshj2018-hyperprior-vbr`` (arch "scale-vbr"),
``mbt2018-mean-vbr`` ("mean-scale-vbr") and ``mbt2018-vbr`` ("joint-autoregressive-vbr").

One network codes at eight rates. At rate level s (``--quality`` s + 1, CompressAI's ``s``)
with gain g = |Gain[s]|:

* y is quantized in steps of 1/g: symbol k = round((y - mu) g) under N(0, (g sigma)^2), and a
  non-zero k is restored as (k + sign(k) o) / g + mu, o = -QuantABCD(g sigma, g) a learned
  offset towards mu;
* z, where the model has a variable-rate entropy bottleneck (``gayn2zqstep``), is quantized in
  steps of qs = max(0.5, gayn2zqstep(1/g)) around its medians;
* mbt2018-vbr adds scale_to_context(g) to its masked context.

The rate level is part of the model id (``identity``), so a file names its rate and a decoder
given the network finds the level. qs and the offsets are small MLPs, evaluated once per level
in float64 with IEEE basic operations in a fixed order and lrcodec's own softplus
(``lrcodec.format.exact``), so every machine gets the same numbers. The offsets are evaluated at the
coder's sigma (the table value at its index, at most one table step, 3 %, above CompressAI's
continuous one) and rounded to multiples of 2**-16; mbt2018-vbr's context reads the restored
y_hat rounded to fixed point (multiples of 2**-16), as the fixed-rate context reads its y_hat.
scale_to_context(g) is added to the context's bias before it
becomes an integer network.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..errors import LrcodecError
from ..format.exact import ACT_BITS, as_f64, softplus
from ..format.likelihoods import gaussian_bits, gaussian_interval_likelihood, lower_bound
from .autoregressive import PASSES, ExactAutoregressive, JointAutoregressive, JointAutoregressiveNet
from .base import SIGMA_MIN, Quantizer, factorized_forward, hard_rounding, has_prefix
from .coding import Rate
from .coding import ExactHyperprior, hyper_parts
from .hyperprior import Hyperprior, MeanScaleHyperpriorNet, ScaleHyperpriorNet
from .hyperprior import match as hyperprior_match
from .layers import LowerBound
from .priors import EntropyBottleneckVbr


DEFAULT_LEVEL = 2  # CompressAI's lambda 0.0067: lrcodec's default rate (quality 3)


# ================================================================ the networks
# CompressAI 1.2.8's ScaleHyperpriorVbr, MeanScaleHyperpriorVbr and
# JointAutoregressiveHierarchicalPriorsVbr, float part: its tensor names, module tree and
# initialisation (its classes' method resolution order too), built from lrcodec's layers
# (``layers``, ``priors``).


class ScaleHyperpriorVbrNet(ScaleHyperpriorNet):
    """``bmshj2018-hyperprior-vbr``: the fixed-rate network plus the levels' gains (``Gain``,
    the inverse y steps), their lambdas, the restoration-offset MLP ``QuantABCD`` (scaled sigma,
    gain) -> offset and, with ``vr_entbttlnck``, z's step MLP ``gayn2zqstep`` (1 / gain) ->
    step, bounded below by ``lower_bound_zqstep``, over a variable-step entropy bottleneck."""

    def __init__(self, N: int, M: int, vr_entbttlnck: bool = False, **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        self.lmbda = [0.0018, 0.0035, 0.0067, 0.0130, 0.025, 0.0483, 0.0932, 0.18]
        self.levels = len(self.lmbda)
        self.rate_level = DEFAULT_LEVEL  # the level lrcodec codes at (not in the state dict)
        self.Gain = nn.Parameter(torch.tensor([0.10000, 0.13944, 0.19293, 0.26874, 0.37268, 0.51801, 0.71957, 1.00000]),
                                 requires_grad=True)
        self.QuantABCD = nn.Sequential(nn.Linear(1 + 1, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 1))
        self.no_quantoffset = False
        self.vr_entbttlnck = vr_entbttlnck
        if self.vr_entbttlnck:
            self.entropy_bottleneck = EntropyBottleneckVbr(N)
            self.gayn2zqstep = nn.Sequential(nn.Linear(1, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(),
                                             nn.Linear(10, 1), nn.Softplus())
            self.lower_bound_zqstep = LowerBound(0.5)


class MeanScaleHyperpriorVbrNet(ScaleHyperpriorVbrNet, MeanScaleHyperpriorNet):
    """``mbt2018-mean-vbr``."""

    def __init__(self, N: int = 192, M: int = 320, vr_entbttlnck: bool = False, **kwargs):
        super().__init__(N, M, vr_entbttlnck=vr_entbttlnck, **kwargs)


class JointAutoregressiveVbrNet(ScaleHyperpriorVbrNet, JointAutoregressiveNet):
    """``mbt2018-vbr``: z at unit steps; ``scale_to_context`` (gain) -> what the level adds to
    the masked context's output (2M)."""

    def __init__(self, N: int = 192, M: int = 320, **kwargs):
        super().__init__(N, M, vr_entbttlnck=False, **kwargs)
        self.ste_recursive = True
        self.scl2ctx = True
        self.scale_to_context = nn.Linear(1, 2 * M)


# ================================================================ (end of the networks)

def exact_mlp(sequential, x: np.ndarray) -> np.ndarray:
    """A Sequential of Linear, ReLU and Softplus layers on rows of x, in float64 with every sum
    written out term by term (``lrcodec.format.exact``'s rules): the same result on every machine."""
    for layer in sequential:
        if isinstance(layer, torch.nn.Linear):
            w, b = as_f64(layer.weight), as_f64(layer.bias)
            out = x[:, 0:1] * w[None, :, 0]
            for j in range(1, w.shape[1]):
                out = out + x[:, j : j + 1] * w[None, :, j]
            x = out + b[None, :]
        elif isinstance(layer, torch.nn.ReLU):
            x = np.maximum(x, 0.0)
        elif isinstance(layer, torch.nn.Softplus):
            x = softplus(x)
        else:
            raise LrcodecError(f"no exact form for {type(layer).__name__} in a variable-rate MLP")
    return x


class VariableRate:
    """What the variable-rate families add to their fixed-rate ones (module docstring)."""

    portable = False  # a rate level's steps and offsets run with torch only

    def rate_levels(self, net) -> int:
        return len(net.Gain)

    def level(self, net) -> int:
        return net.rate_level

    def set_level(self, net, level: int) -> None:
        if not 0 <= level < self.rate_levels(net):
            raise LrcodecError(f"{self.archs[0]}: quality must be 1-{self.rate_levels(net)}, got {level + 1}")
        net.rate_level = level

    def identity(self, net) -> bytes:
        return f"rate level {self.level(net)}".encode()

    def lmbda(self, net) -> float:
        """The lambda CompressAI trained this rate level for."""
        return float(net.lmbda[self.level(net)])

    def gain(self, net) -> float:
        return abs(float(net.Gain[self.level(net)].detach()))

    def z_step(self, net) -> float:
        if not getattr(net, "vr_entbttlnck", False):
            return 1.0
        qs = exact_mlp(net.gayn2zqstep, np.array([[1.0 / self.gain(net)]]))[0, 0]
        return max(float(net.lower_bound_zqstep.bound), float(qs))

    def restoration_offsets(self, net, sigma: np.ndarray) -> np.ndarray:
        """o = -QuantABCD(sigma, g) at each of the coder's (scaled) sigmas, in multiples of 2**-16."""
        x = np.stack([np.asarray(sigma, np.float64), np.full(len(sigma), self.gain(net))], 1)
        return np.rint(-exact_mlp(net.QuantABCD, x)[:, 0] * 2.0**ACT_BITS) * 2.0**-ACT_BITS

    def rate(self, net, sigma_table: np.ndarray) -> Rate:
        """This level's steps and offsets, for the exact model."""
        return Rate(self.z_step(net), self.gain(net), self.restoration_offsets(net, sigma_table))

    # -------------------------------------------------------------- the float graph

    def z_forward(self, net, z, quantize: Quantizer) -> tuple:
        return factorized_forward(net.entropy_bottleneck, z, quantize, self.z_step(net))

    def step(self, net, quantize: Quantizer, sigma_min: float = SIGMA_MIN):
        """``step(y, sigma, mu, channels) -> (y_hat, bits)`` at this rate: y quantized in steps of
        1/g around mu, scored under N(0, (g sigma)^2), restored with QuantABCD's offsets. No
        gradient reaches sigma through the offsets: with it, training shrinks sigma to its
        floor to tune the offsets (tiny networks trained to 1.3 bpp instead of 0.2)."""
        g = self.gain(net)

        def step(y, sigma, mu, channels):
            q = quantize((y - mu) * g, channels)
            bits = -torch.log2(gaussian_interval_likelihood(q.lower, q.upper, sigma * g, sigma_min))
            offset = self.offsets(net, sigma * g, sigma_min)
            nonzero = (torch.round(q.value) != 0).detach()
            return (q.value + torch.sign(q.value).detach() * offset * nonzero) / g + mu, bits

        return step

    def offsets(self, net, scaled_sigma, sigma_min: float = SIGMA_MIN):
        """The float graph's restoration offsets, -QuantABCD(g sigma, g) (sigma detached: a
        restoration rule, not part of the rate model)."""
        stdev = lower_bound(scaled_sigma, sigma_min).detach()
        return -net.QuantABCD(torch.stack([stdev, torch.full_like(stdev, self.gain(net))], -1))[..., 0]

    def float_params(self, net, hyper, y_hat) -> tuple:
        """The float graph's (sigma, mu) of y given h_s's output (and y_hat, for a context)."""
        return self.split(hyper)

    def hard_bits(self, net, latents, sigma_min: float = SIGMA_MIN):
        """As ``Family.hard_bits``, for the symbols in steps of 1/g (y_hat holds the offsets)."""
        bits = gaussian_bits(latents.y_symbols.double() + latents.y_offset.double(), latents.sigma, sigma_min)
        _, bits_z = self.z_forward(net, latents.z_hat.to(next(net.parameters()).device), hard_rounding)
        return bits.float() + bits_z.sum().cpu()

    def float_bits(self, net, y_hat, z_hat, sigma_min: float = SIGMA_MIN) -> tuple:
        """As ``Family.float_bits``: each y_hat scored as the symbol k whose restoration
        k + sign(k) o, under the float graph's own (sigma, mu, o), is nearest to it."""
        z_hat, bits_z = self.z_forward(net, z_hat, hard_rounding)
        sigma, mu = self.float_params(net, self.hyper_synthesis(net, z_hat).float(), y_hat)
        g = self.gain(net)
        v, o = (y_hat - mu) * g, self.offsets(net, sigma * g, sigma_min)
        candidates = torch.stack([torch.zeros_like(v), torch.round(v - o).clamp_min(1), torch.round(v + o).clamp_max(-1)])
        miss = (candidates + torch.sign(candidates) * o - v).abs()
        k = candidates.gather(0, miss.argmin(0, keepdim=True))[0]
        bits = -torch.log2(gaussian_interval_likelihood(k - 0.5, k + 0.5, sigma * g, sigma_min))
        return bits.sum(), bits_z.sum()


class HyperpriorVbr(VariableRate, Hyperprior):
    """bmshj2018-hyperprior-vbr and mbt2018-mean-vbr."""

    def __init__(self, mean_scale: bool):
        super().__init__(mean_scale)
        self.archs = ("mean-scale-vbr",) if mean_scale else ("scale-vbr",)

    def build(self, arch: str, N: int, M: int, shape: dict | None = None):
        cls = MeanScaleHyperpriorVbrNet if self.mean_scale else ScaleHyperpriorVbrNet
        return cls(N, M, vr_entbttlnck=(shape or {}).get("z_step_network", True))

    def shape_of(self, state: dict, M: int) -> dict:
        """Whether z has its own step (CompressAI's ``vr_entbttlnck``, on in its zoo weights)."""
        return {"z_step_network": any(k.startswith("gayn2zqstep.") for k in state)}

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        sigma, mu = self.split(hyper)
        return self.step(net, quantize, sigma_min)(y, sigma, mu, slice(None))

    def exact(self, net, sigma_table):
        return ExactHyperprior(hyper_parts(net), sigma_table, self.mean_scale, self.rate(net, sigma_table))


class JointAutoregressiveVbr(VariableRate, JointAutoregressive):
    """mbt2018-vbr: z at unit steps (CompressAI builds it without a z step network)."""

    def __init__(self):
        super().__init__("joint-autoregressive-vbr", JointAutoregressiveVbrNet)

    def context_shift(self, net):
        """scale_to_context(g): what this rate adds to the masked context's output, (2M,)."""
        linear = net.scale_to_context
        return linear.weight.detach()[:, 0].double() * self.gain(net) + linear.bias.detach().double()

    def float_params(self, net, hyper, y_hat) -> tuple:
        return self.params(net, hyper, y_hat)

    def params(self, net, hyper, y_hat) -> tuple:
        ctx = net.context_prediction(y_hat) + self.context_shift(net).to(y_hat).reshape(1, -1, 1, 1)
        return net.entropy_parameters(torch.cat([hyper, ctx.to(hyper.dtype)], 1)).float().chunk(2, 1)

    def y_forward(self, net, y, hyper, quantize: Quantizer, sigma_min: float = SIGMA_MIN) -> tuple:
        """As ``JointAutoregressive.y_forward``, at this rate: the first pass reads y quantized
        around 0, each later one the restored y_hat of the pass before."""
        step, g = self.step(net, quantize, sigma_min), self.gain(net)
        y_hat = quantize(y * g, slice(None)).value / g
        for _ in range(PASSES):
            sigma, mu = self.params(net, hyper, y_hat)
            y_hat, bits = step(y, sigma, mu, slice(None))
        return y_hat, bits

    def exact(self, net, sigma_table):
        context = copy.deepcopy(net.context_prediction)
        with torch.no_grad():  # float64 sums of float32 values, rounded once: the same everywhere
            context.bias.copy_((context.bias.double() + self.context_shift(net)).float())
        return ExactAutoregressive(net, sigma_table, context, self.rate(net, sigma_table))


def match(state: dict) -> str | None:
    """The restoration offsets' network (``QuantABCD``) on a fixed-rate model's keys."""
    if not has_prefix(state, "QuantABCD."):
        return None
    if has_prefix(state, "scale_to_context."):
        return "joint-autoregressive-vbr"
    base = hyperprior_match(state)
    return None if base is None else f"{base}-vbr"


SCALE_VBR = HyperpriorVbr(mean_scale=False)
MEAN_SCALE_VBR = HyperpriorVbr(mean_scale=True)
JOINT_AUTOREGRESSIVE_VBR = JointAutoregressiveVbr()
