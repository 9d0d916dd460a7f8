"""The file container (lrcodec.format.bitstream, docs/format.md): every header field round-trips at
its documented offset, and any damaged or forged header is refused with a one-line
LrcodecError before anything is allocated.

Files a model wrote are checked in tests/test_codec.py (fields of one file, truncation, a
flipped seed), tests/test_robustness.py (fuzzing through the decoder, huge sizes and
alphabets) and tests/test_portability.py (golden files' headers, a newer version). Here the
container is exercised on its own, field by field, without a model."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import GOLDEN
from lrcodec.format import bitstream
from lrcodec.format.entropy import ALPHABET_LIMIT
from lrcodec.errors import LrcodecError

# docs/format.md's header: magic, version, model id, width, height, mode, flags, method,
# alpha, seed, zmin, zmax, ymin, ymax, tables CRC, z length, y length (little-endian)
LAYOUT = struct.Struct("<3sB8sIIBBBBIhhhhIII")
Z, Y = b"\x01\x02\x03\x04" * 3, b"\xa0\xb1\xc2\xd3" * 5


def _header(**fields) -> bitstream.Header:
    """A header with every field away from its default."""
    base = dict(model_id=bytes(range(0xF0, 0xF8)), width=641, height=479, mode="L",
                flags=bitstream.FLAG_REFINED | bitstream.FLAG_UQ | bitstream.FLAG_SOFT_MEAN, method=6,
                seed=0xFEDCBA98, zmin=-123, zmax=45, ymin=-2000, ymax=2000, tables_crc=0x89ABCDEF,
                soft_alpha=12, version=2)
    return bitstream.Header(**{**base, **fields})


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _refused(data: bytes, match: str | None = None, **kw) -> str:
    with pytest.raises(LrcodecError, match=match) as info:
        bitstream.parse_header(data, **kw)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_pack_and_parse_round_trip_every_field():
    header = _header()
    data = bitstream.pack(replace(header), Z, Y)
    assert len(data) == bitstream.HEADER_SIZE + len(Z) + len(Y) + bitstream.TRAILER_SIZE
    parsed = bitstream.parse_header(data)
    assert parsed == replace(header, z_length=len(Z), y_length=len(Y))
    assert bitstream.payloads(data, parsed) == (Z, Y)
    plain = bitstream.Header(b"\0" * 8, 1, 1)  # the defaults: RGB, no flags, version 2
    assert bitstream.parse_header(bitstream.pack(replace(plain), b"", b"")) == plain


def test_fields_lie_at_their_documented_offsets():
    """docs/format.md: magic, version, model id, sizes, mode, flags, method, alpha, seed,
    symbol ranges, tables CRC and payload lengths, little-endian, then the file CRC."""
    data = bitstream.pack(_header(), Z, Y)
    assert bitstream.HEADER_SIZE == LAYOUT.size == 48 and data[:3] == b"LRC" and data[3] == 2
    assert data[4:12] == bytes(range(0xF0, 0xF8))
    assert struct.unpack_from("<II", data, 12) == (641, 479)
    assert tuple(data[20:24]) == (bitstream.MODE_CODES["L"], 7, 6, 12)
    assert struct.unpack_from("<I", data, 24) == (0xFEDCBA98,)
    assert struct.unpack_from("<hhhh", data, 28) == (-123, 45, -2000, 2000)
    assert struct.unpack_from("<III", data, 36) == (0x89ABCDEF, len(Z), len(Y))
    assert data[48 : 48 + len(Z)] == Z and data[48 + len(Z) : -4] == Y
    assert struct.unpack("<I", data[-4:]) == (zlib.crc32(data[:-4]),)


def test_describe_names_what_the_flags_mean():
    d = _header().describe()
    assert d["model_id"] == "f0f1f2f3f4f5f6f7" and d["format_version"] == 2 and "version" not in d
    assert (d["refined"], d["uq"], d["method"]) == (True, True, "noise")
    assert d["reconstruction"] == "soft-mean (alpha 12)"
    assert _header(flags=bitstream.FLAG_UQ, soft_alpha=0).describe()["reconstruction"] == "dither"
    assert _header(flags=0, soft_alpha=0).describe()["reconstruction"] == "round"


def test_every_truncation_is_refused():
    data = bitstream.pack(_header(), Z, Y)
    for n in range(len(data)):
        _refused(data[:n])
    assert "truncated" in _refused(data[: bitstream.HEADER_SIZE + 10])
    assert "empty" in _refused(b"")


def test_every_flipped_bit_is_refused():
    """The checksum covers every byte: a single flipped bit anywhere is an error, not another
    header."""
    data = bitstream.pack(_header(), Z, Y)
    for i in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            _refused(bytes(damaged))


def test_trailing_bytes_are_refused():
    data = bitstream.pack(_header(), Z, Y)
    assert "unexpected bytes after the end" in _refused(data + b"\0")
    assert "unexpected bytes" in _refused(_with_crc(data[:-4] + b"\0\0\0\0"))


def _forged(mode_code: int = 1, **fields) -> bytes:
    """A file with a valid CRC whose header packs the given raw field values."""
    h = _header(**fields)
    head = LAYOUT.pack(b"LRC", h.version, h.model_id, h.width, h.height, mode_code,
                                  h.flags, h.method, h.soft_alpha, h.seed, h.zmin, h.zmax, h.ymin, h.ymax,
                                  h.tables_crc, len(Z), len(Y))
    return _with_crc(head + Z + Y)


@pytest.mark.parametrize("fields, match", [
    (dict(mode_code=2), "invalid header fields"),
    (dict(method=len(bitstream.REFINE_METHODS)), "invalid header fields"),
    (dict(flags=8), "invalid header fields"),
    (dict(zmin=5, zmax=4), "invalid header fields"),
    (dict(ymin=1, ymax=0), "invalid header fields"),
    (dict(flags=bitstream.FLAG_UQ, soft_alpha=3), "invalid header fields"),  # alpha without the flag
    (dict(flags=bitstream.FLAG_UQ | bitstream.FLAG_SOFT_MEAN, soft_alpha=0), "invalid header fields"),
    (dict(flags=bitstream.FLAG_SOFT_MEAN, soft_alpha=3), "invalid header fields"),  # soft mean needs UQ
    (dict(width=0), "zero image size"),
    (dict(height=0), "zero image size"),
    (dict(zmin=-2048, zmax=2048), "alphabet"),
    (dict(ymin=-2048, ymax=2048), "alphabet"),
    (dict(version=0), "format version 0"),
    (dict(version=6), "format version 6 is newer"),
])
def test_forged_headers_with_valid_checksums_are_refused(fields, match):
    _refused(_forged(**fields), match)


def test_limits_are_inclusive():
    """The alphabet limit and the pixel limit themselves are allowed; format 1 files (which
    coded y with a Gaussian family, not tables) may have any y range."""
    bitstream.parse_header(_forged(zmin=-2048, zmax=ALPHABET_LIMIT - 2049, ymin=-2048, ymax=2047))
    bitstream.parse_header(_forged(version=1, flags=0, soft_alpha=0, ymin=-30000, ymax=30000))
    data = _forged(width=1000, height=1000)
    assert bitstream.parse_header(data, max_pixels=1_000_000).width == 1000
    assert "exceeds the limit of 999999 pixels" in _refused(data, max_pixels=999_999)


def test_other_files_are_not_lrcodec_files():
    png = (GOLDEN / "lrc-mshp-q1-plain.lrc.png").read_bytes()
    assert "bad magic" in _refused(png)
    assert "bad magic" in _refused(b"LR")


@pytest.mark.parametrize("name", ["lrc-mshp-q1-uq.lrc", "v1-lrc-mshp-q6-uq.lrc", "mean-scale-vbr-q5.lrc"])
def test_golden_headers_repack_to_the_same_bytes(name):
    """A parsed header packs back, with its payloads, to the very file (formats 1 and 2)."""
    data = (GOLDEN / name).read_bytes()
    header = bitstream.parse_header(data)
    assert bitstream.pack(replace(header), *bitstream.payloads(data, header)) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=120), st.booleans())
def test_arbitrary_bytes_parse_or_raise_lrcodec_error(data, fix_crc):
    """Any bytes, with or without a consistent checksum: a header or a one-line LrcodecError."""
    if fix_crc and len(data) >= 4:
        data = _with_crc(data[:-4])
    try:
        header = bitstream.parse_header(data)
    except LrcodecError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert len(data) == bitstream.HEADER_SIZE + header.z_length + header.y_length + bitstream.TRAILER_SIZE


U8, U32, I16 = st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(-(2**15), 2**15 - 1)


def _pack_raw(fields, z: bytes, y: bytes) -> bytes:
    version, model_id, width, height, mode, flags, method, alpha, seed, zmin, zmax, ymin, ymax, tables_crc = fields
    return _with_crc(LAYOUT.pack(b"LRC", version, model_id, width, height, mode, flags, method, alpha, seed,
                                 zmin, zmax, ymin, ymax, tables_crc, len(z), len(y)) + z + y)


@st.composite
def valid_fields(draw):
    """Field values a valid file may hold (the rules of docs/format.md)."""
    flags = draw(st.integers(0, 7))
    flags |= bitstream.FLAG_UQ if flags & bitstream.FLAG_SOFT_MEAN else 0
    alpha = draw(st.integers(1, 255)) if flags & bitstream.FLAG_SOFT_MEAN else 0
    ranges = []
    for _ in "zy":
        lo = draw(st.integers(-(2**15), 2**15 - 2))
        ranges += [lo, draw(st.integers(lo + 1, min(lo + ALPHABET_LIMIT - 1, 2**15 - 1)))]  # two symbols at least
    return (draw(st.sampled_from([1, 2])), draw(st.binary(min_size=8, max_size=8)), draw(st.integers(1, 1000)),
            draw(st.integers(1, 1000)), draw(st.sampled_from([0, 1])), flags,
            draw(st.integers(0, len(bitstream.REFINE_METHODS) - 1)), alpha, draw(U32), *ranges, draw(U32))


@settings(max_examples=200, deadline=None)
@given(valid_fields(), st.integers(0, 3), st.integers(0, 3))
def test_valid_field_values_parse_back_exactly(fields, z_words, y_words):
    """Whatever valid values the fields hold, parsing gives every one back, and the payloads."""
    z, y = b"\x11" * 4 * z_words, b"\x22" * 4 * y_words
    data = _pack_raw(fields, z, y)
    header = bitstream.parse_header(data, max_pixels=10**6)
    assert (header.version, header.model_id, header.width, header.height, bitstream.MODE_CODES[header.mode],
            header.flags, header.method, header.soft_alpha, header.seed, header.zmin, header.zmax, header.ymin,
            header.ymax, header.tables_crc) == fields
    assert bitstream.payloads(data, header) == (z, y)
    assert bitstream.pack(replace(header), z, y) == data


@settings(max_examples=300, deadline=None)
@given(st.tuples(st.sampled_from([0, 1, 2, 3, 255]), st.binary(min_size=8, max_size=8), st.integers(0, 5000),
                 st.integers(0, 5000), st.integers(0, 3), st.integers(0, 9), st.integers(0, 12),
                 st.one_of(st.just(0), U8), U32, I16, I16, I16, I16, U32))
def test_any_field_values_parse_or_raise_lrcodec_error(fields):
    """Files whose lengths and checksum are right but whose fields take any value: a header
    whose fields obey the format's rules, or a one-line LrcodecError."""
    try:
        header = bitstream.parse_header(_pack_raw(fields, b"", b"\0" * 4), max_pixels=10**6)
    except LrcodecError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert 0 < header.width * header.height <= 10**6 and header.zmin <= header.zmax and header.ymin <= header.ymax
    assert header.version == 1 or (header.zmin < header.zmax and header.ymin < header.ymax)  # two symbols at least
    assert header.mode in ("RGB", "L") and header.version in bitstream.READABLE_VERSIONS


