"""Reading inputs and writing outputs (lrcodec.imageio): atomic writes that never leave a
partial file nor overwrite without force, input discovery, clear errors for unreadable
inputs, mode normalisation and output formats by suffix.

Palette, CMYK, bilevel and 16-bit inputs' decode modes, EXIF orientation and the pixel limit
are checked in tests/test_robustness.py; output permissions in tests/app/test_cli.py."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lrcodec import imageio
from lrcodec.errors import LrcodecError


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _gradient(mode: str = "RGB", size=(12, 8)) -> Image.Image:
    w, h = size
    arr = (np.add.outer(np.arange(h) * 20, np.arange(w) * 10) % 256).astype(np.uint8)
    return Image.fromarray(np.stack([arr, 255 - arr, arr // 2], -1), "RGB").convert(mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------- writing


def test_write_atomic_writes_and_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "out.lrc"
    imageio.write_atomic(str(target), b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(LrcodecError, match="exists \\(use --force to overwrite\\)"):
        imageio.write_atomic(str(target), b"second")
    assert target.read_bytes() == b"first"
    imageio.write_atomic(str(target), b"second", force=True)
    assert target.read_bytes() == b"second" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", [TypeError, KeyboardInterrupt])
def test_a_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch, failure):
    """Whatever interrupts the write (an error, Ctrl-C), the temporary file is removed and the
    target is what it was: absent, or the old file intact."""
    target = tmp_path / "out.png"
    if failure is TypeError:
        with pytest.raises(TypeError):
            imageio.write_atomic(str(target), object())  # not bytes: fails while writing
        assert not target.exists() and list(tmp_path.iterdir()) == []
        return
    target.write_bytes(b"good")

    def interrupted(src, dst):
        assert Path(src).read_bytes() == b"new"  # the whole file was written beside the target
        raise KeyboardInterrupt

    monkeypatch.setattr(imageio.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        imageio.write_atomic(str(target), b"new", force=True)
    monkeypatch.undo()
    assert target.read_bytes() == b"good" and _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_atomic_refuses_directories_and_missing_folders(tmp_path):
    with pytest.raises(LrcodecError, match="is a directory"):
        imageio.write_atomic(str(tmp_path), b"x", force=True)
    with pytest.raises(LrcodecError, match="does not exist"):
        imageio.write_atomic(str(tmp_path / "missing" / "out.lrc"), b"x")
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_to_dash_is_stdout(capsysbinary, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    imageio.write_atomic("-", b"\x00bytes\xff")
    assert capsysbinary.readouterr().out == b"\x00bytes\xff"
    assert list(tmp_path.iterdir()) == []


def test_a_relative_name_writes_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    imageio.write_atomic("plain.lrc", b"x")
    assert (tmp_path / "plain.lrc").read_bytes() == b"x" and _leftovers(tmp_path) == []


# ---------------------------------------------------------------- finding and reading inputs


def test_find_images_is_recursive_sorted_and_by_suffix(tmp_path):
    """Files with an image suffix (any case) below the folder, sorted; other files and folders
    named like images are left out."""
    for name in ("b.png", "a.JPG", "sub/c.jpeg", "sub/deeper/d.WebP", "notes.txt", "sub/e.tiff", "f.png.bak"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    found = imageio.find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.JPG", "b.png", "sub/c.jpeg", "sub/deeper/d.WebP", "sub/e.tiff"]
    assert all(s == s.lower() and s.startswith(".") for s in imageio.IMAGE_SUFFIXES)


def test_expand_inputs_names_files_relative_to_their_folder(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("in/x.png", "in/sub/y.png", "z.bmp"):
        (tmp_path / name).write_bytes(b"")
    found = imageio.expand_inputs([tmp_path / "in", str(tmp_path / "z.bmp")])
    assert [(p.relative_to(tmp_path).as_posix(), rel.as_posix()) for p, rel in found] == [
        ("in/sub/y.png", "sub/y.png"), ("in/x.png", "x.png"), ("z.bmp", "z.bmp")]
    with pytest.raises(LrcodecError, match="no such file or folder"):
        imageio.expand_inputs([tmp_path / "nothing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(LrcodecError, match="no images found"):
        imageio.expand_inputs([tmp_path / "empty"])


def test_read_bytes_of_files_stdin_and_errors(tmp_path, monkeypatch):
    (tmp_path / "a.bin").write_bytes(b"abc")
    assert imageio.read_bytes(str(tmp_path / "a.bin")) == b"abc"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x00from stdin")))
    assert imageio.read_bytes("-") == b"\x00from stdin"
    with pytest.raises(LrcodecError, match="no such file"):
        imageio.read_bytes(str(tmp_path / "missing.lrc"))
    with pytest.raises(LrcodecError, match="is a directory"):
        imageio.read_bytes(str(tmp_path))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_read_bytes_of_an_unreadable_file(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(b"x")
    path.chmod(0)
    try:
        with pytest.raises(LrcodecError, match="permission denied"):
            imageio.read_bytes(str(path))
    finally:
        path.chmod(0o600)


def test_open_image_loads_fully_or_explains(tmp_path):
    """A loaded image of the file's size; an empty, foreign or truncated file is a one-line
    LrcodecError naming the input."""
    data = _png(_gradient())
    image = imageio.open_image(data, "photo.png")
    assert image.size == (12, 8) and image.mode == "RGB"
    for bad, match in ((b"", "photo.png is empty"), (b"plain text", "photo.png is not a readable image"),
                       (data[: len(data) // 2], "photo.png is not a readable image")):
        with pytest.raises(LrcodecError, match=match) as info:
            imageio.open_image(bad, "photo.png")
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------- modes


def test_rgb_grey_and_ycbcr_pass_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode, decoded_as in (("RGB", "RGB"), ("L", "L"), ("1", "L"), ("YCbCr", "RGB")):
            image, got = imageio.normalise_mode(_gradient(mode))
            assert (image.mode, got) == ("RGB", decoded_as), mode


def test_grey_stays_grey_in_all_three_channels():
    image, mode = imageio.normalise_mode(_gradient("L"))
    r, g, b = (np.asarray(c) for c in image.split())
    assert mode == "L" and np.array_equal(r, g) and np.array_equal(g, b)
    assert np.array_equal(r, np.asarray(_gradient("L")))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P-transparent"])
def test_alpha_is_refused_unless_dropped(mode):
    """An alpha channel (or a palette with transparency) is refused with a hint; with
    drop_alpha the colours are coded (grey with alpha decodes grey)."""
    if mode == "P-transparent":
        image = _gradient("P")
        image.info["transparency"] = 0
    else:
        image = _gradient(mode)
    with pytest.raises(LrcodecError, match="alpha channel.*--drop-alpha"):
        imageio.normalise_mode(image)
    image, got = imageio.normalise_mode(image, drop_alpha=True)
    assert image.mode == "RGB" and got == ("L" if mode == "LA" else "RGB")


def test_sixteen_bit_and_float_grey_are_reduced_to_eight_bits_with_a_warning():
    """Each reduction warns; integer samples v * 257 (16-bit, or 32-bit as Pillow opens 16-bit
    PNGs) become v exactly, and a float image keeps its values (Pillow's 0..255)."""
    levels = np.arange(96, dtype=np.uint16).reshape(8, 12) * 2
    cases = [(Image.fromarray(levels * 257), levels), (Image.fromarray((levels * 257).astype(np.int32)), levels),
             (Image.fromarray(levels.astype(np.float32)), levels)]
    assert [c[0].mode for c in cases] == ["I;16", "I", "F"]
    for image, expected in cases:
        with pytest.warns(UserWarning, match=f"{image.mode} image reduced to 8 bits"):
            out, got = imageio.normalise_mode(image)
        assert got == "L" and out.mode == "RGB"
        assert np.array_equal(np.asarray(out)[..., 0], expected.astype(np.uint8)), image.mode


def test_a_dark_sixteen_bit_image_stays_dark():
    """The scale comes from the mode, not the content: 16-bit samples all below 256 are a very
    dark image (200 of 65535 is level 1), not an 8-bit one."""
    with pytest.warns(UserWarning):
        out, _ = imageio.normalise_mode(Image.fromarray(np.full((4, 4), 200, np.uint16)))
    assert np.asarray(out).max() == 1


def test_cmyk_and_multi_frame_inputs_warn_of_what_they_lose():
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (10, 20, 30, 40)).save(buf, "JPEG")
    with pytest.warns(UserWarning, match="CMYK values are not kept"):
        out, mode = imageio.normalise_mode(imageio.open_image(buf.getvalue(), "cmyk.jpg"))
    assert (out.mode, mode) == ("RGB", "RGB")
    buf = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), (40 * i, 0, 0)) for i in range(3)]
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="anim.gif has 3 frames: only the first is coded"):
        image = imageio.open_image(buf.getvalue(), "anim.gif")
    assert image.size == (16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a one-frame RGB image warns of nothing
        buf = io.BytesIO()
        frames[0].save(buf, "PNG")
        imageio.normalise_mode(imageio.open_image(buf.getvalue(), "a.png"))


# ---------------------------------------------------------------- output formats


@pytest.mark.parametrize("target, magic", [
    ("out.png", b"\x89PNG"), ("-", b"\x89PNG"), ("no-suffix", b"\x89PNG"), ("OUT.JPG", b"\xff\xd8\xff"),
    ("out.bmp", b"BM"), ("out.tif", b"II*\x00"), ("out.ppm", b"P6"),
])
def test_image_bytes_follow_the_target_suffix(target, magic):
    data = imageio.image_bytes(_gradient(), target)
    assert data.startswith(magic)
    assert Image.open(io.BytesIO(data)).size == (12, 8)


def test_png_output_is_lossless():
    image = _gradient()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(imageio.image_bytes(image, "x.png")))), np.asarray(image))


