"""Pillow reads and writes .lrc files through its own API (``lrcodec.pillow``)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from conftest import GOLDEN, assert_pixels_close, photo_like
from PIL import Image, UnidentifiedImageError

import lrcodec.pillow  # noqa: F401  (registers the format)
from lrcodec import codec


def test_open_knows_size_and_mode_before_decoding(monkeypatch):
    calls = []
    real = codec.decode_image
    monkeypatch.setattr(codec, "decode_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    im = Image.open(GOLDEN / "lrc-mshp-q3-plain.lrc")
    assert (im.format, im.size, im.mode) == ("LRC", (80, 48), "RGB") and im.info["lrcodec"]["model_id"]
    assert calls == []  # the header only
    im.load()
    assert calls == [1] and np.asarray(im).shape == (48, 80, 3)
    im.load()
    assert calls == [1]


def test_pixels_are_lrcodec_decodes_and_pillow_works_on_them(tmp_path):
    data = (GOLDEN / "lrc-mshp-q2-uq.lrc").read_bytes()
    im = Image.open(io.BytesIO(data))
    assert_pixels_close(im, codec.decode_image(data))
    thumb = im.copy()
    thumb.thumbnail((40, 40))
    assert thumb.size == (40, 24)
    assert im.convert("L").mode == "L"
    im.save(tmp_path / "out.png")
    assert_pixels_close(Image.open(tmp_path / "out.png"), im)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_save_writes_a_file_lrcodec_decodes(tmp_path, mode):
    image = photo_like(96, 64, seed=5).convert(mode)
    image.save(tmp_path / "a.lrc", quality=2, effort=0)
    data = (tmp_path / "a.lrc").read_bytes()
    decoded = codec.decode_image(data)
    assert decoded.mode == mode and decoded.size == (96, 64)
    assert codec.bitstream.parse_header(data).model_id.hex() == lrcodec.models.shipped_card(None, 2)["model_id"]
    assert_pixels_close(Image.open(tmp_path / "a.lrc").convert(mode), decoded)


def test_metadata_is_in_info_and_getexif_and_is_saved_again(tmp_path):
    im = Image.open(GOLDEN / "lrc-mshp-q3-metadata.lrc")
    assert len(im.info["icc_profile"]) == 588 and im.info["xmp"].startswith(b"<x:xmpmeta")
    assert im.getexif()[0x010F] == "lrcodec" and im.getexif()[0x0112] == 1
    im.save(tmp_path / "again.lrc", effort=0)  # Pillow's info travels into the new file
    again = Image.open(tmp_path / "again.lrc")
    assert {k: again.info[k] for k in ("icc_profile", "exif", "xmp")} == {k: im.info[k] for k in ("icc_profile", "exif", "xmp")}
    im.save(tmp_path / "out.png")  # Pillow's PNG writer takes the profile from info
    assert Image.open(tmp_path / "out.png").info["icc_profile"] == im.info["icc_profile"]


def test_bad_input_is_pillows_kind_of_error(tmp_path):
    data = (GOLDEN / "lrc-mshp-q3-plain.lrc").read_bytes()
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(data[:-3]))  # truncated: the header refuses it
    with pytest.raises(OSError, match="overfitted family does not code alpha: pass --drop-alpha"):
        Image.new("RGBA", (64, 64)).save(tmp_path / "a.lrc", model="overfit", effort=1)
    assert not (tmp_path / "a.lrc").exists()  # Pillow removes the file it made


def test_a_file_with_alpha_opens_as_rgba_or_la(tmp_path):
    """The golden file with alpha is RGBA as soon as it is opened, its alpha the stored PNG's;
    Pillow's RGBA and LA images save with their alpha and open as they were."""
    im = Image.open(GOLDEN / "lrc-mshp-q3-alpha.lrc")
    assert (im.mode, im.size) == ("RGBA", (80, 48))
    stored = Image.open(GOLDEN / "lrc-mshp-q3-alpha.lrc.png")
    assert np.array_equal(np.asarray(im.getchannel("A")), np.asarray(stored.getchannel("A")))
    assert_pixels_close(im.convert("RGB"), stored.convert("RGB"))
    for mode in ("RGBA", "LA"):
        image = photo_like(48, 32, seed=7).convert(mode)
        image.putalpha(Image.fromarray(np.arange(48 * 32, dtype=np.uint8).reshape(32, 48)))
        image.save(tmp_path / "a.lrc", effort=0)
        again = Image.open(tmp_path / "a.lrc")
        assert again.mode == mode
        assert np.array_equal(np.asarray(again.getchannel("A")), np.asarray(image.getchannel("A"))), mode


def test_reading_through_pillow_imports_no_torch():
    code = ("import sys; from PIL import Image; import lrcodec.pillow; "
            f"im = Image.open({str(GOLDEN / 'lrc-mshp-q3-plain.lrc')!r}); im.load(); "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'compressai')]")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
