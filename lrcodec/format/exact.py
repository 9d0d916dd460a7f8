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
        return cls.of_layers(entropy_bottleneck.layers(), entropy_bottleneck.quantiles)

    @classmethod
    def of_layers(cls, layers, quantiles) -> "FactorizedPrior":
        """The prior of a bottleneck's (matrix, bias, factor or None) layers and its quantiles
        (tensors or arrays, as stored)."""
        layers = [(softplus(as_f64(matrix)), as_f64(bias)[..., 0],
                   None if factor is None else tanh(as_f64(factor))[..., 0])
                  for matrix, bias, factor in layers]
        return cls(layers, as_f64(quantiles)[:, 0, 1])

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
    """float64 numpy of a tensor or array (exact: every float32 or float16 is a float64)."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().double().numpy()
    return np.asarray(t, dtype=np.float64)


# ---------------------------------------------------------------- h_s in integers


@dataclass
class IntegerLayer:
    kind: str  # "conv", "deconv" or "shuffle" (a pixel shuffle: a permutation, exact as it is)
    weight: np.ndarray | None  # float64 holding integers: round(w * 2**weight_bits)
    bias: np.ndarray | None  # float64 integers: round(b * 2**(weight_bits + ACT_BITS)) + 2**(weight_bits - 1),
    # the second term making the final floor a round-half-up
    weight_bits: int
    stride: int  # the upscale factor for "shuffle"
    padding: int
    output_padding: int
    activation: str  # "none", "relu" or "leaky"
    slope: int = 0  # leaky ReLU slope as an integer out of 2**SLOPE_BITS
    name: str = ""  # the float module's name in its network's state dict (``spec``)

    def input_radius(self, radius: int) -> int:
        """How far (in input positions) the outputs within ``radius`` of one output reach."""
        if self.kind == "shuffle":
            return -(-radius // self.stride)
        k = self.weight.shape[-1]
        reach = max(self.padding, k - 1 - self.padding)
        if self.kind == "conv":
            return radius * self.stride + reach
        return -(-(radius + reach) // self.stride)

    def spec(self) -> dict:
        """The layer without its weights (JSON): what ``integer_layer`` needs besides them."""
        return {"kind": self.kind, "name": self.name, "stride": self.stride, "padding": self.padding,
                "output_padding": self.output_padding, "activation": self.activation, "slope": self.slope}


def leaf_modules(module, prefix: str = "") -> list:
    """A transform's layers in order, nested Sequentials flattened (CompressAI's
    ``subpel_conv3x3`` is a Sequential of a convolution and a pixel shuffle), as (name, module)
    pairs, names under ``prefix``."""
    import torch

    if isinstance(module, torch.nn.Sequential):
        return [leaf for name, child in module.named_children()
                for leaf in leaf_modules(child, f"{prefix}.{name}" if prefix else name)]
    return [(prefix, module)]


class IntegerNetwork:
    """A trained stack of convolutions, pixel shuffles and (leaky) ReLUs as an integer network
    (module docstring): h_s, and the context networks of the families. Built from the float
    weights by rounding, which is exact arithmetic, so a zoo or checkpoint model converted at
    load time gives the same integers on every machine: from its torch modules (``of``) or,
    without torch, from its ``spec`` and the weights as arrays (``of_spec``)."""

    def __init__(self, layers: list[IntegerLayer]):
        self.layers = layers

    @classmethod
    def of(cls, module, prefix: str = "") -> "IntegerNetwork":
        """The integer network of a float transform (``prefix``: its name in the network)."""
        import torch

        layers: list[IntegerLayer] = []
        modules = leaf_modules(module, prefix)
        for i, (name, module) in enumerate(modules):
            nxt = modules[i + 1][1] if i + 1 < len(modules) else None
            activation, slope = "none", 0
            if isinstance(nxt, torch.nn.LeakyReLU):
                activation, slope = "leaky", int(round(nxt.negative_slope * 2**SLOPE_BITS))
            elif isinstance(nxt, torch.nn.ReLU):
                activation = "relu"
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                deconv = isinstance(module, torch.nn.ConvTranspose2d)
                square = (len(set(module.kernel_size)) == 1 and len(set(module.stride)) == 1
                          and len(set(module.padding)) == 1 and len(set(module.output_padding)) == 1)
                if not square or module.groups != 1 or set(module.dilation) != {1} or module.padding_mode != "zeros":
                    raise ValueError(f"no integer form for {module} (square kernels, strides and paddings, "
                                     "zero padding, no groups or dilation)")
                mask = getattr(module, "mask", None)
                layers.append(integer_layer(dict(
                    kind="deconv" if deconv else "conv", name=name, stride=module.stride[0], padding=module.padding[0],
                    output_padding=module.output_padding[0] if deconv else 0, activation=activation, slope=slope),
                    module.weight, module.bias, mask))
            elif isinstance(module, torch.nn.PixelShuffle):
                if activation != "none":  # elementwise, it commutes with the shuffle: apply it before
                    if not layers:
                        raise ValueError("no integer form for an activation after a leading pixel shuffle")
                    layers[-1].activation, layers[-1].slope, activation, slope = activation, slope, "none", 0
                layers.append(IntegerLayer("shuffle", None, None, 0, module.upscale_factor, 0, 0, activation, slope, name))
            elif not isinstance(module, (torch.nn.ReLU, torch.nn.LeakyReLU)):
                raise ValueError(f"no integer form for {type(module).__name__}")
        return cls(layers)

    def spec(self) -> list[dict]:
        """The network without its weights (JSON), for ``of_spec``."""
        return [layer.spec() for layer in self.layers]

    @classmethod
    def of_spec(cls, spec: list[dict], weights: dict) -> "IntegerNetwork":
        """The integer network of a ``spec`` with its float weights looked up by name (arrays):
        the same integers as ``of`` on the modules they came from."""
        layers = []
        for s in spec:
            if s["kind"] == "shuffle":
                layers.append(IntegerLayer("shuffle", None, None, 0, s["stride"], 0, 0, s["activation"], s["slope"], s["name"]))
            else:
                n = s["name"]
                layers.append(integer_layer(s, weights[f"{n}.weight"], weights[f"{n}.bias"], weights.get(f"{n}.mask")))
        return cls(layers)

    @property
    def radius(self) -> int:
        """The receptive field's radius in input positions: the halo a tile needs."""
        radius = 0
        for layer in reversed(self.layers):
            radius = layer.input_radius(radius)
        return radius

    def __call__(self, z_fixed: np.ndarray) -> np.ndarray:
        """The network of a fixed-point input (float64 integers, ACT_BITS fraction bits, (1, C,
        h, w)) -> fixed-point output."""
        x = _saturate(np.asarray(z_fixed, dtype=np.float64))
        for layer in self.layers:
            x = _run_layer(layer, x)
        return x

    @cached_property
    def matrices(self) -> list:
        """Each layer's weights as a (in, out) matrix, for a stack of 1x1 convolutions."""
        if any(layer.kind != "conv" or layer.weight.shape[-2:] != (1, 1) for layer in self.layers):
            raise ValueError("not a stack of 1x1 convolutions")
        return [np.ascontiguousarray(layer.weight[:, :, 0, 0].T) for layer in self.layers]

    def on_vectors(self, x: np.ndarray) -> np.ndarray:
        """A stack of 1x1 convolutions on (P, C) fixed-point vectors -> (P, C_out)."""
        x = _saturate(np.asarray(x, dtype=np.float64))
        for layer, matrix in zip(self.layers, self.matrices):
            x = _dense(layer, x, matrix)
        return x

    def reference(self, z_fixed: np.ndarray) -> np.ndarray:
        """The same network in int64 arithmetic (slower): the definition the float64 path must equal."""
        x = _saturate(np.asarray(z_fixed, dtype=np.float64)).astype(np.int64)
        for layer in self.layers:
            x = _run_layer(layer, x)
        return x.astype(np.float64)


