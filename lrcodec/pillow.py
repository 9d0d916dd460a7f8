"""Pillow reads and writes lrcodec files: after ``import lrcodec.pillow`` (or ``register()``),
``Image.open("photo.lrc")`` gives the decoded image and ``im.save("out.lrc", quality=3)`` encodes.

Opening reads and validates the header only: the size, the mode (RGBA, or LA for grey, where
the file has alpha) and the metadata (``info``'s ``icc_profile``, ``exif`` and ``xmp``, so
``getexif()`` works) are known at once, and the pixels are decoded on ``load()`` (by the
decoder ``lrcodec decode`` uses: without torch for a shipped model). ``save`` takes the
encode's settings as keywords (``lrcodec.settings.EncodeSettings``: ``quality``, ``model``,
``effort``, ``uq``, ``seed``, ...; the dataclass's defaults otherwise, so effort 0, the plain
encode). Errors are Pillow's kinds: a damaged file fails to open, an
image lrcodec cannot code fails to save, each with lrcodec's one-line reason.
"""

from __future__ import annotations

from dataclasses import fields

from PIL import Image, ImageFile

from .errors import LrcodecError
from .format import bitstream
from .imageio import INFO_KEYS
from .settings import EncodeSettings

FORMAT = "LRC"
_SETTINGS = {f.name for f in fields(EncodeSettings)}


def _accept(prefix: bytes) -> bool:
    return prefix[:3] == bitstream.MAGIC


class LrcImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "lrcodec learned image"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            header = bitstream.parse_header(data)
        except LrcodecError as e:
            raise SyntaxError(str(e)) from None
        try:
            records = bitstream.records(data, header)
        except LrcodecError as e:
            raise SyntaxError(str(e)) from None
        self._data = data
        self._size = (header.width, header.height)
        self._mode = header.mode + ("A" if "alpha" in records else "")  # RGBA or LA: Decoded.image's
        self.info["lrcodec"] = header.describe()
        metadata = {INFO_KEYS[kind]: raw for kind, raw in records.items() if kind in INFO_KEYS}
        self.info.update(metadata)  # as Pillow's readers keep them
        self.tile = []

    def load(self):
        if self._im is None and getattr(self, "_data", None) is not None:
            from .codec import decode_image

            try:
                image = decode_image(self._data)
            except LrcodecError as e:
                raise OSError(str(e)) from None
            self.im = image.im
            self._data = None  # decoded: the bytes are not needed again
        return Image.Image.load(self)


def _save(im, fp, filename) -> None:
    from .encoder import encode

    options = {k: v for k, v in im.encoderinfo.items() if k in _SETTINGS}
    try:
        outcome = encode(im, EncodeSettings(**options))
    except LrcodecError as e:
        raise OSError(f"cannot write {im.mode} image as LRC: {e}") from None
    fp.write(outcome.data)


def register() -> None:
    """Teach Pillow the format (done on import; calling it again changes nothing)."""
    Image.register_open(FORMAT, LrcImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".lrc")
    Image.register_mime(FORMAT, "image/x-lrcodec")


register()
