"""Decoding format-1 files (lrcodec.format.format1): their float tables, the error that names the
format where this machine's floats differ from the encoder's, and damaged files.

That every golden file of format 1 decodes to its pinned symbols or is refused with
``NOT_HERE``, under several CPU kernels and thread counts, is checked in
tests/test_portability.py; here the decoder's parts and its refusals."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import GOLDEN, make_model

from lrcodec.format import bitstream, exact
from lrcodec import models
from lrcodec.errors import LrcodecError
from lrcodec.format.format1 import NOT_HERE, _float_z_tables, _native_forward, decode_latents_v1
from lrcodec.format.latents import latent_shapes
from lrcodec.format.dither import uq_offsets

PLAIN, UQ = "v1-lrc-mshp-q3-plain.lrc", "v1-lrc-mshp-q6-uq.lrc"


def _read(name: str) -> tuple[bytes, bitstream.Header]:
    data = (GOLDEN / name).read_bytes()
    return data, bitstream.parse_header(data)


def _forge(data: bytes, z: bytes | None = None, y: bytes | None = None, tables_crc: int | None = None) -> bytes:
    """The file with other payloads or tables CRC, its lengths and file CRC made consistent."""
    header = bitstream.parse_header(data)
    z0, y0 = bitstream.payloads(data, header)
    z, y = z0 if z is None else z, y0 if y is None else y
    body = bytearray(data[: bitstream.HEADER_SIZE])
    struct.pack_into("<III", body, 36, header.tables_crc if tables_crc is None else tables_crc, len(z), len(y))
    body = bytes(body) + z + y
    return body + struct.pack("<I", zlib.crc32(body))


def _decode(data: bytes, model):
    return decode_latents_v1(data, bitstream.parse_header(data), model)


@pytest.fixture(scope="module")
def q3():
    return models.load_model("lrc-mshp-q3")


@pytest.fixture(scope="module")
def plain_decodes_here(q3):
    """Whether this machine's float networks give the tables PLAIN's encoder had (its CRC)."""
    try:
        _decode(_read(PLAIN)[0], q3)
    except LrcodecError as e:
        assert str(e) == NOT_HERE
        return False
    return True


def test_a_format_1_file_decodes_to_latents_of_its_header(q3, plain_decodes_here):
    """Where it decodes: latents of the shapes its size implies, symbols within its header's
    ranges, table indices within the sigma table, and y_hat the symbol plus the mean (no
    dither in a plain file)."""
    if not plain_decodes_here:
        pytest.skip("this machine's float networks differ from the encoder's (NOT_HERE)")
    data, header = _read(PLAIN)
    q = _decode(data, q3)
    y_shape, z_shape = latent_shapes(q3, header.width, header.height)
    assert tuple(q.y_symbols.shape) == y_shape and tuple(q.z_symbols.shape) == z_shape
    assert header.ymin <= q.y_symbols.min() and q.y_symbols.max() <= header.ymax
    assert header.zmin <= q.z_symbols.min() and q.z_symbols.max() <= header.zmax
    assert q.sigma_index.min() >= 0 and q.sigma_index.max() < len(q3.exact.sigma_table)
    assert not q.y_offset.any()
    assert torch.allclose(q.y_hat.double(), q.y_symbols.double() + q.mu, atol=1e-5)


def test_a_file_from_other_floats_is_refused_naming_the_format(q3):
    """Tables that do not match the encoder's (here a forged tables CRC) give the one error
    that says format 1 and what to do, whatever this machine computes."""
    data, header = _read(PLAIN)
    with pytest.raises(LrcodecError) as info:
        _decode(_forge(data, tables_crc=header.tables_crc ^ 1), q3)
    assert str(info.value) == NOT_HERE and "format version 1" in NOT_HERE and "\n" not in NOT_HERE


def test_a_damaged_z_payload_is_refused_naming_the_format(q3):
    data, header = _read(PLAIN)
    z, _ = bitstream.payloads(data, header)
    for forged in (_forge(data, z=z + b"\1\0\0\0"), _forge(data, z=b""), _forge(data, z=bytes(len(z)))):
        with pytest.raises(LrcodecError) as info:
            _decode(forged, q3)
        assert str(info.value) == NOT_HERE


def test_format_1_is_refused_for_families_it_never_had():
    """lrcodec 0.1 wrote only the mean-scale and scale hyperpriors."""
    data, _ = _read(PLAIN)
    with pytest.raises(LrcodecError, match="format 1 with a factorized model"):
        _decode(data, make_model("factorized", seed=4))


def test_a_y_payload_of_a_ragged_length_is_refused(q3, plain_decodes_here):
    """A forged file (consistent lengths and CRC) whose y payload is not whole 32-bit words
    is an invalid file: LrcodecError, never another exception."""
    if not plain_decodes_here:
        pytest.skip("the tables CRC is checked first: NOT_HERE on this machine")
    data, header = _read(PLAIN)
    _, y = bitstream.payloads(data, header)
    with pytest.raises(LrcodecError, match="y payload"):
        _decode(_forge(data, y=y + b"\0\0"), q3)


@pytest.mark.parametrize("soft_alpha", [0, 8])
def test_float_z_tables_are_the_prior_rounded_to_2_to_the_minus_24(tiny_model, soft_alpha):
    """Format 1's z tables, (channels, dither levels, symbols): multiples of 2**-24, none zero,
    each the factorized prior's mass over the symbol's bin centred on median + offset + k (as
    the exact path computes it, to float32's precision)."""
    eb = tiny_model.net.entropy_bottleneck
    offsets = uq_offsets(soft_alpha)
    tables = _float_z_tables(eb, -12, 12, offsets)
    C = eb.channels
    assert tables.shape == (C, len(offsets), 25)
    frequencies = tables * 2.0**24
    assert np.array_equal(frequencies, np.rint(frequencies)) and frequencies.min() >= 1
    prior = exact.FactorizedPrior.of(eb)
    channels = np.repeat(np.arange(C), len(offsets))
    expected = prior.pmf(channels, np.tile(offsets, C), -12, 12).reshape(tables.shape)
    assert np.abs(tables - expected).max() < 2e-6


def test_native_forward_is_the_hyper_synthesis(tiny_model):
    """lrcodec 0.1's h_s kernels compute the same function as the module's own forward (to
    float rounding): only the arithmetic differs, not the network."""
    h_s = tiny_model.net.h_s
    z = torch.randn(1, 16, 3, 5, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        native, own = _native_forward(h_s, z), h_s(z)
    assert native.shape == own.shape == (1, 48, 12, 20)
    assert torch.allclose(native, own, rtol=1e-4, atol=1e-5)
