"""The exact entropy-parameter path: everything that decides a symbol's probability, computed
so that it is bit-identical on every machine (docs/format.md, "Why every machine decodes").

Two kinds of arithmetic are used, and nothing else:

* **Integers** (fixed point) for the hyper-synthesis h_s, after Ballé, Johnston & Minnen,
  "Integer networks for data compression with latent-variable models" (ICLR 2019): weights
  are rounded to integers at load time, activations carry ``ACT_BITS`` fraction bits and are
  saturated to +-``ACT_LIMIT``, and each layer accumulates exact integer sums. The sums are
  held in float64 so that PyTorch's BLAS-backed convolutions can compute them, and every
  layer's weights are scaled so that any partial sum stays below 2**50 in magnitude: all
  products and partial sums are then integers that float64 represents exactly, so the
  result is the integer result whatever the summation order, SIMD width, FMA use, thread
  count or BLAS (``tests/test_portability.py`` compares it with an int64 evaluation).
* **IEEE-754 basic operations** (+ - * /, floor, rint, ldexp, frexp, comparisons) on float64
  in a fixed order, for the learned CDF of z and the Gaussian of y. IEEE 754 requires these
  to be correctly rounded, so a conforming machine cannot give another result. exp, log and
  erfc are therefore written here from those operations instead of calling the platform's
  libm (whose last bits differ between glibc, macOS, numpy's SIMD loops and GPUs). Sums are
  written out term by term, never left to ``np.sum`` or a matmul.

Probabilities leave this module as integer frequencies (``quantize_pmf``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

ACT_BITS = 16  # fraction bits of every fixed-point activation (and of sigma and mu)
ACT_LIMIT = 256  # activations saturate at +-ACT_LIMIT (real units; trained models stay below 100)
SLOPE_BITS = 24  # the leaky ReLU slope as an integer out of 2**SLOPE_BITS
SUM_LIMIT = 2.0**50  # any partial sum stays below this; float64 is exact to 2**53
WEIGHT_BITS_MAX = 24  # weight fraction bits, lowered per layer until SUM_LIMIT holds
PROB_BITS = 24  # probabilities are integer frequencies out of about 2**24

# ---------------------------------------------------------------- elementary functions

_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: _LN2_HI has 32 significant
_LN2_LO = 1.90821492927058770002e-10  # bits, so n * _LN2_HI is exact for |n| < 2**21
_INV_LN2 = 1.44269504088896338700e00
_EXP_COEFFS = [1.0 / math.factorial(k) for k in range(14)]  # Taylor to r**13: error < 1e-17
_LOG_COEFFS = [1.0 / k for k in range(1, 26, 2)]  # 2 atanh(s) = 2 (s + s**3/3 + ...)
_INV_SQRT_PI = 0.56418958354775628695
_INV_SQRT2 = 0.70710678118654752440


def exp(x: np.ndarray) -> np.ndarray:
    """e**x: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite), Taylor series of e**r, times 2**n."""
    x = np.clip(np.asarray(x, dtype=np.float64), -745.0, 709.0)
    n = np.rint(x * _INV_LN2)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = np.full_like(r, _EXP_COEFFS[-1])
    for c in reversed(_EXP_COEFFS[:-1]):
        p = p * r + c
    return np.ldexp(p, n.astype(np.int64))


def log(x: np.ndarray) -> np.ndarray:
    """ln x for x > 0: x = m 2**e with m in [1/sqrt2, sqrt2), ln m = 2 atanh((m-1)/(m+1))."""
    m, e = np.frexp(np.asarray(x, dtype=np.float64))
    low = m < _INV_SQRT2
    m = np.where(low, m * 2.0, m)
    e = (e - low).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = np.full_like(s, _LOG_COEFFS[-1])
    for c in reversed(_LOG_COEFFS[:-1]):
        p = p * s2 + c
    return e * _LN2_HI + (e * _LN2_LO + 2.0 * s * p)


def tanh(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = exp(-2.0 * np.abs(x))
    return np.sign(x) * ((1.0 - e) / (1.0 + e))


def sigmoid(x: np.ndarray) -> np.ndarray:
    e = exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0.0) + log(1.0 + exp(-np.abs(x)))


def erfc(x: np.ndarray) -> np.ndarray:
    """Complementary error function, relative error below 1e-10 (3.7e-11 at most, measured
    against scipy, for 1.5 <= x < 3; far below the tables' 2**-24 resolution).

    |x| < 3: 1 - erf with erf(x) = 2/sqrt(pi) e**-x**2 sum_n (2x**2)**n x / (2n+1)!! (all
    terms positive, no cancellation); |x| >= 3: the continued fraction
    erfc(x) = e**-x**2 / sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), 100 levels."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    result = np.empty_like(a)
    near = a < 3.0
    small, big = a[near], a[~near]
    term, total, two_x2 = small.copy(), small.copy(), 2.0 * small * small
    for n in range(1, 90):
        term = term * two_x2 / (2 * n + 1)
        total = total + term
    result[near] = 1.0 - 2.0 * _INV_SQRT_PI * exp(-small * small) * total
    f = big.copy()
    for k in range(100, 0, -1):
        f = big + (0.5 * k) / f
    result[~near] = exp(-big * big) * _INV_SQRT_PI / f
    return np.where(x < 0, 2.0 - result, result)


