"""The checkerboard's two passes (He et al. 2021), the part that the checkerboard, ELIC and
channel-context families share: a group of y's channels is coded in two units, its anchors
(positions with i + j even) and then the other half, whose parameters may read the anchors'
y_hat. One definition for the float graph (``two_pass``, teacher-forced exactly as the coder
decodes) and for the coder (``checkerboard_units``, ``anchors_of``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .coding import YUnit


def anchor_mask(height: int, width: int, device=None) -> torch.Tensor:
    """1 where (i + j) is even (the checkerboard's first pass), shape (1, 1, h, w)."""
    i = torch.arange(height, device=device).view(-1, 1)
    j = torch.arange(width, device=device).view(1, -1)
    return ((i + j) % 2 == 0).float().view(1, 1, height, width)


def checkerboard_units(bounds: list[int], height: int, width: int) -> list[YUnit]:
    """Two units per group of channels [bounds[s], bounds[s + 1]): its anchors, then the rest."""
    anchors = anchor_mask(height, width).bool().numpy()
    return [YUnit(lo, hi, s, second, ~anchors if second else anchors)
            for s, (lo, hi) in enumerate(zip(bounds, bounds[1:])) for second in (False, True)]


def anchors_of(unit: YUnit, y_hat_fixed: np.ndarray) -> np.ndarray | None:
    """The decoded anchors of a second-pass unit's channels (zero elsewhere), fixed point, or
    None for a first-pass unit, which reads no y_hat of its own group."""
    if not unit.second_pass:
        return None
    return y_hat_fixed[:, unit.lo : unit.hi] * ~unit.mask


def two_pass(y: torch.Tensor, params: Callable, step: Callable, channels: slice, first: torch.Tensor) -> tuple:
    """One group of y in two passes: (sigma, mu) = ``params(None, first)`` for the anchors,
    ``params(anchors' y_hat, first)`` for the others (``first``: ``anchor_mask`` of y's size,
    made once for all of a latent's groups); ``step(y, sigma, mu, channels)`` -> (y_hat, bits).
    Returns (y_hat, bits, sigma, mu), each the anchors' where the mask is 1 and the others'
    elsewhere."""
    sigma1, mu1 = params(None, first)
    y_hat1, bits1 = step(y, sigma1, mu1, channels)
    sigma2, mu2 = params(y_hat1 * first, first)
    y_hat2, bits2 = step(y, sigma2, mu2, channels)
    return tuple(torch.lerp(second, anchor, first)
                 for anchor, second in ((y_hat1, y_hat2), (bits1, bits2), (sigma1, sigma2), (mu1, mu2)))
