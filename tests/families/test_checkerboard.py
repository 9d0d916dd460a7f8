"""The two-pass checkerboard models (``lrcodec.families.checkerboard``): Cheng2020's anchor
with a checkerboard context and ELIC, as CompressAI gives it and with Chandelier's changes."""

from __future__ import annotations

import pytest
import torch

from family_checks import FamilyChecks, assert_positions_are_whole, tiny
from lrcodec.families import checkerboard


class TestCheckerboard(FamilyChecks):
    ARCHS = ("cheng2020-anchor-checkerboard", "elic2022-official", "elic2022-chandelier")


def test_channel_groups_are_read_off_the_spatial_contexts():
    state = {f"latent_codec.y.latent_codec.y{k}.context_prediction.weight": torch.zeros(2 * g, g, 5, 5)
             for k, g in enumerate([4, 4, 8, 16])}
    assert checkerboard.channel_groups(state) == [4, 4, 8, 16]


@pytest.mark.parametrize("arch", ["cheng2020-anchor-checkerboard", "elic2022-chandelier"])
def test_contexts_at_chosen_positions_are_the_whole_convolutions_there(arch):
    exact = tiny(arch).exact
    assert_positions_are_whole(exact.spatial[-1], exact.parameters[-1])


def test_chandelier_reads_the_first_and_latest_group_and_puts_means_first():
    """ELIC as CompressAI gives it: each channel context reads every earlier group, parameters
    are (sigma, mu); Chandelier's: the first and the latest group, parameters (mu, sigma)."""
    groups = ["g0", "g1", "g2", "g3"]
    official = checkerboard.ELIC2022_OFFICIAL.layout(tiny("elic2022-official").net)
    chandelier = checkerboard.ELIC2022_CHANDELIER.layout(tiny("elic2022-chandelier").net)
    assert official.groups == chandelier.groups == [4, 4, 8, 16] and official.bounds == [0, 4, 8, 16, 32]
    assert official.earlier(3, groups) == ["g0", "g1", "g2"] and chandelier.earlier(3, groups) == ["g0", "g2"]
    assert chandelier.earlier(1, groups) == ["g0"]
    params = torch.arange(4.0).reshape(1, 4, 1, 1)
    sigma, mu = official.chunk(params)
    assert sigma.flatten().tolist() == [0.0, 1.0] and mu.flatten().tolist() == [2.0, 3.0]
    sigma, mu = chandelier.chunk(params)
    assert sigma.flatten().tolist() == [2.0, 3.0] and mu.flatten().tolist() == [0.0, 1.0]
