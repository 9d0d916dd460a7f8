"""Reading images and writing outputs safely.

Inputs: EXIF orientation applied, palette/CMYK/16-bit converted to 8-bit RGB (with a
warning where precision, the CMYK values or other frames are lost), alpha split off (straight,
coded losslessly) unless dropped, decompression bombs refused. Outputs: written to a temporary
file beside the target and renamed into place only when complete, so a failed run never
leaves a partial file or clobbers a good one; alpha only into formats that hold it.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import struct
import sys
import math
import secrets
import warnings
from pathlib import Path

from .settings import MAX_PIXELS as DEFAULT_MAX_PIXELS
from .errors import LrcodecError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".gif", ".avif", ".heic",
                  ".heif", ".jxl")
FORMATS_EXTRA = "HEIC/HEIF and JPEG XL need the lrcodec[formats] extra: pip install 'lrcodec[formats]'"


@functools.cache
def register_formats() -> dict[str, bool]:
    """Teach Pillow HEIC/HEIF (pillow-heif) and JPEG XL (pillow-jxl-plugin) where the
    ``formats`` extra installed them (once: Pillow's registry only grows); which it could."""
    have = {}
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        have["heif"] = True
    except ImportError:
        have["heif"] = False
    try:
        import pillow_jxl  # noqa: F401  (registers on import)

        have["jxl"] = True
    except ImportError:
        have["jxl"] = False
    return have


def _needs_extra(data: bytes) -> bool:
    """Whether bytes look like HEIF (an ISO-BMFF ftyp box of a HEIF brand) or JPEG XL."""
    heif = data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")
    return heif or data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n"


def find_images(folder: str | Path) -> list[Path]:
    """Image files below a folder, recursively, sorted (by suffix; a file that is not one is
    reported when it is read)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def expand_inputs(inputs) -> list[tuple[Path, Path]]:
    """(file, its name relative to the folder it was found in) for files and folders given."""
    found: list[tuple[Path, Path]] = []
    for given in map(Path, inputs):
        if given.is_dir():
            found += [(p, p.relative_to(given)) for p in find_images(given)]
        elif given.is_file():
            found.append((given, Path(given.name)))
        else:
            raise LrcodecError(f"no such file or folder: {given}")
    if not found:
        raise LrcodecError("no images found in the inputs given")
    return found


def read_bytes(source: str) -> bytes:
    """All bytes of a file, or of stdin for '-'."""
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    if path.is_dir():
        raise LrcodecError(f"{source} is a directory, not a file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise LrcodecError(f"no such file: {source}") from None
    except PermissionError:
        raise LrcodecError(f"permission denied: {source}") from None
    except OSError as e:
        raise LrcodecError(f"cannot read {source}: {e.strerror or e}") from None


def _open(data: bytes):
    """``Image.open`` with lrcodec's own size limit in place of Pillow's process-wide one, which
    is left as it is (a program that imports lrcodec keeps its decompression-bomb guard): an
    image beyond Pillow's error size is opened by its format's plugin directly, as ``open`` does."""
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        for kind in Image.ID:
            factory, accept = Image.OPEN[kind]
            result = accept is None or accept(data[:16])
            if result and not isinstance(result, str):
                try:
                    return factory(io.BytesIO(data), "")
                except (SyntaxError, IndexError, TypeError, ValueError, struct.error):
                    continue
        raise


def open_mask(source: str | bytes, width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS):
    """A region-of-interest mask for a width x height image (uint8 array, height x width): a
    greyscale image (colours are converted, alpha ignored) of the image's aspect ratio at any
    size, resized to the image's. Anything else is a one-line error."""
    import numpy as np
    from PIL import Image

    name = "the --roi mask" if isinstance(source, bytes) else f"--roi mask {source}"
    mask = open_image(source if isinstance(source, bytes) else read_bytes(source), name, max_pixels)
    if abs(math.log(mask.width / mask.height) - math.log(width / height)) > 0.02:
        raise LrcodecError(f"{name} is {mask.width}x{mask.height}, not of the image's shape ({width}x{height}): "
                           "a mask must have the image's aspect ratio")
    grey = normalise_mode(mask, drop_alpha=True)[0].convert("L")  # 16-bit and float masks scaled by their mode
    if grey.size != (width, height):
        grey = grey.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8)


