"""Running a convolutional transform tile by tile, so that memory stays bounded whatever the
image size. Each tile is computed with a halo of context wider than the transform's
receptive field and cropped, so the result equals the untiled one (exactly for the integer
network, up to float summation order for the float transforms)."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

Box = tuple[int, int, int, int]  # (top, bottom, left, right)


def tiles(h: int, w: int, tile: int, halo: int) -> Iterator[tuple[Box, Box]]:
    """(each tile's own positions, its crop with the halo, clipped to the grid): the tiles
    partition the h x w grid in raster order; a crop starts at a multiple of gcd(tile, halo)."""
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            own = (top, min(top + tile, h), left, min(left + tile, w))
            yield own, (max(top - halo, 0), min(own[1] + halo, h), max(left - halo, 0), min(own[3] + halo, w))


def tile_side(h: int, w: int, tile: int, whole: int) -> int:
    """The tile side for an h x w grid: the whole grid as one tile up to ``whole`` positions
    (no halo to recompute), else ``tile``."""
    return max(h, w) if h * w <= whole else tile


def tiled(fn: Callable, x, *, up: int = 1, down: int = 1, tile: int, halo: int,
          on_tile: Callable[[int, int], None] | None = None):
    """fn(x) for a (1, C, H, W) x (a tensor or an array) whose output has H*up/down rows and W*up/down columns.
    ``tile`` and ``halo`` are in input positions and must be multiples of ``down``;
    ``on_tile(done, total)`` is called after each tile."""
    grid = list(tiles(*x.shape[-2:], tile, halo))
    out = None
    for done, ((top, bottom, left, right), (t0, t1, l0, l1)) in enumerate(grid, 1):
        part = fn(x[..., t0:t1, l0:l1])
        if len(grid) == 1:
            out = part
        else:
            if out is None:
                shape = (*part.shape[:2], x.shape[-2] * up // down, x.shape[-1] * up // down)
                out = part.new_empty(shape) if hasattr(part, "new_empty") else np.empty(shape, part.dtype)
            R, C, r, c = top * up // down, left * up // down, (top - t0) * up // down, (left - l0) * up // down
            rows, cols = (bottom - top) * up // down, (right - left) * up // down
            out[..., R : R + rows, C : C + cols] = part[..., r : r + rows, c : c + cols]
        if on_tile:
            on_tile(done, len(grid))
    return out
