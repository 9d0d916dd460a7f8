"""Hostile bitstreams and odd inputs: clean one-line errors, never a crash or a hang."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from conftest import photo_like
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lrcodec import codec
from lrcodec.errors import LrcodecError
from lrcodec.imageio import normalise_mode, open_image


@pytest.fixture(scope="module")
def sample_file(tiny_model):
    return codec.encode_image(photo_like(64, 64), tiny_model).data


@pytest.fixture(scope="module")
def metadata_file(sample_file):
    """Format 3: the sample's symbols with an ICC profile, EXIF and (incompressible) XMP."""
    from lrcodec.format.bitstream import with_metadata

    return with_metadata(sample_file, {"icc": b"icc " * 100, "exif": b"Exif\x00\x00MM\x00*" + bytes(30),
                                       "xmp": bytes(range(256))})


@pytest.fixture(scope="module")
def soft_mean_file(tiny_model):
    return codec.encode_image(photo_like(64, 64), tiny_model, uq=True, seed=5, soft_alpha=8).data


def _decode_or_clean_error(data, model, max_pixels=100_000_000):
    try:
        codec.decode_image(data, model, max_pixels)
    except LrcodecError as e:
        assert "\n" not in str(e)


# `make fuzz` raises the number of cases through LRCODEC_FUZZ_EXAMPLES.
@settings(max_examples=int(os.environ.get("LRCODEC_FUZZ_EXAMPLES", 60)), deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_files_fail_cleanly(tiny_model, sample_file, soft_mean_file, metadata_file, data):
    import zlib

    kind = data.draw(st.sampled_from(["truncate", "flip", "splice", "random"]))
    buf = bytearray(data.draw(st.sampled_from([sample_file, soft_mean_file, metadata_file])))
    if kind == "truncate":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            buf[data.draw(st.integers(0, len(buf) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "splice":
        cut = data.draw(st.integers(0, len(buf)))
        buf = buf[:cut] + data.draw(st.binary(max_size=64)) + buf[cut:]
    else:
        buf = bytearray(data.draw(st.binary(max_size=200)))
    # Half the cases carry a valid checksum, to reach the header checks and the range decoder;
    # the pixel limit keeps each case small (a forged size may otherwise ask for 100 megapixels).
    forged_crc = len(buf) >= 8 and data.draw(st.booleans())
    if forged_crc:
        buf[-4:] = zlib.crc32(bytes(buf[:-4])).to_bytes(4, "little")
    if bytes(buf) in (sample_file, soft_mean_file, metadata_file):
        return
    if kind == "truncate" or not forged_crc:
        # A shortened file, or any change the checksum still covers, is always refused.
        with pytest.raises(LrcodecError):
            codec.decode_image(bytes(buf), tiny_model, max_pixels=1 << 16)
    else:
        # A consistent forgery may be another valid file: it decodes or is refused cleanly.
        _decode_or_clean_error(bytes(buf), tiny_model, max_pixels=1 << 16)


def test_valid_checksum_but_absurd_header_is_refused(tiny_model, sample_file):
    """A forged file with a correct CRC but a huge size is refused before allocating."""
    import struct
    import zlib

    body = bytearray(sample_file[:-4])
    struct.pack_into("<II", body, 12, 1_000_000, 1_000_000)
    forged = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(LrcodecError, match="exceeds the limit"):
        codec.decode_image(forged, tiny_model)


def test_forged_huge_alphabet_is_refused(tiny_model, sample_file):
    import struct
    import zlib

    body = bytearray(sample_file[:-4])
    struct.pack_into("<hh", body, 28, -32767, 32767)
    forged = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(LrcodecError, match="alphabet"):
        codec.decode_image(forged, tiny_model)


def test_forged_payload_with_valid_checksum_is_detected(tiny_model, sample_file):
    """Random payload bytes behind a valid header and CRC: the decoder re-encodes what it
    decoded, and random words are not what lrcodec writes for any symbols."""
    import struct
    import zlib

    rng = np.random.default_rng(0)
    body = bytearray(sample_file[:-4])
    body[48:] = rng.integers(0, 256, len(body) - 48, dtype=np.uint8).tobytes()
    forged = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(LrcodecError, match="payload"):
        codec.decode_image(forged, tiny_model)


def _png(image, **kw):
    buf = io.BytesIO()
    image.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_odd_input_modes(tiny_model):
    rgb = photo_like(40, 30)
    cases = {
        "palette": (rgb.convert("P"), "RGB"),
        "16-bit": (Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257)).convert("I;16"), "L"),
        "cmyk": (rgb.convert("CMYK"), "RGB"),
        "bilevel": (rgb.convert("1"), "L"),
    }
    for name, (image, mode) in cases.items():
        if name == "16-bit":
            with pytest.warns(UserWarning, match="8 bits"):
                _, got = normalise_mode(image)
        else:
            _, got = normalise_mode(image)
        assert got == mode, name
    out = codec.decode_image(codec.encode_image(cases["cmyk"][0], tiny_model).data, tiny_model)
    assert out.size == (40, 30)


def test_exif_orientation_is_applied():
    image = photo_like(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes())
    assert open_image(buf.getvalue()).size == (20, 40)


def test_decompression_bomb_is_refused():
    big = Image.new("L", (4000, 3000))
    with pytest.raises(LrcodecError, match="exceeds the limit"):
        open_image(_png(big), max_pixels=1_000_000)