def upper_tail(t: np.ndarray) -> np.ndarray:
    """P(T > t) for a standard normal T."""
    return 0.5 * erfc(np.asarray(t, dtype=np.float64) * _INV_SQRT2)


def quantize_pmf(p: np.ndarray) -> np.ndarray:
    """Integer frequencies (as float64) out of 2**PROB_BITS, at least 1 so every symbol codes."""
    return np.maximum(np.rint(p * 2.0**PROB_BITS), 1.0)


# ---------------------------------------------------------------- y: discretized Gaussian


def gaussian_pmf(sigmas: np.ndarray, offsets: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Probabilities of k in lo..hi under N(-offset, sigma**2) discretized to unit bins,
    shape (len(sigmas), hi-lo+1): P(k) = Q((k-1/2+o)/s) - Q((k+1/2+o)/s), evaluated on the
    tail nearer the bin so that small masses keep their precision."""
    k = np.arange(lo, hi + 1, dtype=np.float64)[None, :]
    s, o = np.asarray(sigmas, np.float64)[:, None], np.asarray(offsets, np.float64)[:, None]
    a, b = (k - 0.5 + o) / s, (k + 0.5 + o) / s
    right = (a + b) > 0
    return np.where(right, upper_tail(a) - upper_tail(b), upper_tail(-b) - upper_tail(-a))


# ---------------------------------------------------------------- z: the learned factorized CDF


@dataclass
class FactorizedPrior:
    """CompressAI's EntropyBottleneck CDF (Ballé et al. 2018, appendix 6.1) in float64, with
    its parameter transforms (softplus of the matrices, tanh of the factors) done once."""

    layers: list  # (matrix (C, out, in), bias (C, out), factor (C, out) or None)
    medians: np.ndarray  # (C,) float64

    @classmethod
    def of(cls, entropy_bottleneck) -> "FactorizedPrior":
        """The prior of an entropy bottleneck (``lrcodec.families.priors``, either naming)."""
        layers = [(softplus(as_f64(matrix)), as_f64(bias)[..., 0],
                   None if factor is None else tanh(as_f64(factor))[..., 0])
                  for matrix, bias, factor in entropy_bottleneck.layers()]
        return cls(layers, as_f64(entropy_bottleneck.quantiles[:, 0, 1]))

    def logits(self, t: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """Logit of the CDF at t, shape (R, n), row r under channel ``channels[r]``; sums are
        written out term by term."""
        x = t[:, None, :]
        for matrix, bias, factor in self.layers:
            matrix, bias = matrix[channels], bias[channels]
            out = matrix[:, :, 0:1] * x[:, 0:1, :]
            for j in range(1, matrix.shape[2]):
                out = out + matrix[:, :, j : j + 1] * x[:, j : j + 1, :]
            out = out + bias[:, :, None]
            if factor is not None:
                out = out + factor[channels][:, :, None] * tanh(out)
            x = out
        return x[:, 0, :]

    def pmf(self, channels: np.ndarray, offsets: np.ndarray, lo: int, hi: int, step: float = 1.0) -> np.ndarray:
        """P(k) = c(m + (k + o + 1/2) s) - c(m + (k + o - 1/2) s) for k in lo..hi, s the
        quantization step, one row per (channel, offset) pair; shape (len(channels), hi-lo+1)."""
        edges = (np.arange(lo, hi + 2, dtype=np.float64) - 0.5) * step
        t = (self.medians[channels] + np.asarray(offsets, np.float64) * step)[:, None] + edges[None, :]
        logits = self.logits(t, channels)
        lower, upper = logits[:, :-1], logits[:, 1:]
        flip = np.where(lower + upper > 0, -1.0, 1.0)  # use the tail nearer the bin
        return np.abs(sigmoid(flip * upper) - sigmoid(flip * lower))


def as_f64(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


# ---------------------------------------------------------------- h_s in integers


@dataclass
class IntegerLayer:
    kind: str  # "conv", "deconv" or "shuffle" (a pixel shuffle: a permutation, exact as it is)
    weight: "torch.Tensor | None"  # float64 holding integers: round(w * 2**weight_bits)
    bias: "torch.Tensor | None"  # float64 integers: round(b * 2**(weight_bits + ACT_BITS)) + 2**(weight_bits - 1),
    # the second term making the final floor a round-half-up
    weight_bits: int
    stride: int  # the upscale factor for "shuffle"
    padding: int
    output_padding: int
    activation: str  # "none", "relu" or "leaky"
    slope: int = 0  # leaky ReLU slope as an integer out of 2**SLOPE_BITS

    def input_radius(self, radius: int) -> int:
        """How far (in input positions) the outputs within ``radius`` of one output reach."""
        if self.kind == "shuffle":
            return -(-radius // self.stride)
        k = self.weight.shape[-1]
        reach = max(self.padding, k - 1 - self.padding)
        if self.kind == "conv":
            return radius * self.stride + reach
        return -(-(radius + reach) // self.stride)


def leaf_modules(module) -> list:
    """A transform's layers in order, nested Sequentials flattened (CompressAI's
    ``subpel_conv3x3`` is a Sequential of a convolution and a pixel shuffle)."""
    import torch

    if isinstance(module, torch.nn.Sequential):
        return [leaf for child in module for leaf in leaf_modules(child)]
    return [module]


class IntegerNetwork:
    """A trained stack of convolutions, pixel shuffles and (leaky) ReLUs as an integer network
    (module docstring): h_s, and the context networks of the families. Built from the float
    weights by rounding, which is exact arithmetic, so a zoo or checkpoint model converted at
    load time gives the same integers on every machine."""

    def __init__(self, h_s):
        import torch

        layers: list[IntegerLayer] = []
        modules = leaf_modules(h_s)
        for i, module in enumerate(modules):
            nxt = modules[i + 1] if i + 1 < len(modules) else None
            activation, slope = "none", 0
            if isinstance(nxt, torch.nn.LeakyReLU):
                activation, slope = "leaky", int(round(nxt.negative_slope * 2**SLOPE_BITS))
            elif isinstance(nxt, torch.nn.ReLU):
                activation = "relu"
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                layers.append(_integer_layer(module, isinstance(module, torch.nn.ConvTranspose2d), activation, slope))
            elif isinstance(module, torch.nn.PixelShuffle):
                if activation != "none":  # elementwise, it commutes with the shuffle: apply it before
                    if not layers:
                        raise ValueError("no integer form for an activation after a leading pixel shuffle")
                    layers[-1].activation, layers[-1].slope, activation, slope = activation, slope, "none", 0
                layers.append(IntegerLayer("shuffle", None, None, 0, module.upscale_factor, 0, 0, activation, slope))
            elif not isinstance(module, (torch.nn.ReLU, torch.nn.LeakyReLU)):
                raise ValueError(f"no integer form for {type(module).__name__}")
        self.layers = layers

    @property
    def radius(self) -> int:
        """The receptive field's radius in input positions: the halo a tile needs."""
        radius = 0
        for layer in reversed(self.layers):
            radius = layer.input_radius(radius)
        return radius

    def __call__(self, z_fixed: "torch.Tensor") -> "torch.Tensor":
        """The network of a fixed-point input (float64 integers, ACT_BITS fraction bits) -> fixed-point output."""
        x = _saturate(z_fixed)
        for layer in self.layers:
            x = _run_layer(layer, x)
        return x

    @cached_property
    def matrices(self) -> list:
        """Each layer's weights as a (in, out) matrix, for a stack of 1x1 convolutions."""
        if any(layer.kind != "conv" or layer.weight.shape[-2:] != (1, 1) for layer in self.layers):
            raise ValueError("not a stack of 1x1 convolutions")
        return [layer.weight[:, :, 0, 0].T.contiguous() for layer in self.layers]

    def on_vectors(self, x: "torch.Tensor") -> "torch.Tensor":
        """A stack of 1x1 convolutions on (P, C) fixed-point vectors -> (P, C_out)."""
        x = _saturate(x)
        for layer, matrix in zip(self.layers, self.matrices):
            x = _dense(layer, x, matrix)
        return x

    def reference(self, z_fixed: "torch.Tensor") -> "torch.Tensor":
        """The same network in int64 arithmetic (slower): the definition the float64 path must equal."""
        x = _saturate(z_fixed).long()
        for layer in self.layers:
            x = _run_layer(layer, x)
        return x.double()