# ---------------------------------------------------------------- format 3: the metadata section

META = {"icc": bytes(range(256)) * 3, "exif": b"Exif\x00\x00II*\x00" + b"\x00" * 40, "xmp": b"<x:xmpmeta/>"}


def _section(*records: bytes) -> bytes:
    body = b"".join(records)
    return struct.pack("<I", len(body)) + body


def _record(code: int, raw: bytes, coding: int = 0, stored: bytes | None = None, size: int | None = None) -> bytes:
    stored = raw if stored is None else stored
    return struct.pack("<BBII", code, coding, len(stored), len(raw) if size is None else size) + stored


def _with_section(section: bytes) -> bytes:
    head = _forged(version=3)[: bitstream.HEADER_SIZE + len(Z) + len(Y)]
    return _with_crc(head + section)


def test_metadata_round_trips_as_format_3_and_none_stays_format_2():
    data = bitstream.pack(_header(), Z, Y, META)
    header = bitstream.parse_header(data)
    assert header.version == 3 and bitstream.payloads(data, header) == (Z, Y)
    assert bitstream.metadata(data, header) == META
    assert bitstream.pack(_header(), Z, Y, {"icc": b""}) == bitstream.pack(_header(), Z, Y)  # empty: no section
    plain = bitstream.pack(_header(), Z, Y)
    assert bitstream.parse_header(plain).version == 2 and bitstream.metadata(plain, bitstream.parse_header(plain)) == {}
    assert bitstream.with_metadata(data, {}) == plain
    assert bitstream.with_metadata(plain, META) == data


