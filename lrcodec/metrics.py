"""PSNR, bits per pixel and the R-D loss: the one definition of each that training,
refinement, evaluation and the benchmarks share."""

from __future__ import annotations

import math


# What the float synthesis may change between machines, kernels, thread counts and runtimes
# (README, "What a file needs to decode elsewhere"): a pixel by at most PIXEL_LEVELS levels, and
# fewer than PIXEL_FRACTION of them at all. Files' symbols and y_hat are exact everywhere.
PIXEL_LEVELS, PIXEL_FRACTION = 1, 1e-3

PSNR_MAX = 120.0  # dB: a perfect match, finite so that JSON results and means stay numbers


def psnr_of(mse: float) -> float:
    """PSNR in dB of an MSE on [0, 1] samples (``PSNR_MAX`` for a perfect match)."""
    return 10 * math.log10(1 / max(mse, 10 ** (-PSNR_MAX / 10)))


def bits_per_pixel(bits, pixels: int):
    """Bits (a number or a tensor) over the image's real, unpadded pixels."""
    return bits / pixels


def rd_loss(lmbda: float, mse, bpp):
    """lambda * 255^2 * MSE + bpp, MSE on [0, 1] samples: CompressAI's trade-off, which its
    zoo's lambdas are given in (numbers or tensors)."""
    return lmbda * 255**2 * mse + bpp
