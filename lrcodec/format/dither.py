"""Universal quantization's shared dither: every element's level from a counter-based hash of
(seed, stream, shape), so that encoder and decoder on any machine draw the same, and the
offset each level adds (``docs/algorithms.md`` section 2).
"""

from __future__ import annotations

import math

import numpy as np

UQ_LEVELS = 15  # tensorflow-compression's num_noise_levels

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays: a fixed, platform-independent hash."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def uq_levels(seed: int, shape: tuple[int, ...], stream: int = 0) -> np.ndarray:
    """Dither level (0..14) of every element in C order, keyed by (seed, stream, shape) with a
    counter-based hash, so encoder and decoder on any machine draw the same levels (never
    torch's global generator). ``stream`` separates tensors of the same shape (0 y, 1 z)."""
    key = np.array([seed & 0xFFFFFFFF, stream, *shape], dtype=np.uint64)
    k = np.uint64(0)
    for part in key:
        k = _splitmix64(np.array([k ^ part], dtype=np.uint64))[0]
    n = int(np.prod(shape)) if shape else 1
    with np.errstate(over="ignore"):
        h = _splitmix64(np.arange(n, dtype=np.uint64) ^ k)
    return ((h >> np.uint64(32)) % np.uint64(UQ_LEVELS)).astype(np.int64).reshape(shape)


def uq_offsets(alpha: int = 0) -> np.ndarray:
    """The value each dither level adds to the rounded symbol: u_l = (l+1)/16 - 1/2, or with
    soft-mean reconstruction r_alpha(u_l), rounded to 2^-20 so that both sides agree exactly.

    Why r_alpha(u_l): UQ in the soft-rounded domain codes k = round(s_alpha(v) - u) and decodes
    r_alpha(k + u). Since s_alpha(x + 1) = s_alpha(x) + 1, that k equals round(v - r_alpha(u))
    and r_alpha(k + u) = k + r_alpha(u): the same coder with the offset r_alpha(u) in place of u.
    """
    u = (np.arange(UQ_LEVELS) + 1) / (UQ_LEVELS + 1) - 0.5
    if alpha:
        # r_alpha(u) = s_alpha^-1(u - 1/2) + 1/2 = atanh(2 tanh(alpha/2) u) / alpha for |u| < 1/2.
        u = np.arctanh(2 * math.tanh(alpha / 2) * u) / alpha
    return np.round(u * 2**20) / 2**20


def uq_dither(seed: int, shape: tuple[int, ...], stream: int = 0, alpha: int = 0) -> "torch.Tensor":
    """The per-element offset (see :func:`uq_offsets`) for a tensor of this shape."""
    import torch  # the float graph's: the coder's dither is ``uq_levels`` and ``uq_offsets``

    return torch.from_numpy(uq_offsets(alpha).astype(np.float32)[uq_levels(seed, shape, stream)])