def test_image_bytes_explain_unknown_or_impossible_formats():
    with pytest.raises(LrcodecError, match="unknown image format for output out.xyz"):
        imageio.image_bytes(_gradient(), "out.xyz")
    with pytest.raises(LrcodecError, match="cannot write JPEG output"):
        imageio.image_bytes(Image.new("I;16", (12, 8)), "out.jpg")


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_written_only_where_the_format_holds_it(mode):
    """PNG and TIFF keep it exactly (and WebP, whose alpha Pillow writes losslessly), AVIF as
    its encoder does; JPEG and other formats are the one-line error that names the others."""
    image = _gradient(mode, (40, 24))
    image.putalpha(Image.fromarray(np.arange(40 * 24, dtype=np.uint8).reshape(24, 40)))
    for target in ("out.png", "out.tif", "out.webp"):
        out = Image.open(io.BytesIO(imageio.image_bytes(image, target)))
        assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(image.getchannel("A"))), target
    assert "A" in Image.open(io.BytesIO(imageio.image_bytes(image, "out.avif"))).getbands()
    for target in ("out.jpg", "out.bmp", "out.gif", "out.ppm"):
        with pytest.raises(LrcodecError) as info:
            imageio.image_bytes(image, target)
        assert "alpha channel" in str(info.value) and "PNG, WebP, AVIF or TIFF" in str(info.value)
        assert "--drop-alpha" in str(info.value)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "RGBa", "La", "P-transparent", "RGB", "L"])