def _integer_layer(module, deconv: bool, activation: str, slope: int) -> IntegerLayer:
    import torch

    w = module.weight.detach().cpu().double()
    if getattr(module, "mask", None) is not None:  # a masked convolution computes with its masked weights
        w = w * module.mask.cpu().double()
    b = module.bias.detach().cpu().double()
    in_limit = ACT_LIMIT * 2**ACT_BITS
    # Sum of |weights| feeding one output: conv weight is [out, in, k, k], deconv [in, out, k, k].
    l1_dims = (1, 2, 3) if not deconv else (0, 2, 3)
    for bits in range(WEIGHT_BITS_MAX, -1, -1):
        wi = torch.round(w * 2.0**bits)
        bi = torch.round(b * 2.0 ** (bits + ACT_BITS))
        worst = in_limit * wi.abs().sum(l1_dims).max().item() + bi.abs().max().item() + 2.0**bits
        if worst < SUM_LIMIT:
            break
    else:  # pragma: no cover - needs weights of magnitude ~2**22
        raise ValueError("weights too large for an integer network")
    half = 2.0 ** (bits - 1) if bits else 0.0
    return IntegerLayer("deconv" if deconv else "conv", wi, bi + half, bits, module.stride[0], module.padding[0],
                        module.output_padding[0] if deconv else 0, activation, slope)