def test_metadata_is_deflated_where_that_is_smaller():
    repetitive, random_ = b"a" * 5000, bytes(range(256))
    data = bitstream.pack(_header(), Z, Y, {"icc": repetitive, "xmp": random_})
    assert len(data) < len(bitstream.pack(_header(), Z, Y)) + 200 + len(random_)
    assert bitstream.metadata(data, bitstream.parse_header(data)) == {"icc": repetitive, "xmp": random_}


def test_metadata_over_the_cap_is_refused_when_writing():
    with pytest.raises(LrcodecError, match="exceeds the format's cap"):
        bitstream.pack(_header(), Z, Y, {"exif": bytes(bitstream.METADATA_CAP + 1)})


@pytest.mark.parametrize("section, match", [
    (struct.pack("<I", 1 << 31), "metadata section larger than the format allows"),  # an absurd length
    (struct.pack("<I", 100) + b"\x01", "truncated"),  # longer than the file
    (_section(b"\x01\x00\x05"), "invalid metadata section"),  # a record cut inside its head
    (_section(_record(5, b"abc")), "invalid metadata section"),  # an unknown kind
    (_section(_record(4, b"\x00\xff")), "invalid metadata section"),  # alpha in a version 3 file
    (_section(_record(2, b"abc"), _record(1, b"abc")), "invalid metadata section"),  # out of order
    (_section(_record(1, b"abc"), _record(1, b"abc")), "invalid metadata section"),  # twice
    (_section(_record(1, b"abc", coding=2)), "invalid metadata section"),  # an unknown coding
    (_section(_record(1, b"abc", size=4)), "invalid metadata section"),  # stored, of another length
    (_section(_record(1, b"abc")[:-1]), "invalid metadata section"),  # data beyond the section
    (_section(_record(1, b"x" * 10, coding=1, stored=b"not zlib")), "invalid metadata section"),
    (_section(_record(1, b"x" * 10, coding=1, stored=zlib.compress(b"x" * 11))), "invalid metadata section"),
    (_section(_record(1, b"x" * 10, coding=1, stored=zlib.compress(b"x" * 9))), "invalid metadata section"),
    # a zlib bomb: 100 MB of EXIF in 100 kB, refused by its stated length before anything is inflated
    (_section(_record(2, b"", coding=1, stored=zlib.compress(bytes(100 << 20)), size=100 << 20)),
     "invalid metadata section"),
    # ... and when it understates its length, by inflating no more than that
    (_section(_record(2, b"", coding=1, stored=zlib.compress(bytes(100 << 20)), size=1000)),
     "invalid metadata section"),
])
def test_hostile_metadata_sections_are_refused(section, match):
    data = _with_section(section)
    with pytest.raises(LrcodecError, match=match):
        bitstream.metadata(data, bitstream.parse_header(data))