def integer_layer(spec: dict, weight, bias, mask=None) -> IntegerLayer:
    """A convolution's integer layer: its float weights (times its ``mask``: a masked
    convolution computes with its masked weights) rounded at the most fraction bits that keep
    every partial sum below SUM_LIMIT."""
    w, b = as_f64(weight), as_f64(bias)
    if mask is not None:
        w = w * as_f64(mask)
    in_limit = ACT_LIMIT * 2**ACT_BITS
    # Sum of |weights| feeding one output: conv weight is [out, in, k, k], deconv [in, out, k, k].
    l1_dims = (1, 2, 3) if spec["kind"] == "conv" else (0, 2, 3)
    for bits in range(WEIGHT_BITS_MAX, -1, -1):
        wi = np.rint(w * 2.0**bits)
        bi = np.rint(b * 2.0 ** (bits + ACT_BITS))
        worst = in_limit * np.abs(wi).sum(l1_dims).max() + np.abs(bi).max() + 2.0**bits
        if worst < SUM_LIMIT:
            break
    else:  # pragma: no cover - needs weights of magnitude ~2**22
        raise ValueError("weights too large for an integer network")
    half = 2.0 ** (bits - 1) if bits else 0.0
    return IntegerLayer(spec["kind"], wi, bi + half, bits, spec["stride"], spec["padding"], spec["output_padding"],
                        spec["activation"], spec["slope"], spec.get("name", ""))


def _run_layer(layer: IntegerLayer, x: np.ndarray) -> np.ndarray:
    """One layer: exact integer convolution plus bias, floor((acc + 2**(b-1)) / 2**b), saturation
    to +-ACT_LIMIT, activation. float64 holding integers (BLAS matrix products, fast) or int64
    (the reference)."""
    if layer.kind == "shuffle":  # an activation before it commutes with it: it is applied there
        return pixel_shuffle(x, layer.stride)
    if len(x) > 1:  # a batch, one input at a time
        return np.concatenate([_run_layer(layer, x[n : n + 1]) for n in range(len(x))])
    w, b = (layer.weight.astype(np.int64), layer.bias.astype(np.int64)) if x.dtype == np.int64 else (layer.weight, layer.bias)
    if layer.kind == "deconv":
        acc = conv_transpose2d(x, w, b, layer.stride, layer.padding, layer.output_padding)
    else:
        acc = conv2d(x, w, b, layer.stride, layer.padding)
    return _requantize(layer, acc)


