"""PSNR, the one definition that training, refinement, evaluation and the benchmarks share."""

from __future__ import annotations

import math


PSNR_MAX = 120.0  # dB: a perfect match, finite so that JSON results and means stay numbers


def psnr_of(mse: float) -> float:
    """PSNR in dB of an MSE on [0, 1] samples (``PSNR_MAX`` for a perfect match)."""
    return 10 * math.log10(1 / max(mse, 10 ** (-PSNR_MAX / 10)))
