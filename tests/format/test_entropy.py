"""The range coder (lrcodec.format.entropy): groups, tables, exact round trips, payload sizes near
the information content, and refusal of payloads it did not write.

Whole files' sizes against their ideal and the coder's treatment of rare symbols are checked
in tests/test_codec.py; forged payloads inside files in tests/test_portability.py and
tests/test_robustness.py. Here the coder is exercised on its own, without a model."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrcodec.format import entropy, exact
from lrcodec.errors import LrcodecError

# One stream is flushed to whole 32-bit words: its payload is at most about one word above
# the information content under the coder's own weights (measured: 0.1 to 32.9 bits).
STREAM_SLACK_BITS = 40


def _tables(sigmas, lo: int, hi: int, offsets=None) -> np.ndarray:
    offsets = np.zeros(len(sigmas)) if offsets is None else offsets
    return exact.quantize_pmf(exact.gaussian_pmf(np.asarray(sigmas, np.float64), offsets, lo, hi))


def _draw(rng, tables: np.ndarray, keys: np.ndarray, lo: int) -> np.ndarray:
    """Symbols drawn from each element's table (keys index the rows)."""
    p = tables / tables.sum(1, keepdims=True)
    cdf = np.cumsum(p, 1)
    u = rng.random(keys.size)
    return (np.minimum((cdf[keys] < u[:, None]).sum(1), tables.shape[1] - 1) + lo).astype(np.int32)


def test_sigma_table_is_geometric_from_min_to_max():
    """levels values, sigma_min first, sigma_max last (to rounding), each the one before times
    the same ratio: strictly increasing, so searchsorted gives a well-defined index."""
    table = entropy.sigma_table()
    assert table.shape == (entropy.SIGMA_LEVELS,) and table.dtype == np.float64
    assert table[0] == entropy.SIGMA_MIN
    assert table[-1] == pytest.approx(entropy.SIGMA_MAX, rel=1e-12)
    ratios = table[1:] / table[:-1]
    assert np.all(ratios > 1) and np.ptp(ratios) < 1e-13
    small = entropy.sigma_table(0.5, 4, 4.0)
    assert small == pytest.approx([0.5, 1.0, 2.0, 4.0], rel=1e-15)


def test_crc_is_zlib_over_the_arrays_bytes_in_c_order():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    b = np.linspace(0, 1, 5)
    assert entropy.crc(a, b) == zlib.crc32(b, zlib.crc32(a.tobytes()))
    assert entropy.crc(a.T) == zlib.crc32(np.ascontiguousarray(a.T).tobytes())  # a view, not its memory
    assert entropy.crc(a, b) != entropy.crc(b, a)


def test_check_symbols_refuses_what_the_format_cannot_hold():
    """Symbols beyond +-SYMBOL_LIMIT or spanning more than the alphabet limit raise
    LrcodecError naming the tensor; the limits themselves and no symbols pass."""
    limit = entropy.SYMBOL_LIMIT
    entropy.check_symbols(np.array([-limit, limit]), "y")
    entropy.check_symbols(np.zeros(0, np.int32), "y")
    entropy.check_symbols(np.array([0, entropy.ALPHABET_LIMIT - 1]), "z", entropy.ALPHABET_LIMIT)
    for bad, alphabet in ((np.array([limit + 1]), 2 * limit + 1), (np.array([-limit - 1]), 2 * limit + 1),
                          (np.array([0, entropy.ALPHABET_LIMIT]), entropy.ALPHABET_LIMIT)):
        with pytest.raises(LrcodecError, match="z latents exceed the format's range"):
            entropy.check_symbols(bad, "z", alphabet)


def test_symbol_range_covers_the_symbols_and_minus_one_to_one():
    assert entropy.symbol_range(np.zeros(0, np.int32)) == (-1, 1)
    assert entropy.symbol_range(np.array([0, 0])) == (-1, 1)
    assert entropy.symbol_range(np.array([-7, 3, 2])) == (-7, 3)
    assert entropy.symbol_range(np.array([4, 9])) == (-1, 9)