def open_image(data: bytes, name: str = "input", max_pixels: int = DEFAULT_MAX_PIXELS):
    """A fully loaded PIL image from bytes, orientation applied; clear errors otherwise."""
    from PIL import ImageOps, UnidentifiedImageError

    if not data:
        raise LrcodecError(f"{name} is empty")
    register_formats()
    try:
        image = _open(data)
        if image.width * image.height > max_pixels:
            raise LrcodecError(
                f"{name}: {image.width}x{image.height} exceeds the limit of {max_pixels} pixels "
                "(raise it with --max-pixels)")
        image.load()
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            warnings.warn(f"{name} has {frames} frames: only the first is coded", stacklevel=2)
        image = ImageOps.exif_transpose(image)
    except LrcodecError:
        raise
    except UnidentifiedImageError:
        if _needs_extra(data):
            raise LrcodecError(f"{name} is not readable here: {FORMATS_EXTRA}") from None
        raise LrcodecError(f"{name} is not a readable image (no image format Pillow knows)") from None
    except Exception as e:  # Pillow raises many types for broken files
        raise LrcodecError(f"{name} is not a readable image ({type(e).__name__}: {e})") from None
    return image


def padded_pixels(image, drop_alpha: bool = False, stride: int | None = None):
    """(uint8 array (1, 3, Hp, Wp) padded by edge replication to multiples of ``stride`` (the
    latents' stride), mode to decode back to) for a PIL image; refuses alpha unless dropped
    (``split_alpha`` takes it off first)."""
    import numpy as np

    from .format.latents import STRIDE

    stride = stride or STRIDE
    image, mode = normalise_mode(image, drop_alpha)
    arr = np.asarray(image, dtype=np.uint8)
    arr = np.pad(arr, ((0, (-arr.shape[0]) % stride), (0, (-arr.shape[1]) % stride), (0, 0)), mode="edge")
    return arr.transpose(2, 0, 1)[None], mode


_STRAIGHT = {"RGBa": "RGBA", "La": "LA"}  # premultiplied modes and their straight-alpha ones


def has_alpha(image) -> bool:
    """Whether a PIL image has an alpha channel (or a palette with transparency)."""
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info)


def split_alpha(image, drop_alpha: bool = False):
    """(the image's colours, its alpha record's data or None): an image with alpha (unless dropped)
    gives its colours (RGB, or L for grey) and its straight alpha plane as format 5 keeps it
    (``lrcodec.format.alpha``); any other image comes back as it is."""
    if drop_alpha or not has_alpha(image):
        return image, None
    import numpy as np

    from .format import alpha

    straight = image.convert("LA" if image.mode in ("LA", "La") else "RGBA")
    return straight.convert(straight.mode[:-1]), alpha.pack(np.asarray(straight.getchannel("A")))


def normalise_mode(image, drop_alpha: bool = False):
    """(RGB image, mode to decode back to: 'RGB' or 'L'); alpha is refused unless dropped (the
    colours of a premultiplied image straight)."""
    if has_alpha(image) and not drop_alpha:
        raise LrcodecError("image has an alpha channel, which this path does not code (imageio.split_alpha "
                           "takes it off); pass --drop-alpha to code the colours only")
    image = image.convert(_STRAIGHT[image.mode]) if image.mode in _STRAIGHT else image
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        warnings.warn(f"{mode} image reduced to 8 bits per sample", stacklevel=2)
        import numpy as np
        from PIL import Image

        arr = np.asarray(image, dtype=np.float64)
        # By the mode, never by the content (a dark 16-bit image is no 8-bit one): integer
        # samples span 0..65535 (32-bit "I" is how Pillow has opened 16-bit PNGs), floats
        # 0..255 as Pillow's own convert("L") takes them.
        scale = 1.0 if mode == "F" else 255.0 / 65535.0
        image = Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8), "L")
        return image.convert("RGB"), "L"
    if mode in ("L", "1", "LA"):
        return image.convert("L").convert("RGB"), "L"
    if mode == "CMYK":
        warnings.warn("CMYK image converted to RGB: its CMYK values are not kept", stacklevel=2)
    return image.convert("RGB"), "RGB"