# ---------------------------------------------------------------- format 5: the alpha record

ALPHA = b"\x00\xc8"  # a constant alpha of 200 (lrcodec.format.alpha)


def _v5(*records: bytes) -> bytes:
    return _with_crc(_forged(version=5)[: bitstream.HEADER_SIZE + len(Z) + len(Y)] + _section(*records))


def test_alpha_makes_format_5_stored_after_the_metadata():
    plain = bitstream.pack(_header(), Z, Y)
    data = bitstream.pack(_header(), Z, Y, {"alpha": ALPHA})
    header = bitstream.parse_header(data)
    assert header.version == 5 and data[3] == 5 and bitstream.payloads(data, header) == (Z, Y)
    # 4 bytes of section length, then kind 4, coding 0, stored length 2, length 2, the data: 16 bytes in all
    assert data[:-4] == plain[:3] + b"\x05" + plain[4:-4] + struct.pack("<IBBII", 12, 4, 0, 2, 2) + ALPHA
    assert bitstream.records(data, header) == {"alpha": ALPHA} and bitstream.metadata(data, header) == {}
    both = bitstream.pack(_header(), Z, Y, {"alpha": ALPHA, **META})
    assert list(bitstream.records(both, bitstream.parse_header(both))) == ["icc", "exif", "xmp", "alpha"]
    assert bitstream.metadata(both, bitstream.parse_header(both)) == META
    compressible = b"\x01" + bytes(5000)  # never deflated: an alpha PNG is compressed already
    data = bitstream.pack(_header(), Z, Y, {"alpha": compressible})
    assert data[-4 - 10 - len(compressible) :][:10] == struct.pack("<BBII", 4, 0, len(compressible), len(compressible))