# The convolutions below are sums of products written as one matrix product per kernel tap:
# with integers (or any values whose partial sums float64 holds exactly) the result does not
# depend on how BLAS orders, blocks or vectorises them.


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """PyTorch's ``conv2d`` of a (1, C, H, W) input with (O, C, k, k) weights, (O,) bias."""
    _, C, H, W = x.shape
    O, _, k, _ = w.shape
    xp = np.pad(x[0], ((0, 0), (padding, padding), (padding, padding)))
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    acc = np.broadcast_to(b.reshape(O, 1), (O, Ho * Wo)).copy()
    taps = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # numpy hands contiguous matrices to BLAS
    for i in range(k):
        for j in range(k):
            tap = taps[i, j]
            if tap.any():  # a masked convolution's zeroed taps add nothing
                part = xp[:, i : i + (Ho - 1) * stride + 1 : stride, j : j + (Wo - 1) * stride + 1 : stride]
                acc += tap @ part.reshape(C, Ho * Wo)
    return acc.reshape(1, O, Ho, Wo)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int,
                     output_padding: int) -> np.ndarray:
    """PyTorch's ``conv_transpose2d`` of a (1, C, H, W) input with (C, O, k, k) weights: each
    tap's products scattered onto the strided output grid, then cropped by the padding."""
    _, C, H, W = x.shape
    _, O, k, _ = w.shape
    Hf, Wf = (H - 1) * stride + k + output_padding, (W - 1) * stride + k + output_padding
    full = np.zeros((O, Hf, Wf), dtype=x.dtype)
    flat = np.ascontiguousarray(x[0].reshape(C, H * W))
    taps = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # (k, k, O, C), contiguous for BLAS
    for i in range(k):
        for j in range(k):
            full[:, i : i + (H - 1) * stride + 1 : stride, j : j + (W - 1) * stride + 1 : stride] += (
                taps[i, j] @ flat).reshape(O, H, W)
    Ho, Wo = Hf - 2 * padding, Wf - 2 * padding
    return (full[:, padding : padding + Ho, padding : padding + Wo] + b.reshape(O, 1, 1))[None]


def pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """PyTorch's ``pixel_shuffle``: (1, C r^2, H, W) -> (1, C, H r, W r)."""
    n, c, h, w = x.shape
    return x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (r * r), h * r, w * r)


def _dense(layer: IntegerLayer, x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A layer whose kernel covers its whole input, on P flattened float64 inputs (P, K) with
    the weights as a (K, out) ``matrix``: one matrix product (an autoregressive model's few
    positions per step). The same integers as ``_run_layer``: exact sums do not depend on
    their order."""
    return _requantize(layer, x @ matrix + layer.bias)


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
        taps = np.flatnonzero(np.abs(layer.weight).sum((0, 1)).ravel())
        self.layer, self.offsets = layer, (taps // k - k // 2, taps % k - k // 2)
        self.matrix = np.ascontiguousarray(layer.weight.reshape(out, channels, -1)[:, :, taps].reshape(out, -1).T)

    def __call__(self, x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The output at positions (rows, cols) of a fixed-point (1, C, h, w) input, (P, out)."""
        x = np.asarray(x, dtype=np.float64)
        _, _, h, w = x.shape
        ii, jj = rows[:, None] + self.offsets[0], cols[:, None] + self.offsets[1]
        inside = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
        patches = x[0][:, np.clip(ii, 0, h - 1), np.clip(jj, 0, w - 1)] * inside  # (C, P, taps)
        return _dense(self.layer, _saturate(patches.transpose(1, 0, 2).reshape(len(rows), -1)), self.matrix)


def _requantize(layer: IntegerLayer, acc: np.ndarray) -> np.ndarray:
    """An accumulator (weights times inputs plus bias) back to activations."""
    if acc.dtype == np.int64:
        out = _saturate(np.floor_divide(acc, 2**layer.weight_bits))
        if layer.activation == "leaky":
            out = np.where(out < 0, np.floor_divide(out * layer.slope, 2**SLOPE_BITS), out)
    else:
        # Multiplying by a power of two and by slope / 2**SLOPE_BITS are exact here: the
        # results are integers or dyadic values far inside float64's 53 bits.
        out = _saturate(np.floor(acc * 2.0**-layer.weight_bits))
        if layer.activation == "leaky":  # x >= floor(x c) exactly when x >= 0, since 0 < c < 1
            out = np.maximum(out, np.floor(out * (layer.slope * 2.0**-SLOPE_BITS)))
    if layer.activation == "relu":
        out = np.maximum(out, 0)
    return out


def _saturate(x: np.ndarray) -> np.ndarray:
    limit = ACT_LIMIT * 2**ACT_BITS
    return np.clip(x, -limit, limit)