def test_split_alpha_gives_the_colours_and_the_straight_alpha(mode):
    """The colours an image with alpha is coded with (grey stays grey) and its alpha record,
    straight where Pillow's mode is premultiplied; an image without alpha, or with it dropped,
    comes back as it is."""
    from lrcodec.format import alpha

    rgba = _gradient("RGBA", (40, 24))
    rgba.putalpha(Image.fromarray((np.arange(40 * 24) % 251).astype(np.uint8).reshape(24, 40)))
    if mode == "P-transparent":
        image = rgba.convert("P")
        image.info["transparency"] = 3
    else:
        image = rgba.convert("LA").convert(mode) if mode in ("La", "L") else rgba.convert(mode)
    colours, record = imageio.split_alpha(image)
    assert imageio.split_alpha(image, drop_alpha=True) == (image, None)
    if mode in ("RGB", "L"):
        assert (colours, record) == (image, None)
        return
    straight = image.convert("LA" if mode in ("LA", "La") else "RGBA")
    assert colours.mode == straight.mode[:-1]
    assert np.array_equal(np.asarray(colours), np.asarray(straight)[..., :-1].squeeze())
    assert np.array_equal(alpha.plane(record, 40, 24), np.asarray(straight.getchannel("A")))
    if mode == "RGBa":  # unpremultiplied: the colours of the RGBA image, where alpha leaves them
        kept = np.asarray(rgba.getchannel("A")) > 128
        assert np.abs(np.asarray(colours, np.int16) - np.asarray(rgba.convert("RGB"), np.int16))[kept].max() <= 2


