"""Tile-by-tile evaluation (lrcodec.format.tiling): tiles partition the grid, the tile-size rule, and
a tiled integer network equal to the untiled one exactly.

The codec's float transforms tiled against untiled (within the float bound) and the tiny
model's tiled h_s are checked in tests/test_portability.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrcodec.format import exact
from lrcodec.format.tiling import tile_side, tiled, tiles

nn = torch.nn


@pytest.mark.parametrize("h, w, tile, halo", [(1, 1, 4, 2), (7, 9, 4, 2), (16, 16, 8, 3), (5, 13, 16, 4), (12, 8, 3, 0)])
def test_tiles_partition_the_grid_in_raster_order(h, w, tile, halo):
    """Each position is in exactly one tile's own box; each crop is that box widened by the
    halo and clipped to the grid; tiles come row by row."""
    covered = np.zeros((h, w), int)
    boxes = list(tiles(h, w, tile, halo))
    for (top, bottom, left, right), (t0, t1, l0, l1) in boxes:
        covered[top:bottom, left:right] += 1
        assert top % tile == 0 and left % tile == 0 and bottom - top <= tile and right - left <= tile
        assert (t0, t1, l0, l1) == (max(top - halo, 0), min(bottom + halo, h), max(left - halo, 0), min(right + halo, w))
    assert np.all(covered == 1)
    owns = [own[:3:2] for own, _ in boxes]
    assert owns == sorted(owns) and len(boxes) == -(-h // tile) * -(-w // tile)


def test_tile_side_is_the_whole_grid_up_to_the_limit():
    """One tile (its side the grid's longer side) while h * w <= whole, else ``tile``."""
    assert tile_side(30, 40, 8, 1200) == 40
    assert tile_side(30, 40, 8, 1199) == 8
    assert tile_side(40, 30, 8, 10**6) == 40
    assert tile_side(1, 1, 8, 0) == 8
    h, w = 30, 40
    assert len(list(tiles(h, w, tile_side(h, w, 8, 1200), 5))) == 1


def _network(kind: str):
    torch.manual_seed(0)
    if kind == "up":  # a hyper-synthesis: up 4
        net = nn.Sequential(nn.ConvTranspose2d(6, 5, 5, 2, 2, 1), nn.LeakyReLU(0.01),
                            nn.ConvTranspose2d(5, 5, 5, 2, 2, 1), nn.ReLU(), nn.Conv2d(5, 8, 3, 1, 1))
        return exact.IntegerNetwork.of(net), dict(up=4), 6
    if kind == "same":  # a context network: size-keeping
        net = nn.Sequential(nn.Conv2d(6, 8, 5, padding=2), nn.LeakyReLU(), nn.Conv2d(8, 4, 3, padding=1))
        return exact.IntegerNetwork.of(net), {}, 6
    net = nn.Sequential(nn.Conv2d(3, 6, 5, 2, 2), nn.ReLU(), nn.Conv2d(6, 6, 5, 2, 2))  # down 4
    return exact.IntegerNetwork.of(net), dict(down=4), 3


@pytest.mark.parametrize("kind", ["up", "same", "down"])
@pytest.mark.parametrize("tile", [4, 8, 12])
def test_a_tiled_integer_network_is_the_untiled_one_exactly(kind, tile):
    """With a halo of the network's radius (rounded up to a multiple of ``down``), every tile
    size gives the very integers of the whole evaluation, including tiles cut by the border;
    ``on_tile`` hears of each tile in turn."""
    network, scale, channels = _network(kind)
    down = scale.get("down", 1)
    g = torch.Generator().manual_seed(1)
    size = (1, channels, 20, 28) if down > 1 else (1, channels, 10, 14)
    x = torch.round(torch.randn(size, generator=g, dtype=torch.float64) * 3 * 2.0**exact.ACT_BITS)
    whole = network(x.clone())
    halo = -(-network.radius // down) * down
    calls = []
    out = tiled(lambda t: network(t.clone()), x, tile=tile, halo=halo, on_tile=lambda d, n: calls.append((d, n)), **scale)
    assert out.shape == whole.shape and np.array_equal(out, whole)
    n = len(list(tiles(*size[2:], tile, halo)))
    assert calls == [(i, n) for i in range(1, n + 1)] and n > 1


def test_a_halo_below_the_radius_is_not_enough():
    """The halo is what makes tiles agree: without it tile borders differ (so the test above
    can fail)."""
    network, scale, channels = _network("same")
    x = torch.round(torch.randn(1, channels, 10, 14, dtype=torch.float64) * 3 * 2.0**exact.ACT_BITS)
    assert not np.array_equal(tiled(network, x, tile=4, halo=network.radius - 1), network(x.clone()))


def test_a_tiled_float_convolution_is_the_untiled_one_within_rounding():
    torch.manual_seed(2)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    x = torch.randn(1, 3, 17, 23)
    with torch.no_grad():
        whole, parts = conv(x), tiled(conv, x, tile=5, halo=2)
    assert torch.allclose(parts, whole, rtol=0, atol=1e-5)
