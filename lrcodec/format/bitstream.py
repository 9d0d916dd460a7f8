"""The lrcodec file container (documented byte by byte in ``docs/format.md``).

All integers little-endian. The header is validated completely (magic, version, sizes,
lengths against the file size, CRC-32 of the whole file) before anything is allocated.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import asdict, dataclass

from ..errors import LrcodecError
from ..settings import MAX_PIXELS

MAGIC = b"LRC"
VERSION = 2  # 2: probabilities from the exact path (lrcodec.format.exact); 1: from float networks
METADATA_VERSION = 3  # format 2 plus a metadata section: written only for a file that carries metadata
OVERFIT_VERSION = 4  # the overfitted family (lrcodec.format.overfit): the decoder in the file, a metadata section always
ALPHA_VERSION = 5  # format 3 whose section holds an alpha record: written exactly when the file carries alpha
READABLE_VERSIONS = (1, 2, 3, 4, 5)
_HEADER = struct.Struct("<3sB8sIIBBBBIhhhhIII")
HEADER_SIZE = _HEADER.size  # 48
TRAILER_SIZE = 4  # CRC-32 of everything before it
MODES = {0: "RGB", 1: "L"}
MODE_CODES = {v: k for k, v in MODES.items()}
DEFAULT_MAX_PIXELS = MAX_PIXELS

# The metadata section (formats 3-5): what each record holds, and the caps a reader enforces
# before allocating anything (docs/format.md, "Format version 3: metadata" and "Format version 5: alpha").
RECORD_KINDS = ("icc", "exif", "xmp", "alpha")  # record kinds 1-4; alpha (lrcodec.format.alpha) in format 5 only
METADATA_KINDS = RECORD_KINDS[:3]  # the metadata proper, which Pillow's info holds
METADATA_CAP = 16 << 20  # bytes of one record, inflated
METADATA_STORED, METADATA_ZLIB = 0, 1
_RECORD = struct.Struct("<BBII")  # kind, coding, stored length, inflated length

FLAG_REFINED = 1
FLAG_UQ = 2
FLAG_SOFT_MEAN = 4
REFINE_METHODS = ("none", "ssl", "linear", "cosine", "atanh", "ste", "noise", "ssl-3c", "linear-3c", "cosine-3c")


@dataclass
class Header:
    model_id: bytes
    width: int
    height: int
    mode: str = "RGB"
    flags: int = 0
    method: int = 0  # index into REFINE_METHODS
    seed: int = 0
    zmin: int = -1
    zmax: int = 1
    ymin: int = -1
    ymax: int = 1
    tables_crc: int = 0
    z_length: int = 0
    y_length: int = 0
    soft_alpha: int = 0  # soft-mean reconstruction's alpha (FLAG_SOFT_MEAN), 0 otherwise
    version: int = VERSION

    @property
    def refined(self) -> bool:
        return bool(self.flags & FLAG_REFINED)

    @property
    def uq(self) -> bool:
        return bool(self.flags & FLAG_UQ)

    def describe(self) -> dict:
        d = asdict(self)
        d["model_id"] = self.model_id.hex()
        d["format_version"] = d.pop("version")
        d["refined"], d["uq"] = self.refined, self.uq
        d["reconstruction"] = (f"soft-mean (alpha {self.soft_alpha})" if self.soft_alpha
                                 else "dither" if self.uq else "round")
        d["method"] = REFINE_METHODS[self.method]
        return d


def pack(header: Header, z_payload: bytes, y_payload: bytes, metadata: dict[str, bytes] | None = None) -> bytes:
    """The file: format 5 where ``metadata`` (kind -> bytes, RECORD_KINDS) holds alpha, else format 3
    where it holds any, else format 2 without a section; an overfitted file (format 4) always has one
    (and no alpha), a format 1 header none."""
    header.z_length, header.y_length = len(z_payload), len(y_payload)
    present = {k: v for k, v in (metadata or {}).items() if v}
    if header.version == OVERFIT_VERSION and "alpha" in present:
        raise ValueError("an overfitted file (format 4) carries no alpha")
    if header.version in (VERSION, METADATA_VERSION, ALPHA_VERSION):  # what the file carries decides
        header.version = ALPHA_VERSION if "alpha" in present else METADATA_VERSION if present else VERSION
    section = _metadata_section(present) if header.version >= METADATA_VERSION else b""
    head = _HEADER.pack(
        MAGIC, header.version, header.model_id, header.width, header.height, MODE_CODES[header.mode],
        header.flags, header.method, header.soft_alpha, header.seed, header.zmin, header.zmax, header.ymin,
        header.ymax, header.tables_crc, header.z_length, header.y_length,
    )
    body = head + z_payload + y_payload + section
    return body + struct.pack("<I", zlib.crc32(body))


def with_metadata(data: bytes, metadata: dict[str, bytes]) -> bytes:
    """A file with its metadata (METADATA_KINDS) replaced and its alpha record kept: the header
    and payloads, hence every symbol, unchanged (the version follows what the file carries)."""
    header = parse_header(data, max_pixels=2**64)
    if header.version == 1:
        raise LrcodecError("format 1 files carry no metadata")
    return pack(header, *payloads(data, header), {**metadata, "alpha": records(data, header).get("alpha")})


def _metadata_section(metadata: dict[str, bytes]) -> bytes:
    """u32 length, then one record per kind in RECORD_KINDS order, metadata deflated where that is
    smaller, alpha stored (its data is compressed already)."""
    body = b""
    for code, kind in enumerate(RECORD_KINDS, 1):
        if kind not in metadata:
            continue
        raw = bytes(metadata[kind])
        if len(raw) > METADATA_CAP:
            hint = " (--drop-alpha codes the colours only)" if kind == "alpha" else ""
            raise LrcodecError(f"{kind} metadata of {len(raw)} bytes exceeds the format's cap of {METADATA_CAP} "
                               f"bytes{hint}")
        packed = zlib.compress(raw, 9) if kind in METADATA_KINDS else raw
        coding, stored = (METADATA_ZLIB, packed) if len(packed) < len(raw) else (METADATA_STORED, raw)
        body += _RECORD.pack(code, coding, len(stored), len(raw)) + stored
    unknown = set(metadata) - set(RECORD_KINDS)
    if unknown:
        raise ValueError(f"unknown metadata kinds: {sorted(unknown)}")
    return struct.pack("<I", len(body)) + body


def metadata(data: bytes, header: Header) -> dict[str, bytes]:
    """The metadata (METADATA_KINDS) a (validated) file carries, kind -> bytes: its records but alpha."""
    return {k: v for k, v in records(data, header).items() if k in METADATA_KINDS}


def records(data: bytes, header: Header) -> dict[str, bytes]:
    """The records of a (validated) file's metadata section, kind -> bytes: none before format 3,
    an alpha record (stored) in format 5 and only there. Each record is checked against its caps
    before it is inflated, and must inflate to its stated length; the alpha record's data is
    checked by ``lrcodec.format.alpha``."""
    if header.version < METADATA_VERSION:
        return {}
    kinds = RECORD_KINDS if header.version == ALPHA_VERSION else METADATA_KINDS
    at = HEADER_SIZE + header.z_length + header.y_length
    (length,) = struct.unpack_from("<I", data, at)
    end, at, out = at + 4 + length, at + 4, {}
    bad = "corrupted lrcodec file (invalid metadata section)"
    while at < end:
        if end - at < _RECORD.size:
            raise LrcodecError(bad)
        code, coding, stored, size = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        if (not 1 <= code <= len(kinds) or kinds[code - 1] in out or coding > METADATA_ZLIB
                or size > METADATA_CAP or stored > end - at or (coding == METADATA_STORED and stored != size)
                or (kinds[code - 1] == "alpha" and coding != METADATA_STORED)
                or list(out) != [k for k in kinds[: code - 1] if k in out]):
            raise LrcodecError(bad)
        raw = data[at : at + stored]
        if coding == METADATA_ZLIB:
            inflate = zlib.decompressobj()
            try:
                raw = inflate.decompress(raw, size + 1)  # never more than the stated size and one byte
            except zlib.error:
                raise LrcodecError(bad) from None
            if len(raw) != size or not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
                raise LrcodecError(bad)
        out[kinds[code - 1]] = raw
        at += stored
    if header.version == ALPHA_VERSION and "alpha" not in out:
        raise LrcodecError(bad)
    return out


def parse_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Validate and decode the header; raises LrcodecError with the reason."""
    if len(data) == 0:
        raise LrcodecError("empty input: not an lrcodec file")
    if data[:3] != MAGIC[: len(data[:3])] or len(data) < 4:
        raise LrcodecError("not an lrcodec file (bad magic bytes)")
    if data[3] not in READABLE_VERSIONS:
        raise LrcodecError(f"lrcodec format version {data[3]} is newer than this build reads "
                           f"(versions {', '.join(map(str, READABLE_VERSIONS))}); upgrade lrcodec")
    if len(data) < HEADER_SIZE + TRAILER_SIZE:
        raise LrcodecError("truncated lrcodec file (shorter than its header)")
    (_, _, model_id, width, height, mode, flags, method, soft_alpha, seed, zmin, zmax, ymin, ymax,
     crc_tables, z_len, y_len) = _HEADER.unpack_from(data)
    expected = HEADER_SIZE + z_len + y_len + TRAILER_SIZE
    if data[3] >= METADATA_VERSION:  # the metadata section's length follows the payloads
        if len(data) < expected + 4:
            raise LrcodecError(f"truncated lrcodec file ({len(data)} bytes, header says at least {expected + 4})")
        (section,) = struct.unpack_from("<I", data, HEADER_SIZE + z_len + y_len)
        if section > len(RECORD_KINDS) * (_RECORD.size + METADATA_CAP):
            raise LrcodecError("corrupted lrcodec file (a metadata section larger than the format allows)")
        expected += 4 + section
    if len(data) < expected:
        raise LrcodecError(f"truncated lrcodec file ({len(data)} bytes, header says {expected})")
    if len(data) > expected:
        raise LrcodecError(f"corrupted lrcodec file ({len(data) - expected} unexpected bytes after the end)")
    (crc,) = struct.unpack_from("<I", data, expected - TRAILER_SIZE)
    if zlib.crc32(data[: expected - TRAILER_SIZE]) != crc:
        raise LrcodecError("corrupted lrcodec file (checksum mismatch)")
    if width == 0 or height == 0:
        raise LrcodecError("corrupted lrcodec file (zero image size)")
    if width * height > max_pixels:
        raise LrcodecError(
            f"image of {width}x{height} exceeds the limit of {max_pixels} pixels (raise it with --max-pixels)")
    soft_mean = bool(flags & FLAG_SOFT_MEAN)
    degenerate = zmin >= zmax or ymin >= ymax  # one symbol: never written (ranges hold -1..1), no coder takes it
    if (mode not in MODES or method >= len(REFINE_METHODS) or flags >= 8 or zmin > zmax or ymin > ymax
            or (degenerate and data[3] >= 2)
            or (soft_alpha > 0) != soft_mean or (soft_mean and not flags & FLAG_UQ)):
        raise LrcodecError("corrupted lrcodec file (invalid header fields)")
    from .entropy import ALPHABET_LIMIT

    if zmax - zmin + 1 > ALPHABET_LIMIT or (data[3] >= 2 and ymax - ymin + 1 > ALPHABET_LIMIT):
        raise LrcodecError("corrupted lrcodec file (symbol alphabet larger than the format allows)")
    return Header(model_id, width, height, MODES[mode], flags, method, seed, zmin, zmax, ymin, ymax,
                  crc_tables, z_len, y_len, soft_alpha, data[3])


def payloads(data: bytes, header: Header) -> tuple[bytes, bytes]:
    z = data[HEADER_SIZE : HEADER_SIZE + header.z_length]
    y = data[HEADER_SIZE + header.z_length : HEADER_SIZE + header.z_length + header.y_length]
    return z, y
