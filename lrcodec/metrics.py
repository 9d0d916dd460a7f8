"""PSNR from a mean squared error, the one definition training and refinement share."""

from __future__ import annotations

import math


def psnr_of(mse: float) -> float:
    """PSNR in dB of an MSE on [0, 1] samples (capped at 120 dB for a perfect match)."""
    return 10 * math.log10(1 / max(mse, 1e-12))
