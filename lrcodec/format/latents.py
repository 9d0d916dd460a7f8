"""What the coder sends and what the decoder rebuilds from it, shared by every format's
decoder (``lrcodec.codec``, ``lrcodec.format.format1``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import entropy
from .dither import uq_levels, uq_offsets

STRIDE = 64  # images are padded to a multiple of this: y is 1/16 of the image, z 1/64


@dataclass
class QuantizedLatents:
    """What the coder sends (integer symbols) and what the decoder rebuilds from them: tensors,
    or numpy arrays where a ``lrcodec.runtime.RuntimeModel`` coded them (no torch)."""

    y_symbols: "torch.Tensor"  # int32, (1, M, h, w): round(y - mu - u)
    z_symbols: "torch.Tensor"  # int32, (1, N, hz, wz): round(z - m - u') (no channels: the factorized family)
    y_hat: "torch.Tensor"  # float32: k + mu + u, identical on every machine
    z_hat: "torch.Tensor"
    sigma_index: np.ndarray  # int32, (1, M, h, w): each element's table (an index into the sigma table;
    # the channel for the factorized family)
    mu: "torch.Tensor"  # float64, exact
    y_offset: "torch.Tensor"  # u (or r_alpha(u)) added back to y; zeros without UQ
    sigma_table: np.ndarray | None  # the model's table that sigma_index points into (None: factorized)

    @property
    def sigma(self) -> "torch.Tensor":
        """The coder's sigma of each y element (the table value at its index)."""
        import torch

        if self.sigma_table is None:
            raise ValueError("a factorized model's latents have no sigma")
        return torch.from_numpy(self.sigma_table[self.sigma_index])


@dataclass
class Dither:
    """The per-element offset u of universal quantization as (level index, offset table):
    u = offsets[levels]. Without UQ there is one level, offset 0."""

    levels: np.ndarray  # int64, the tensor's shape
    offsets: np.ndarray  # float64 per level (multiples of 2^-20)

    @classmethod
    def of(cls, shape, stream: int, uq: bool, seed: int, soft_alpha: int = 0) -> "Dither":
        if not uq:  # one level: a read-only view, no memory (12 MP: 2 x 37 MB saved)
            return cls(np.broadcast_to(np.zeros((), np.int64), tuple(shape)), np.zeros(1))
        return cls(uq_levels(seed, tuple(shape), stream), uq_offsets(soft_alpha))

    @cached_property
    def values(self) -> np.ndarray:
        if len(self.offsets) == 1:
            return np.broadcast_to(self.offsets[0], self.levels.shape)
        return self.offsets[self.levels]

    def groups(self, index: np.ndarray) -> tuple[entropy.Groups, np.ndarray, np.ndarray]:
        """Coding groups keyed by (index, level), with each present group's index and offset."""
        L = len(self.offsets)
        groups = entropy.Groups.of(index.astype(np.int64) * L + self.levels)
        return groups, groups.keys // L, self.offsets[groups.keys % L]


def dithers(y_shape, z_shape, uq: bool, seed: int, soft_alpha: int) -> tuple[Dither, Dither]:
    return Dither.of(y_shape, 0, uq, seed, soft_alpha), Dither.of(z_shape, 1, uq, seed, soft_alpha)


def channel_index(shape) -> np.ndarray:
    return np.broadcast_to(np.arange(shape[1]).reshape(1, -1, 1, 1), shape)


def latent_shapes(model, width: int, height: int) -> tuple[tuple, tuple]:
    """Shapes of y and z for an image of width x height pixels (padded to STRIDE)."""
    return model.latent_shapes(height + (-height) % STRIDE, width + (-width) % STRIDE)
