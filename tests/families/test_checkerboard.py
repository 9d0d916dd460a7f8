"""The two-pass checkerboard models (``lrcodec.families.checkerboard``): Cheng2020's anchor
with a checkerboard context and ELIC, as CompressAI gives it and with Chandelier's changes."""

from __future__ import annotations

from family_checks import FamilyChecks
from lrcodec.families import checkerboard


class TestCheckerboard(FamilyChecks):
    ARCHS = ("cheng2020-anchor-checkerboard", "elic2022-official", "elic2022-chandelier")


def test_channel_groups_are_read_off_the_spatial_contexts():
    import torch

    state = {f"latent_codec.y.latent_codec.y{k}.context_prediction.weight": torch.zeros(2 * g, g, 5, 5)
             for k, g in enumerate([4, 4, 8, 16])}
    assert checkerboard.channel_groups(state) == [4, 4, 8, 16]
