"""Universal quantization's shared dither (``lrcodec.format.dither``): deterministic, keyed,
uniform over its levels, pinned values, and the soft-mean offsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrcodec.format.dither import UQ_LEVELS, uq_dither, uq_offsets
from lrcodec.learn.surrogates import soft_round, soft_round_conditional_mean


def test_uq_dither_is_deterministic_keyed_and_uniform():
    a = uq_dither(5, (2, 3, 40, 40))
    assert torch.equal(a, uq_dither(5, (2, 3, 40, 40)))
    assert not torch.equal(a, uq_dither(6, (2, 3, 40, 40)))
    assert not torch.equal(a[0, 0, 0, :10], uq_dither(5, (2, 3, 40, 40), stream=1)[0, 0, 0, :10])
    levels = np.unique(a.numpy())
    assert len(levels) == UQ_LEVELS
    assert np.allclose(levels, (np.arange(15) + 1) / 16 - 0.5)
    counts = np.bincount(np.rint((a.numpy().ravel() + 0.5) * 16 - 1).astype(int))
    assert counts.min() > 0.8 * counts.mean()
    # Values pinned so that a change of generator (which would break old files) is noticed.
    assert uq_dither(0, (4,)).tolist() == pytest.approx(GOLDEN_DITHER)


GOLDEN_DITHER = [-0.125, 0.3125, -0.125, -0.3125]


def test_soft_mean_offsets_are_r_alpha_of_the_dither():
    """UQ in the soft-rounded domain is UQ with offset r_alpha(u): r_alpha(k + u) = k + r_alpha(u)."""
    u = torch.from_numpy(uq_offsets(0)).float()
    for alpha in (1, 4, 16):
        offsets = torch.from_numpy(uq_offsets(alpha)).float()
        assert torch.allclose(offsets, soft_round_conditional_mean(u, float(alpha)), atol=1e-6)
        for k in (-3.0, 0.0, 5.0):
            assert torch.allclose(soft_round_conditional_mean(k + u, float(alpha)), k + offsets, atol=1e-5)
        # k = round(s_alpha(v) - u)  <=>  k = round(v - r_alpha(u)), for v away from the boundaries.
        v = torch.linspace(-3, 3, 2001)[:, None]
        a = torch.round(soft_round(v, float(alpha)) - u)
        b = torch.round(v - offsets)
        assert (a != b).float().mean() < 0.002
    # Large alpha approaches hard rounding; offsets stay on the 2^-20 grid.
    assert np.abs(uq_offsets(64)).max() < 0.06
    assert np.array_equal(uq_offsets(16) * 2**20, np.round(uq_offsets(16) * 2**20))
