"""The lrcodec file container (documented byte by byte in ``docs/format.md``).

All integers little-endian. The header is validated completely (magic, version, sizes,
lengths against the file size, CRC-32 of the whole file) before anything is allocated.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import asdict, dataclass

from ..errors import LrcodecError

MAGIC = b"LRC"
VERSION = 2  # 2: probabilities from the exact path (lrcodec.format.exact); 1: from float networks
READABLE_VERSIONS = (1, 2)
_HEADER = struct.Struct("<3sB8sIIBBBBIhhhhIII")
HEADER_SIZE = _HEADER.size  # 48
TRAILER_SIZE = 4  # CRC-32 of everything before it
MODES = {0: "RGB", 1: "L"}
MODE_CODES = {v: k for k, v in MODES.items()}
DEFAULT_MAX_PIXELS = 100_000_000

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


def pack(header: Header, z_payload: bytes, y_payload: bytes) -> bytes:
    header.z_length, header.y_length = len(z_payload), len(y_payload)
    head = _HEADER.pack(
        MAGIC, header.version, header.model_id, header.width, header.height, MODE_CODES[header.mode],
        header.flags, header.method, header.soft_alpha, header.seed, header.zmin, header.zmax, header.ymin,
        header.ymax, header.tables_crc, header.z_length, header.y_length,
    )
    body = head + z_payload + y_payload
    return body + struct.pack("<I", zlib.crc32(body))


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
    if (mode not in MODES or method >= len(REFINE_METHODS) or flags >= 8 or zmin > zmax or ymin > ymax
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