def _run_layer(layer: IntegerLayer, x):
    """One layer: exact integer convolution plus bias, floor((acc + 2**(b-1)) / 2**b), saturation
    to +-ACT_LIMIT, activation. float64 holding integers (in place, fast) or int64 (reference)."""
    import torch
    import torch.nn.functional as F

    if layer.kind == "shuffle":  # an activation before it commutes with it: it is applied there
        return F.pixel_shuffle(x, layer.stride)
    integer = not x.is_floating_point()
    w, b = (layer.weight.long(), layer.bias.long()) if integer else (layer.weight, layer.bias)
    if layer.kind == "deconv":
        acc = F.conv_transpose2d(x, w, b, stride=layer.stride, padding=layer.padding,
                                 output_padding=layer.output_padding)
    else:
        acc = F.conv2d(x, w, b, stride=layer.stride, padding=layer.padding)
    return _requantize(layer, acc)


def _dense(layer: IntegerLayer, x, matrix):
    """A layer whose kernel covers its whole input, on P flattened float64 inputs (P, K) with
    the weights as a (K, out) ``matrix``: one matrix product where PyTorch's float64 convolution
    runs one matrix-vector product per input (an autoregressive model's few positions per
    step). The same integers as ``_run_layer``: exact sums do not depend on their order."""
    import torch

    return _requantize(layer, torch.addmm(layer.bias, x, matrix))


class PositionConvolution:
    """A one-layer network (a stride-1 convolution padded to keep its size) at chosen positions
    only, from the taps its weights use: an autoregressive context at a wavefront's few
    positions, a checkerboard's at its second pass's half, the taps a mask leaves (zeroed at
    load time) and nothing else. The same integers as the whole convolution at those
    positions: zero padding is zero input, and exact sums do not depend on their order."""

    def __init__(self, network: IntegerNetwork):
        (layer,) = network.layers
        out, channels, k, _ = layer.weight.shape
        if layer.kind != "conv" or layer.stride != 1 or 2 * layer.padding != k - 1:
            raise ValueError("not a size-keeping stride-1 convolution")
        taps = np.flatnonzero(layer.weight.abs().sum((0, 1)).numpy().ravel())
        self.layer, self.offsets = layer, (taps // k - k // 2, taps % k - k // 2)
        self.matrix = layer.weight.reshape(out, channels, -1)[:, :, taps].reshape(out, -1).T.contiguous()

    def __call__(self, x: "torch.Tensor", rows: np.ndarray, cols: np.ndarray) -> "torch.Tensor":
        """The output at positions (rows, cols) of a fixed-point (1, C, h, w) input, (P, out)."""
        import torch

        _, _, h, w = x.shape
        ii, jj = rows[:, None] + self.offsets[0], cols[:, None] + self.offsets[1]
        inside = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
        patches = x.numpy()[0][:, np.clip(ii, 0, h - 1), np.clip(jj, 0, w - 1)] * inside  # (C, P, taps)
        return _dense(self.layer, _saturate(torch.from_numpy(patches.transpose(1, 0, 2).reshape(len(rows), -1))), self.matrix)


def _requantize(layer: IntegerLayer, acc):
    """An accumulator (weights times inputs plus bias) back to activations."""
    import torch

    if not acc.is_floating_point():
        out = _saturate(torch.div(acc, 2**layer.weight_bits, rounding_mode="floor"))
        if layer.activation == "leaky":
            out = torch.where(out < 0, torch.div(out * layer.slope, 2**SLOPE_BITS, rounding_mode="floor"), out)
    else:
        # Multiplying by a power of two and by slope / 2**SLOPE_BITS are exact here: the
        # results are integers or dyadic values far inside float64's 53 bits.
        out = _saturate(acc.mul_(2.0**-layer.weight_bits).floor_())
        if layer.activation == "leaky":  # x >= floor(x c) exactly when x >= 0, since 0 < c < 1
            out = torch.maximum(out, (out * (layer.slope * 2.0**-SLOPE_BITS)).floor_())
    if layer.activation == "relu":
        out = out.clamp_min(0)
    return out


def _saturate(x):
    limit = ACT_LIMIT * 2**ACT_BITS
    return x.clamp(-limit, limit)
