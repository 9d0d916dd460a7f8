"""The alpha record of format 5, an image's alpha plane kept losslessly beside the coded colours
(docs/format.md, "Format version 5 - alpha"). ``00 v``: every pixel's alpha is v; ``01`` and
a PNG: the plane as 8-bit greyscale, not interlaced, of the image's size. PNG, because deflate
is in every browser, node and Python's standard library and its filters are simple to
implement exactly; Pillow writes and reads it here.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from ..errors import LrcodecError

CONSTANT, PNG = 0, 1  # the record's first byte
INVALID = "corrupted lrcodec file (invalid alpha section)"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\0\0\0\0IEND\xaeB`\x82"


def pack(plane: np.ndarray) -> bytes:
    """The record's data for an alpha plane (uint8, height x width)."""
    from PIL import Image

    if plane.min() == plane.max():
        return bytes([CONSTANT, int(plane.flat[0])])
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(plane, np.uint8), "L").save(buf, "PNG", optimize=True)
    return bytes([PNG]) + buf.getvalue()


def _idat(png: bytes) -> bytes | None:
    """The IDAT chunks' data, joined, if the chunks after the signature fill the PNG exactly, each
    with its CRC right, IHDR only first, the IDAT chunks one run, and IEND (empty) only last;
    else None. Pillow reads no further than the first run of IDAT chunks or the first IEND, so
    anything else would be a PNG that two readers could read differently."""
    at, idat, kinds = len(_SIGNATURE), [], []
    while at < len(png):
        if len(png) - at < 12:
            return None
        end = at + 8 + struct.unpack_from(">I", png, at)[0]  # the chunk's data ends here, its CRC follows
        if end + 4 > len(png) or png[end : end + 4] != struct.pack(">I", zlib.crc32(png[at + 4 : end])):
            return None
        kind = png[at + 4 : at + 8]
        if (kind == b"IHDR") != (at == len(_SIGNATURE)) or (kind == b"IEND") != (end + 4 == len(png)):
            return None
        if kind == b"IDAT":
            if b"IDAT" in kinds and kinds[-1] != b"IDAT":
                return None
            idat.append(png[at + 8 : end])
        kinds.append(kind)
        at = end + 4
    return b"".join(idat)


def plane(data: bytes, width: int, height: int) -> np.ndarray:
    """The alpha plane (uint8, height x width) of a record's data; anything but the format's two
    forms (a PNG of another size, colour type, bit depth or interlace, a chunk whose CRC is wrong,
    image data that does not inflate to exactly its rows, one that does not decode) is the
    one-line error."""
    if data[:1] == bytes([CONSTANT]) and len(data) == 2:
        return np.full((height, width), data[1], np.uint8)
    png = data[1:]
    # IHDR first: width, height, bit depth 8, colour type 0 (grey), compression, filter, interlace 0
    ihdr = struct.pack(">I4sIIBBBBB", 13, b"IHDR", width, height, 8, 0, 0, 0, 0)
    if data[:1] != bytes([PNG]) or png[:8] != _SIGNATURE or png[8:29] != ihdr or not png.endswith(_IEND):
        raise LrcodecError(INVALID)
    idat, rows = _idat(png), height * (width + 1)  # each row: its filter byte and its pixels
    inflate = zlib.decompressobj()
    try:  # Pillow would take a stream that ends early (zeros) or goes on: exactly the rows, here
        if idat is None or len(inflate.decompress(idat, rows + 1)) != rows or not inflate.eof or inflate.unused_data:
            raise LrcodecError(INVALID)
    except zlib.error:
        raise LrcodecError(INVALID) from None
    from PIL import PngImagePlugin

    try:  # the plugin itself: the header's size, already within the pixel limit, is the PNG's
        image = PngImagePlugin.PngImageFile(io.BytesIO(png))
        image.load()
    except Exception:  # Pillow raises many kinds for a broken PNG
        raise LrcodecError(INVALID) from None
    if image.mode != "L" or image.size != (width, height):
        raise LrcodecError(INVALID)
    return np.asarray(image, np.uint8)


def describe(data: bytes) -> dict:
    """What ``lrcodec info`` says of a record: its coding and the constant or the PNG's bytes."""
    if data[:1] == bytes([CONSTANT]) and len(data) == 2:
        return {"coding": "constant", "value": data[1]}
    if data[:1] == bytes([PNG]):
        return {"coding": "png", "bytes": len(data) - 1}
    raise LrcodecError(INVALID)
