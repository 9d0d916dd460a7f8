"""What the coder sends and the decoder rebuilds (lrcodec.format.latents): dithers that are fixed
functions of (seed, shape, stream), their coding groups, and latent shapes.

The dither generator itself (levels, pinned values, uniformity, soft-mean offsets) is checked
in tests/format/test_dither.py; round trips of whole files in tests/test_codec.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import photo_like

from lrcodec import codec
from lrcodec.format.latents import STRIDE, Dither, QuantizedLatents, channel_index, dithers, latent_shapes
from lrcodec.format.dither import UQ_LEVELS, uq_dither, uq_offsets

SHAPE = (1, 6, 5, 7)


def test_without_uq_the_dither_is_one_zero_level_and_no_memory():
    d = Dither.of(SHAPE, 0, uq=False, seed=123)
    assert d.levels.shape == SHAPE and d.offsets.tolist() == [0.0]
    assert not d.levels.any() and d.levels.strides == (0,) * 4  # a broadcast view
    assert d.values.shape == SHAPE and not d.values.any()
    assert Dither.of(SHAPE, 0, uq=False, seed=0, soft_alpha=8).offsets.tolist() == [0.0]


def test_the_dither_is_a_function_of_seed_shape_and_stream():
    """Encoder and decoder draw the same levels from (seed, shape, stream), and another seed,
    stream or shape draws others; the values are the offsets of the levels, those of
    quantization.uq_dither."""
    d = Dither.of(SHAPE, 0, uq=True, seed=9)
    again = Dither.of(SHAPE, 0, uq=True, seed=9)
    assert np.array_equal(d.levels, again.levels) and np.array_equal(d.values, again.values)
    assert d.levels.shape == SHAPE and d.levels.min() >= 0 and d.levels.max() < UQ_LEVELS
    assert len(d.offsets) == UQ_LEVELS and np.array_equal(d.offsets, uq_offsets(0))
    assert np.array_equal(d.values, d.offsets[d.levels])
    assert np.array_equal(d.values.astype(np.float32), uq_dither(9, SHAPE, 0).numpy())
    for other in (Dither.of(SHAPE, 0, uq=True, seed=10), Dither.of(SHAPE, 1, uq=True, seed=9)):
        assert np.mean(other.levels != d.levels) > 0.5
    wider = Dither.of((1, 6, 5, 8), 0, uq=True, seed=9)
    assert np.mean(wider.levels[..., :7] != d.levels) > 0.5  # the shape is part of the key


def test_soft_mean_changes_the_offsets_not_the_levels():
    plain = Dither.of(SHAPE, 0, uq=True, seed=4)
    soft = Dither.of(SHAPE, 0, uq=True, seed=4, soft_alpha=8)
    assert np.array_equal(plain.levels, soft.levels)
    assert np.array_equal(soft.offsets, uq_offsets(8)) and not np.array_equal(soft.offsets, plain.offsets)


def test_dithers_gives_y_stream_zero_and_z_stream_one():
    y_shape, z_shape = (1, 8, 4, 4), (1, 5, 1, 1)
    u_y, u_z = dithers(y_shape, z_shape, True, 3, 0)
    assert u_y.levels.shape == y_shape and u_z.levels.shape == z_shape
    assert np.array_equal(u_y.levels, Dither.of(y_shape, 0, True, 3).levels)
    assert np.array_equal(u_z.levels, Dither.of(z_shape, 1, True, 3).levels)


@pytest.mark.parametrize("uq", [False, True])
def test_groups_are_keyed_by_index_and_level(uq):
    """Each coding group holds the elements of one (table index, dither level), in the order
    they are coded, and reports that index and that level's offset."""
    d = Dither.of(SHAPE, 0, uq=uq, seed=5)
    index = np.random.default_rng(0).integers(0, 4, SHAPE)
    groups, idx, offsets = d.groups(index)
    assert len(idx) == len(offsets) == len(groups.keys) == len(groups.counts)
    assert len(groups.keys) == len(np.unique(index * len(d.offsets) + d.levels))
    assert np.array_equal(np.unique(idx), np.unique(index))
    flat_index, flat_values = index.ravel(), d.values.ravel()
    start = 0
    for g, count in enumerate(groups.counts):
        members = groups.order[start : start + count]
        assert np.all(flat_index[members] == idx[g]) and np.all(flat_values[members] == offsets[g])
        assert np.all(np.diff(members) > 0)  # C order within a group
        start += count
    assert start == index.size


def test_channel_index_is_each_elements_channel():
    index = channel_index((1, 4, 3, 2))
    assert index.shape == (1, 4, 3, 2)
    assert all(np.all(index[0, c] == c) for c in range(4))


def test_quantized_latents_sigma_is_the_table_value_at_each_index():
    table = np.array([0.11, 0.2, 0.5, 1.5])
    index = np.array([[[[0, 3], [2, 1]]]], dtype=np.int32)
    zeros = torch.zeros(1, 1, 2, 2)
    q = QuantizedLatents(zeros.int(), zeros.int(), zeros, zeros, index, zeros.double(), zeros, table)
    assert q.sigma.tolist() == [[[[0.11, 1.5], [0.5, 0.2]]]]
    with pytest.raises(ValueError, match="factorized"):
        QuantizedLatents(zeros.int(), zeros.int(), zeros, zeros, index, zeros.double(), zeros, None).sigma


@pytest.mark.parametrize("width, height", [(64, 64), (100, 70), (1, 1), (65, 129)])
def test_latent_shapes_are_what_the_analysis_gives(tiny_model, width, height):
    """y is 1/16 and z 1/64 of the image padded to a multiple of STRIDE, with the model's
    channels: the shapes the encoder's transforms produce, which the decoder must rebuild."""
    y_shape, z_shape = latent_shapes(tiny_model, width, height)
    hp, wp = -(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE
    assert y_shape == (1, 24, hp // 16, wp // 16) and z_shape == (1, 16, hp // 64, wp // 64)
    if width * height <= 100 * 70:
        pixels, _ = codec.prepare_pixels(photo_like(width, height, seed=1))
        y, z = codec.analyse(tiny_model, pixels)
        assert (tuple(y.shape), tuple(z.shape)) == (y_shape, z_shape)