def _heic(image) -> bytes:
    imageio.register_formats()
    buf = io.BytesIO()
    image.save(buf, "HEIF", quality=90)
    return buf.getvalue()


def test_heic_and_jpeg_xl_inputs_are_read_with_the_formats_extra():
    image = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[:, None, None] * 3, (1, 48, 3)))
    heic = _heic(image)
    buf = io.BytesIO()
    image.save(buf, "JXL", lossless=True)
    for name, data in (("a.heic", heic), ("a.jxl", buf.getvalue())):
        opened = imageio.open_image(data, name)
        assert opened.size == (48, 64), name
        assert np.abs(np.asarray(opened.convert("RGB"), np.int16) - np.asarray(image, np.int16)).max() <= 8, name
    assert {".heic", ".heif", ".jxl"} <= set(imageio.IMAGE_SUFFIXES)


def test_without_the_formats_extra_a_heic_input_names_it(tmp_path):
    (tmp_path / "a.heic").write_bytes(_heic(Image.new("RGB", (32, 32), (90, 40, 10))))
    code = ("import sys; sys.modules['pillow_heif'] = sys.modules['pillow_jxl'] = None\n"
            "from lrcodec import imageio\nfrom lrcodec.errors import LrcodecError\n"
            f"try:\n    imageio.open_image(open({str(tmp_path / 'a.heic')!r}, 'rb').read(), 'a.heic')\n"
            "except LrcodecError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == f"a.heic is not readable here: {imageio.FORMATS_EXTRA}", out.stderr


def test_image_metadata_keeps_what_is_asked_and_drops_what_the_format_cannot_hold():
    from lrcodec.format.bitstream import METADATA_CAP

    exif = Image.Exif()
    exif.update({0x010F: "Maker", 0x0112: 8})
    image = Image.new("RGB", (8, 8))
    image.info.update(icc_profile=b"icc" * 10, exif=exif.tobytes(), **{"XML:com.adobe.xmp": "<x/>"})
    kept = imageio.image_metadata(image)
    assert kept["icc"] == b"icc" * 10 and kept["xmp"] == b"<x/>"
    parsed = Image.Exif()
    parsed.load(kept["exif"])
    assert parsed[0x010F] == "Maker" and parsed[0x0112] == 1  # the pixels are upright
    assert imageio.image_metadata(image, "none") == {} and set(imageio.image_metadata(image, "exif")) == {"exif"}
    with pytest.raises(LrcodecError, match="unknown metadata kind 'gps'"):
        imageio.image_metadata(image, "icc,gps")
    image.info["icc_profile"] = bytes(METADATA_CAP + 1)
    with pytest.warns(UserWarning, match="icc not kept"):
        assert set(imageio.image_metadata(image)) == {"exif", "xmp"}


def test_library_calls_leave_pillows_guard_and_the_umask_alone(tmp_path):
    """A second program that imports lrcodec, opens images and writes files with it keeps
    Pillow's decompression-bomb limit for its own images, and never sees its umask change
    (read by a thread all along, as another thread's open() would take it)."""
    program = f"""
import io, os, threading
from PIL import Image
os.umask(0o022)
limit = Image.MAX_IMAGE_PIXELS
from lrcodec.imageio import open_image, write_atomic

def umask():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))

seen, done = set(), threading.Event()
watcher = threading.Thread(target=lambda: [seen.add(umask()) for _ in iter(done.is_set, True)])
watcher.start()
png = io.BytesIO()
Image.new("RGB", (64, 48)).save(png, "PNG")
for i in range(200):
    open_image(png.getvalue(), "a.png")
    write_atomic(os.path.join({str(tmp_path)!r}, "out.bin"), b"x", force=True)
done.set()
watcher.join()
assert Image.MAX_IMAGE_PIXELS == limit, Image.MAX_IMAGE_PIXELS
assert seen == {{0o022}}, seen
Image.MAX_IMAGE_PIXELS = 1000  # the program's own, lower limit: lrcodec keeps its own (max_pixels)
assert open_image(png.getvalue(), "a.png").size == (64, 48)
try:
    Image.open(io.BytesIO(png.getvalue()))
except Image.DecompressionBombError:
    print("guarded")
"""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the umask from /proc")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "guarded", result.stderr
