"""The factorized priors (``lrcodec.families.factorized``): no z, y coded as z is elsewhere."""

from __future__ import annotations

from conftest import photo_like
from family_checks import FamilyChecks, tiny
from lrcodec import codec


class TestFactorized(FamilyChecks):
    ARCHS = ("factorized", "factorized-relu")


def test_the_z_payload_is_empty():
    result = codec.encode_image(photo_like(64, 48, seed=4), tiny("factorized"))
    assert result.latents.z_symbols.numel() == 0 and result.header.z_length == 0
