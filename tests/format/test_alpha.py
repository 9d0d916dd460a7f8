"""The alpha record of format 5 (lrcodec.format.alpha, docs/format.md "Format version 5: alpha"):
its two forms byte by byte, an exact round trip, and any other data refused with the one-line
error. The record inside a file is tests/format/test_bitstream.py's; through the codec and the
command line, tests/test_codec.py's and tests/app/test_cli.py's."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from lrcodec.errors import LrcodecError
from lrcodec.format import alpha

W, H = 37, 23  # odd: no padding may reach the plane


def _gradient() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return ((xx * 7 + yy * 3) % 256).astype(np.uint8)


def _png(image: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **options)
    return buf.getvalue()


def _chunks(png: bytes) -> list[bytes]:
    at, kinds = 8, []
    while at < len(png):
        (length,) = struct.unpack_from(">I", png, at)
        kinds.append(png[at + 4 : at + 8])
        at += 12 + length
    return kinds


def test_a_constant_alpha_is_two_bytes():
    assert alpha.pack(np.full((H, W), 200, np.uint8)) == b"\x00\xc8"
    assert alpha.pack(np.zeros((1, 1), np.uint8)) == b"\x00\x00"
    assert np.array_equal(alpha.plane(b"\x00\xc8", W, H), np.full((H, W), 200, np.uint8))
    assert alpha.describe(b"\x00\xc8") == {"coding": "constant", "value": 200}


def test_any_other_alpha_is_an_8_bit_grey_png_that_round_trips_exactly():
    plane = _gradient()
    data = alpha.pack(plane)
    png = data[1:]
    assert data[0] == 1 and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[8:29] == struct.pack(">I4sIIBBBBB", 13, b"IHDR", W, H, 8, 0, 0, 0, 0)
    kinds = _chunks(png)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    assert not {b"gAMA", b"iCCP", b"sRGB"} & set(kinds)
    assert png == _png(Image.fromarray(plane, "L"), optimize=True)  # Pillow's optimize=True
    assert np.array_equal(alpha.plane(data, W, H), plane)
    text = png[:-12] + _chunk(b"tEXt", b"Comment\0ignored") + png[-12:]  # other chunks: ignored
    assert np.array_equal(alpha.plane(b"\x01" + text, W, H), plane)
    rows = zlib.compress(b"".join(b"\0" + plane[i].tobytes() for i in range(H)))  # filter 0, two IDATs
    split = GOOD[1:34] + _chunk(b"IDAT", rows[:10]) + _chunk(b"IDAT", rows[10:]) + IEND
    assert np.array_equal(alpha.plane(b"\x01" + split, W, H), plane)
    assert alpha.describe(data) == {"coding": "png", "bytes": len(png)}


def _ihdr_with(png: bytes, **fields) -> bytes:
    """The PNG with IHDR fields changed and its CRC made right."""
    values = dict(zip(("width", "height", "depth", "colour", "compression", "filter", "interlace"),
                      struct.unpack_from(">IIBBBBB", png, 16)))
    body = b"IHDR" + struct.pack(">IIBBBBB", *{**values, **fields}.values())
    return png[:12] + body + struct.pack(">I", zlib.crc32(body)) + png[33:]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


GOOD = alpha.pack(_gradient())
IEND = b"\0\0\0\0IEND\xaeB`\x82"


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x00\xc8\x00", b"\x02\xc8", b"\xff" + GOOD[1:],  # lengths of 00, other first bytes
    b"\x01", b"\x01not a png",
    b"\x01" + _png(Image.fromarray(np.zeros((H, W + 1), np.uint8), "L")),  # another size
    b"\x01" + _png(Image.fromarray(np.zeros((H, W, 3), np.uint8), "RGB")),  # RGB
    b"\x01" + _png(Image.fromarray(np.zeros((H, W), np.uint8), "L").convert("LA")),  # grey with alpha
    b"\x01" + _png(Image.fromarray(np.zeros((H, W), np.uint8), "L").convert("P")),  # a palette
    b"\x01" + _png(Image.fromarray(np.zeros((H, W), np.uint16) + 300)),  # 16 bits
    b"\x01" + _png(Image.new("1", (W, H))),  # 1 bit
    b"\x01" + _ihdr_with(GOOD[1:], interlace=1),  # Adam7
    b"\x01" + _ihdr_with(GOOD[1:], depth=4),
    GOOD[:-1], GOOD[:-12],  # cut in its IEND, or without it
    GOOD + b"\0",  # something after IEND
    GOOD[: len(GOOD) // 2] + IEND,  # cut inside IDAT
    GOOD[:60] + bytes([GOOD[60] ^ 0xFF]) + GOOD[61:],  # a damaged deflate stream: its IDAT's CRC wrong
    GOOD[:-16] + bytes([GOOD[-16] ^ 0xFF]) + GOOD[-15:],  # only the IDAT's CRC wrong
    b"\x01" + GOOD[1:34] + _chunk(b"IDAT", zlib.compress(bytes(W + 1) * (H - 1))) + IEND,  # a row missing
    b"\x01" + GOOD[1:34] + _chunk(b"IDAT", zlib.compress(bytes(W + 1) * H + b"\0")) + IEND,  # and a byte more
    b"\x01" + GOOD[1:34] + _chunk(b"IDAT", zlib.compress(bytes(W + 1) * H) + b"\0") + IEND,  # beyond the stream
    b"\x01" + GOOD[1:34] + _chunk(b"IDAT", zlib.compress(b"\x07" + bytes(W) + bytes(W + 1) * (H - 1))) + IEND,
])
def test_other_alpha_data_is_the_one_line_error(data):
    """Each is refused; the PNG's own chunks must be sound (their CRCs right), though the file's CRC
    covers them too, so that no reader's PNG decoder decides."""
    with pytest.raises(LrcodecError) as info:
        alpha.plane(data, W, H)
    assert str(info.value) == "corrupted lrcodec file (invalid alpha section)"
