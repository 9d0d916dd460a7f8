"""The checkerboard's two passes (``lrcodec.families.two_pass``): the anchor mask, the coder's
units and the anchors a second pass reads, and the float graph's two passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrcodec.families.base import gaussian_step, hard_rounding
from lrcodec.families.two_pass import anchor_mask, anchors_of, checkerboard_units, two_pass


@pytest.mark.parametrize("h, w", [(1, 1), (3, 4), (5, 5), (4, 7)])
def test_anchors_are_the_positions_of_even_parity(h, w):
    mask = anchor_mask(h, w)
    assert mask.shape == (1, 1, h, w) and mask.dtype == torch.float32
    expected = [[1.0 if (i + j) % 2 == 0 else 0.0 for j in range(w)] for i in range(h)]
    assert mask[0, 0].tolist() == expected  # the top-left position is an anchor
    assert int(mask.sum()) == (h * w + 1) // 2


def test_two_units_per_group_anchors_first():
    """Each group of channels is coded as its anchors, then the rest: every position of the
    group exactly once, the groups in order, each unit's channels its group's."""
    bounds, h, w = [0, 3, 5, 9], 5, 6
    units = checkerboard_units(bounds, h, w)
    assert len(units) == 6
    anchors = anchor_mask(h, w).bool().numpy()
    for s, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        first, second = units[2 * s], units[2 * s + 1]
        assert (first.lo, first.hi, first.slice_index, first.second_pass) == (lo, hi, s, False)
        assert (second.lo, second.hi, second.slice_index, second.second_pass) == (lo, hi, s, True)
        assert np.array_equal(first.mask, anchors)
        assert first.mask.shape == second.mask.shape == (1, 1, h, w)
        assert np.array_equal(first.mask.astype(int) + second.mask.astype(int), np.ones((1, 1, h, w), int))
    y = np.arange(9 * h * w, dtype=np.float64).reshape(1, 9, h, w)
    taken = np.concatenate([u.take(y) for u in units])
    assert np.array_equal(np.sort(taken), y.ravel())  # every element once


def test_a_second_pass_reads_its_groups_anchors_only():
    units = checkerboard_units([0, 2, 5], 4, 5)
    torch.manual_seed(0)
    y_hat_fixed = torch.randint(-2**20, 2**20, (1, 5, 4, 5)).double()
    assert anchors_of(units[0], y_hat_fixed) is None and anchors_of(units[2], y_hat_fixed) is None
    mask = anchor_mask(4, 5).bool()
    for unit in (units[1], units[3]):
        got = anchors_of(unit, y_hat_fixed)
        own = y_hat_fixed[:, unit.lo : unit.hi]
        assert got.shape == own.shape
        assert torch.equal(got, torch.where(mask, own, torch.zeros_like(own)))


def _step(y, sigma, mu, channels):
    """Rounding around mu; bits that tell the passes apart."""
    y_hat = torch.round(y - mu) + mu
    return y_hat, (y_hat - y).abs() + sigma


def test_two_pass_feeds_the_anchors_to_the_second_pass_and_merges_by_the_mask():
    torch.manual_seed(1)
    y = torch.randn(1, 3, 5, 6) * 4
    calls = []

    def params(anchors, mask):
        calls.append((None if anchors is None else anchors.clone(), mask.clone()))
        if anchors is None:
            return torch.full_like(y, 1.0), torch.full_like(y, 0.25)
        return torch.full_like(y, 2.0) + anchors.abs(), anchors * 0.5 - 0.125

    y_hat, bits, sigma, mu = two_pass(y, params, _step, slice(0, 3), anchor_mask(5, 6))
    first = anchor_mask(5, 6)
    assert len(calls) == 2 and calls[0][0] is None
    assert torch.equal(calls[0][1], first) and torch.equal(calls[1][1], first)
    y_hat1, bits1 = _step(y, torch.full_like(y, 1.0), torch.full_like(y, 0.25), None)
    assert torch.equal(calls[1][0], y_hat1 * first)  # the anchors' y_hat, zero elsewhere
    sigma2, mu2 = params(y_hat1 * first, first)
    y_hat2, bits2 = _step(y, sigma2, mu2, None)
    on = first.bool().expand_as(y)
    assert torch.equal(y_hat, torch.where(on, y_hat1, y_hat2))
    assert torch.equal(bits, torch.where(on, bits1, bits2))
    assert torch.equal(sigma, torch.where(on, torch.full_like(y, 1.0), sigma2))
    assert torch.equal(mu, torch.where(on, torch.full_like(y, 0.25), mu2))
    assert not torch.equal(y_hat, y_hat1) and not torch.equal(y_hat, y_hat2)  # both passes show


def test_two_pass_without_a_context_is_one_pass():
    """Parameters that ignore the anchors give what one pass over all positions gives."""
    torch.manual_seed(2)
    y = torch.randn(1, 4, 6, 5) * 3
    sigma0, mu0 = torch.rand(1, 4, 6, 5) + 0.2, torch.randn(1, 4, 6, 5)
    step = gaussian_step(hard_rounding)
    y_hat, bits, sigma, mu = two_pass(y, lambda anchors, mask: (sigma0, mu0), step, slice(None), anchor_mask(6, 5))
    y_hat1, bits1 = step(y, sigma0, mu0, slice(None))
    assert torch.equal(y_hat, y_hat1) and torch.equal(bits, bits1)
    assert torch.equal(sigma, sigma0) and torch.equal(mu, mu0)
