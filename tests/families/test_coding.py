"""The coder's shared parts (``lrcodec.families.coding``): y's coding units, the cache of y
tables, the rate a model codes at and the exact entropy model's defaults."""

from __future__ import annotations

import numpy as np
import pytest

from family_checks import tiny
from lrcodec.families.coding import ExactEntropyModel, Rate, YTables, YUnit, hyper_parts


def _latent(shape=(1, 6, 4, 5)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 1  # no zeros: put's untouched parts show


# ------------------------------------------------------------------ coding units


def test_a_unit_without_a_mask_is_its_channels_whole():
    a = _latent()
    unit = YUnit(2, 5)
    assert np.array_equal(unit.take(a), a[:, 2:5].ravel())
    assert np.array_equal(unit.pick(a[:, 2:5]), unit.take(a))
    b = np.zeros_like(a)
    unit.put(b, unit.take(a))  # in place: the coder fills its arrays unit by unit
    assert np.array_equal(b[:, 2:5], a[:, 2:5]) and not b[:, :2].any() and not b[:, 5:].any()


def test_a_masked_unit_takes_channel_by_channel_in_raster_order():
    rng = np.random.default_rng(0)
    a = _latent()
    mask = rng.random((1, 1, 4, 5)) < 0.4
    unit = YUnit(1, 4, mask=mask)
    rows, cols = unit.positions
    expected_positions = [(r, c) for r in range(4) for c in range(5) if mask[0, 0, r, c]]
    assert list(zip(rows.tolist(), cols.tolist())) == expected_positions
    expected = [a[0, ch, r, c] for ch in range(1, 4) for r, c in expected_positions]
    assert unit.take(a).tolist() == expected
    assert np.array_equal(unit.pick(a[:, 1:4]), unit.take(a))


def test_a_masked_unit_puts_back_only_its_positions():
    rng = np.random.default_rng(1)
    a = _latent()
    mask = rng.random((1, 1, 4, 5)) < 0.5
    unit = YUnit(3, 6, mask=mask)
    b = np.zeros_like(a)
    unit.put(b, unit.take(a))
    assert np.array_equal(b[:, 3:6], np.where(mask, a[:, 3:6], 0.0)) and not b[:, :3].any()
    assert np.array_equal(unit.take(b), unit.take(a))
    values = np.arange(unit.take(a).size, dtype=np.int32)  # any values, as the decoder's symbols
    c = np.zeros(a.shape, np.int32)
    unit.put(c, values)
    assert np.array_equal(unit.take(c), values)


def test_complementary_units_rebuild_the_whole_latent():
    """Two units over the same channels, a mask and its complement: each element put once."""
    rng = np.random.default_rng(2)
    a = _latent((1, 3, 5, 4))
    mask = rng.random((1, 1, 5, 4)) < 0.5
    b = np.zeros_like(a)
    for unit in (YUnit(0, 3, mask=mask), YUnit(0, 3, second_pass=True, mask=~mask)):
        unit.put(b, unit.take(a))
    assert np.array_equal(b, a)


# ------------------------------------------------------------------ y tables


class _CountingExact:
    """An exact model's y_tables, counting the rows it computes."""

    def __init__(self, exact):
        self.exact, self.rows = exact, 0

    def y_tables(self, index, offsets, lo, hi):
        self.rows += len(index)
        return self.exact.y_tables(index, offsets, lo, hi)


def test_y_tables_are_the_rows_computed_afresh():
    """Keys in any order and with repeats give exactly ``exact.y_tables``'s rows; a key seen
    before is not computed again, and an empty request computes nothing."""
    exact = tiny("mean-scale").exact
    lo, hi = -9, 11
    counting = _CountingExact(exact)
    tables = YTables(counting, lo, hi)
    rng = np.random.default_rng(3)
    index = np.concatenate([rng.integers(0, len(exact.sigma_table), 9), [5, 5, 9]]).astype(np.int32)
    offsets = np.concatenate([np.round(rng.uniform(-0.5, 0.5, 9), 3), [0.1, -0.2, 0.1]])  # a key is both
    index, offsets = np.concatenate([index, index[[4, 0, 4]]]), np.concatenate([offsets, offsets[[4, 0, 4]]])
    got = tables(index, offsets)
    assert got.shape == (15, hi - lo + 1)
    assert np.array_equal(got, exact.y_tables(index, offsets, lo, hi))
    computed = counting.rows
    order = rng.permutation(15)
    assert np.array_equal(tables(index[order], offsets[order]), exact.y_tables(index[order], offsets[order], lo, hi))
    assert counting.rows == computed  # all cached
    more_index = np.array([index[2], 0, 255], np.int32)
    more_offsets = np.array([offsets[2], 0.125, -0.25])
    assert np.array_equal(tables(more_index, more_offsets), exact.y_tables(more_index, more_offsets, lo, hi))
    assert counting.rows == computed + 2  # only the two new keys
    empty = tables(np.zeros(0, np.int32), np.zeros(0))
    assert empty.shape == (0, hi - lo + 1) and counting.rows == computed + 2


def test_y_tables_answer_an_empty_first_request():
    tables = YTables(tiny("scale").exact, -3, 4)
    assert tables(np.zeros(0, np.int32), np.zeros(0)).shape == (0, 8)


# ------------------------------------------------------------------ the rate


def test_the_default_rate_is_the_identity():
    """A fixed-rate model's symbols are its latents: restore gives the symbols themselves and
    z_hat is symbols + medians + offsets, bit for bit."""
    exact = tiny("mean-scale").exact
    assert (exact.z_step, exact.y_gain, exact.rate.y_offsets) == (1.0, 1.0, None)
    rng = np.random.default_rng(4)
    y_symbols = rng.integers(-20, 21, (1, 24, 3, 4)).astype(np.int32)
    sigma_index = rng.integers(0, 256, y_symbols.shape).astype(np.int32)
    restored = exact.restore(y_symbols, sigma_index)
    assert restored.dtype == np.float64 and np.array_equal(restored, y_symbols)
    z_symbols = rng.integers(-6, 7, (1, 16, 2, 3)).astype(np.int32)
    z_offsets = rng.uniform(-0.5, 0.5, z_symbols.shape)
    expected = z_symbols.astype(np.float64) + exact.medians.reshape(1, -1, 1, 1) + z_offsets
    z_hat = exact.z_hat(z_symbols, z_offsets)
    assert z_hat.dtype == np.float64 and np.array_equal(z_hat, expected)
    assert np.array_equal(exact.z_hat(z_symbols, np.zeros(z_symbols.shape)),
                          z_symbols + exact.medians.reshape(1, -1, 1, 1))


def _with_rate(rate: Rate) -> ExactEntropyModel:
    net = tiny("mean-scale").net
    return ExactEntropyModel(hyper_parts(net), tiny("mean-scale").exact.sigma_table, rate)


def test_a_variable_rate_restores_offsets_and_gain():
    """A non-zero symbol k is restored to (k + sign(k) o_i) / gain, zero stays zero; z counts
    steps of z_step around the medians."""
    offsets = np.zeros(256)
    offsets[3], offsets[7] = 0.25, -0.125
    exact = _with_rate(Rate(z_step=2.0, y_gain=4.0, y_offsets=offsets))
    assert exact.z_step == 2.0 and exact.y_gain == 4.0
    k = np.array([[3, -2], [0, 5]], np.int32)
    index = np.array([[3, 3], [7, 7]], np.int32)
    assert np.array_equal(exact.restore(k, index), np.array([[0.8125, -0.5625], [0.0, 1.21875]]))
    z = np.array([-1, 0, 2, 3] * 4, np.int32).reshape(1, 16, 1, 1)
    u = np.full(z.shape, 0.25)
    m = exact.medians.reshape(1, -1, 1, 1)
    assert np.array_equal(exact.z_hat(z, u), z * 2.0 + m + 0.5)
    no_offsets = _with_rate(Rate(y_gain=0.5))
    assert np.array_equal(no_offsets.restore(k, index), k / 0.5)


def test_sigma_index_counts_the_table_values_below_and_clips():
    exact = tiny("mean-scale").exact
    table = exact.sigma_table
    sigma = np.array([[table[0] / 2, table[0], (table[3] + table[4]) / 2],
                      [np.nextafter(table[10], np.inf), table[-1], table[-1] * 4]])
    idx = exact.sigma_index(sigma)
    assert idx.dtype == np.int32 and idx.shape == sigma.shape
    assert idx.tolist() == [[0, 0, 4], [11, len(table) - 1, len(table) - 1]]


def test_sigma_index_scales_sigma_by_the_gain():
    exact = tiny("mean-scale").exact
    scaled = _with_rate(Rate(y_gain=2.0))
    sigma = np.geomspace(0.05, 300, 40)
    assert np.array_equal(scaled.sigma_index(sigma), exact.sigma_index(sigma * 2.0))
    assert not np.array_equal(scaled.sigma_index(sigma), exact.sigma_index(sigma))


# ------------------------------------------------------------------ the exact model's defaults


def test_the_base_exact_model_codes_all_of_y_at_once_and_leaves_its_parameters_to_a_family():
    exact = _with_rate(Rate())
    assert exact.needs_y_hat is False and exact.params_at_positions is False
    (unit,) = exact.y_units((1, 24, 3, 5))
    assert (unit.lo, unit.hi, unit.mask, unit.second_pass) == (0, 24, None, False)
    with pytest.raises(NotImplementedError):
        exact.unit_params(unit, np.zeros((1, 48, 3, 5)))
