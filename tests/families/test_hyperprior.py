"""The scale and mean-scale hyperpriors (``lrcodec.families.hyperprior``)."""

from __future__ import annotations

import numpy as np

from family_checks import FamilyChecks, tiny
from lrcodec.families.coding import YUnit


class TestHyperprior(FamilyChecks):
    ARCHS = ("mean-scale", "scale")
    REFINES_HERE = False


def test_sigma_and_mu_are_read_off_h_s():
    """The mean-scale model's h_s gives sigma then mu; the scale model's sigma alone, mu 0."""
    hyper = np.arange(2 * 24 * 2 * 3, dtype=np.float64).reshape(1, 48, 2, 3)
    sigma, mu = tiny("mean-scale").exact.unit_params(YUnit(4, 10), hyper)
    assert np.array_equal(sigma, hyper[:, 4:10]) and np.array_equal(mu, hyper[:, 28:34])
    sigma, mu = tiny("scale").exact.unit_params(YUnit(4, 10), hyper[:, :24])
    assert np.array_equal(sigma, hyper[:, 4:10]) and not mu.any()