def test_with_metadata_keeps_the_alpha():
    alpha_only = bitstream.pack(_header(), Z, Y, {"alpha": ALPHA})
    both = bitstream.pack(_header(), Z, Y, {**META, "alpha": ALPHA})
    assert bitstream.with_metadata(alpha_only, META) == both
    assert bitstream.with_metadata(both, {}) == alpha_only
    assert bitstream.with_metadata(both, {"xmp": META["xmp"]}) == bitstream.pack(_header(), Z, Y, {"xmp": META["xmp"],
                                                                                                    "alpha": ALPHA})


def test_an_overfitted_file_carries_no_alpha():
    with pytest.raises(ValueError, match="no alpha"):
        bitstream.pack(_header(version=bitstream.OVERFIT_VERSION), Z, Y, {"alpha": ALPHA})


@pytest.mark.parametrize("data", [
    _v5(),  # format 5 without alpha
    _v5(_record(1, b"icc")),
    _v5(_record(4, ALPHA, coding=1, stored=zlib.compress(ALPHA))),  # alpha deflated
    _v5(_record(4, ALPHA), _record(3, b"<x/>")),  # alpha before the metadata
    _v5(_record(4, ALPHA), _record(4, ALPHA)),
    _v5(_record(5, ALPHA)),
    _with_section(_section(_record(1, b"icc"), _record(4, ALPHA))),  # alpha in format 3
    _with_crc(_forged(version=4)[: bitstream.HEADER_SIZE + len(Z) + len(Y)] + _section(_record(4, ALPHA))),
])
def test_alpha_records_out_of_place_are_refused(data):
    with pytest.raises(LrcodecError, match="invalid metadata section"):
        bitstream.records(data, bitstream.parse_header(data))


def test_the_section_may_hold_four_records_at_their_cap():
    most = 4 * (10 + bitstream.METADATA_CAP)
    assert "truncated" in _refused(_with_section(struct.pack("<I", most)))
    assert "larger than the format allows" in _refused(_with_section(struct.pack("<I", most + 1)))