def _temporary(directory: Path, name: str) -> tuple[int, Path]:
    """A new file beside the output, created with mode 0666 for the kernel to take the umask
    from, as a plain open() would (reading the umask would mean setting it, process-wide)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(target: str, data: bytes, force: bool = False) -> None:
    """Write bytes to a file (temporary + rename) or to stdout for '-'."""
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = Path(target)
    if path.is_dir():
        raise LrcodecError(f"output {target} is a directory")
    if path.exists() and not force:
        raise LrcodecError(f"output {target} exists (use --force to overwrite)")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise LrcodecError(f"output directory {directory} does not exist")
    try:
        fd, tmp = _temporary(directory, path.name)
    except OSError as e:
        raise LrcodecError(f"cannot write to {directory}: {e.strerror or e}") from None
    try:
        if path.exists():  # a replaced file keeps its mode
            os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


METADATA_CHOICES = ("all", "none", "icc", "exif", "xmp")
INFO_KEYS = {"icc": "icc_profile", "exif": "exif", "xmp": "xmp"}  # a metadata kind's key in a PIL image's info
_ORIENTATION = 0x0112


def image_metadata(image, keep: str = "all") -> dict[str, bytes]:
    """The ICC profile, EXIF and XMP of an opened image (``open_image``: orientation applied),
    those ``keep`` names: all, none, or kinds joined by commas ("icc,exif"). The EXIF's
    orientation is set to 1, since the pixels are upright."""
    kinds = {"all": ("icc", "exif", "xmp"), "none": ()}.get(keep)
    if kinds is None:
        kinds = tuple(keep.split(","))
    unknown = [k for k in kinds if k not in METADATA_CHOICES[2:]]
    if unknown:
        raise LrcodecError(f"unknown metadata kind {unknown[0]!r} (choose from {', '.join(METADATA_CHOICES)})")
    found = {"icc": image.info.get("icc_profile"), "exif": image.info.get("exif"),
             "xmp": image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")}
    if found["exif"] and "exif" in kinds:
        from PIL import Image

        exif = Image.Exif()
        try:
            exif.load(found["exif"])
            exif[_ORIENTATION] = 1
            found["exif"] = exif.tobytes()
        except Exception as e:  # Pillow raises several kinds for a broken EXIF block
            warnings.warn(f"EXIF not kept: it cannot be read ({type(e).__name__})", stacklevel=2)
            found["exif"] = None
    if isinstance(found["xmp"], str):
        found["xmp"] = found["xmp"].encode()
    from .format.bitstream import METADATA_CAP

    for kind in kinds:
        if found[kind] and len(found[kind]) > METADATA_CAP:
            warnings.warn(f"{kind} not kept: {len(found[kind])} bytes exceed the format's cap of {METADATA_CAP}",
                          stacklevel=2)
            found[kind] = None
    return {k: bytes(found[k]) for k in kinds if found[k]}


def _metadata_options(image, fmt: str) -> dict:
    """Save keywords that write a decoded image's metadata (``info``: icc_profile, exif, xmp)
    into the formats that carry them: PNG, JPEG, WebP, AVIF and TIFF."""
    from PIL import PngImagePlugin, TiffImagePlugin

    icc, exif, xmp = (image.info.get(k) for k in ("icc_profile", "exif", "xmp"))
    if fmt not in ("PNG", "JPEG", "WEBP", "AVIF", "TIFF"):
        return {}
    options = {"icc_profile": icc} if icc else {}
    if fmt == "TIFF":  # EXIF's tags and XMP (tag 700) in the image's own directory
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        if exif:
            from PIL import Image

            parsed = Image.Exif()
            try:
                parsed.load(exif)
            except Exception:  # a broken EXIF block (Pillow raises several kinds) is not written
                parsed = {}
            for tag, value in parsed.items():
                tags[tag] = value
        if xmp:
            tags[700] = xmp
        return {**options, "tiffinfo": tags} if len(tags) else options
    if exif:
        options["exif"] = exif
    if xmp and fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
        options["pnginfo"] = info
    elif xmp:
        options["xmp"] = xmp
    return options


ALPHA_FORMATS = ("PNG", "WEBP", "AVIF", "TIFF")  # the outputs that hold an alpha channel


def image_bytes(image, target: str) -> bytes:
    """Encode a decoded image in the format its target name asks for (PNG by default), with the
    metadata its ``info`` holds where the format carries it; alpha only into ALPHA_FORMATS."""
    from PIL import Image

    suffix = Path(target).suffix.lower() if target != "-" else ".png"
    Image.preinit()  # PNG, JPEG, BMP, GIF, PPM: no need to import every plugin (0.09 s) for them
    fmt = Image.EXTENSION.get(suffix or ".png") or Image.registered_extensions().get(suffix)
    if fmt is None:
        raise LrcodecError(f"unknown image format for output {target}")
    if image.mode in ("RGBA", "LA") and fmt not in ALPHA_FORMATS:
        raise LrcodecError(f"the image has an alpha channel, which {fmt} cannot hold: write PNG, WebP, AVIF or "
                           "TIFF, or pass --drop-alpha to write the colours only")
    buf = io.BytesIO()
    # zlib level 1 for PNG: a 12 MP decode writes in 0.8 s instead of 3.9 s, for 11 % more bytes
    options = {"compress_level": 1} if fmt == "PNG" else {}
    try:
        options.update(_metadata_options(image, fmt))
        image.save(buf, format=fmt, **options)
    except (OSError, KeyError, ValueError) as e:
        raise LrcodecError(f"cannot write {fmt} output: {e}") from None
    return buf.getvalue()