@pytest.mark.parametrize("largest", [5, 2**15 - 1, 2**15, 10**6])
def test_groups_are_a_stable_sort_by_key(largest):
    """The coding order is the unique stable sort of the keys (both the 16-bit fast path and
    wider keys), with the keys present in ascending order and their counts."""
    rng = np.random.default_rng(largest)
    keys = rng.choice(np.array([0, 3, largest // 2, largest]), size=(2, 3, 17))
    groups = entropy.Groups.of(keys)
    assert np.array_equal(groups.order, np.argsort(keys.ravel(), kind="stable"))
    present, counts = np.unique(keys, return_counts=True)
    assert np.array_equal(groups.keys, present) and np.array_equal(groups.counts, counts)


def test_coder_weights_are_positive_and_sum_to_the_coder_precision():
    """Every symbol gets a weight of at least 1 out of 2**CODER_PRECISION, so none is
    uncodable, and each row's weights use the whole range."""
    tables = _tables([0.11, 0.4, 2.0, 30.0], -40, 40)
    weights = entropy.coder_weights(tables)
    assert weights.shape == tables.shape and weights.min() >= 1
    assert np.array_equal(weights.sum(1), np.full(4, 2.0**entropy.CODER_PRECISION))
    assert np.array_equal(weights, np.rint(weights))


def test_round_trip_is_exact_and_its_size_is_the_information_content():
    """Symbols drawn from their tables decode to themselves, and the payload is within one
    flushed word of the information content under the coder's weights, itself within 0.1 %
    of the ideal under lrcodec's tables (which ``bits_ideal`` reports exactly)."""
    rng = np.random.default_rng(0)
    lo, hi = -30, 30
    tables = _tables([0.15, 0.6, 2.0, 7.0], lo, hi, np.array([0.0, 0.25, -0.5, 0.125]))
    keys = rng.integers(0, 4, (1, 3, 40, 50))
    symbols = _draw(rng, tables, keys.ravel(), lo).reshape(keys.shape)
    groups = entropy.Groups.of(keys)
    coded = entropy.encode(symbols, groups, tables[groups.keys], lo)
    decoded = entropy.decode(coded.payload, groups, tables[groups.keys], lo, "y")
    assert decoded.dtype == np.int32 and np.array_equal(decoded, symbols.ravel())
    flat = symbols.ravel() - lo
    ideal = -np.log2(tables[keys.ravel(), flat] / tables.sum(1)[keys.ravel()]).sum()
    assert coded.bits_ideal == pytest.approx(ideal, rel=1e-12) and coded.bits_ideal > 5000
    payload_bits = 8 * len(coded.payload)
    assert len(coded.payload) % 4 == 0
    assert coded.bits_coder - 1 <= payload_bits <= coded.bits_coder + STREAM_SLACK_BITS
    assert abs(coded.bits_coder - coded.bits_ideal) <= 1e-3 * coded.bits_ideal


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_symbols_round_trip(data):
    """Any symbols in the alphabet, rare ones and an alphabet of one group or many, with any
    integer tables: decoding gives them back exactly and the size stays within one word of
    the coder's information content."""
    K = data.draw(st.integers(2, 40), label="K")
    G = data.draw(st.integers(1, 5), label="groups")
    n = data.draw(st.integers(0, 300), label="n")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    lo = data.draw(st.integers(-50, 0), label="lo")
    rng = np.random.default_rng(seed)
    tables = np.rint(rng.uniform(0, 1, (G, K)) ** 8 * 2.0**20) + 1  # some tiny weights
    keys = rng.integers(0, G, n)
    symbols = rng.integers(lo, lo + K, n).astype(np.int32)
    groups = entropy.Groups.of(keys)
    coded = entropy.encode(symbols, groups, tables[groups.keys], lo)
    assert np.array_equal(entropy.decode(coded.payload, groups, tables[groups.keys], lo, "z"), symbols)
    assert coded.bits_coder - 1 <= 8 * len(coded.payload) <= coded.bits_coder + STREAM_SLACK_BITS


def test_no_symbols_code_to_an_empty_payload():
    groups = entropy.Groups.of(np.zeros(0, np.int64))
    coded = entropy.encode(np.zeros(0, np.int32), groups, np.ones((0, 3)), -1)
    assert coded.payload == b"" and coded.bits_ideal == 0
    assert entropy.decode(b"", groups, np.ones((0, 3)), -1, "z").size == 0


def test_a_payload_in_parts_decodes_part_by_part():
    """PayloadEncoder's parts (each with its own groups, tables and lowest symbol) come back
    from PayloadDecoder in the same order, and the bits add up over the parts."""
    rng = np.random.default_rng(2)
    parts = []
    for lo, sigmas, shape in ((-8, [0.3, 1.5], (1, 2, 5, 6)), (-20, [4.0, 0.2, 9.0], (1, 4, 3, 3))):
        tables = _tables(sigmas, lo, -lo)
        keys = rng.integers(0, len(sigmas), shape)
        parts.append((_draw(rng, tables, keys.ravel(), lo).reshape(shape), entropy.Groups.of(keys), tables, lo))
    encoder = entropy.PayloadEncoder()
    for symbols, groups, tables, lo in parts:
        encoder.add(symbols, groups, tables[groups.keys], lo)
    coded = encoder.finish()
    decoder = entropy.PayloadDecoder(coded.payload, "y")
    for symbols, groups, tables, lo in parts:
        assert np.array_equal(decoder.take(groups, tables[groups.keys], lo), symbols.ravel())
    decoder.finish()
    separately = [entropy.encode(s, g, t[g.keys], lo) for s, g, t, lo in parts]
    assert coded.bits_ideal == pytest.approx(sum(c.bits_ideal for c in separately), rel=1e-12)


@pytest.fixture(scope="module")
def coded_case():
    rng = np.random.default_rng(3)
    tables = _tables([0.3, 1.0, 3.0], -10, 10)
    keys = rng.integers(0, 3, 500)
    groups = entropy.Groups.of(keys)
    symbols = _draw(rng, tables, keys, -10)
    return entropy.encode(symbols, groups, tables[groups.keys], -10).payload, groups, tables[groups.keys]


def test_payloads_it_did_not_write_are_refused(coded_case):
    """Trailing data, a short or empty payload, another table or random words: LrcodecError
    naming the payload, never symbols (the decoder re-encodes what it decoded)."""
    payload, groups, tables = coded_case
    assert entropy.decode(payload, groups, tables, -10, "y").size == 500
    rng = np.random.default_rng(4)
    cases = {
        "trailing word": (payload + b"\0\0\0\0", tables),
        "short": (payload[:-4], tables),
        "empty": (b"", tables),
        "other tables": (payload, tables[::-1]),
        "random words": (rng.integers(0, 256, len(payload), dtype=np.uint8).tobytes(), tables),
    }
    for name, (data, t) in cases.items():
        with pytest.raises(LrcodecError, match="its y payload"):
            entropy.decode(data, groups, t, -10, "y")
    with pytest.raises(LrcodecError, match="y payload length is not a multiple of 4"):
        entropy.decode(payload[:-1], groups, tables, -10, "y")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_lrcodec_error(data):
    """Whatever the bytes, the decoder returns symbols that re-encode to them or raises
    LrcodecError: never another exception."""
    tables = _tables([0.5, 2.0], -6, 6)
    groups = entropy.Groups.of(np.array([0, 1, 1, 0, 1] * 6))
    try:
        symbols = entropy.decode(data, groups, tables, -6, "z")
    except LrcodecError as e:
        assert "\n" not in str(e) and "z payload" in str(e)
    else:
        assert entropy.encode(symbols, groups, tables, -6).payload == data
