"""Running a convolutional transform tile by tile, so that memory stays bounded whatever the
image size. Each tile is computed with a halo of context wider than the transform's
receptive field and cropped, so the result equals the untiled one (exactly for the integer
network, up to float summation order for the float transforms)."""

from __future__ import annotations

from typing import Callable


def tiled(fn: Callable, x, *, up: int = 1, down: int = 1, tile: int, halo: int,
          on_tile: Callable[[int, int], None] | None = None):
    """fn(x) for a (1, C, H, W) x whose output has H*up/down rows and W*up/down columns.
    ``tile`` and ``halo`` are in input positions and must be multiples of ``down``;
    ``on_tile(done, total)`` is called after each tile."""
    H, W = x.shape[-2:]
    total = -(-H // tile) * -(-W // tile)
    if total == 1:
        out = fn(x)
        if on_tile:
            on_tile(1, 1)
        return out
    out, done = None, 0
    for top in range(0, H, tile):
        for left in range(0, W, tile):
            t0, l0 = max(top - halo, 0), max(left - halo, 0)
            t1, l1 = min(top + tile + halo, H), min(left + tile + halo, W)
            part = fn(x[..., t0:t1, l0:l1])
            if out is None:
                out = part.new_empty((*part.shape[:2], H * up // down, W * up // down))
            rows, cols = (min(top + tile, H) - top) * up // down, (min(left + tile, W) - left) * up // down
            r, c = (top - t0) * up // down, (left - l0) * up // down
            R, C = top * up // down, left * up // down
            out[..., R : R + rows, C : C + cols] = part[..., r : r + rows, c : c + cols]
            done += 1
            if on_tile:
                on_tile(done, total)
    return out
