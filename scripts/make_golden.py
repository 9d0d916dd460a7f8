"""Write the golden files of tests/golden/: one small .lrc per shipped model and option (plain,
--uq, refined) and golden.json with the digests they must decode to.

Run once per release of a model (new names get new files); never rerun to make a failing
golden test pass: a failure means files users already have would decode differently.

    .venv/bin/python scripts/make_golden.py [MODEL...]
    .venv/bin/python scripts/make_golden.py --metadata    # the format-3 file: q3's plain file with METADATA
    .venv/bin/python scripts/make_golden.py --alpha       # the format-5 files: q3's plain encode with alpha
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import photo_like  # noqa: E402

from lrcodec import codec, models  # noqa: E402
from lrcodec.app.probe import latent_digest, metadata_digest, pixel_digest, symbol_digest  # noqa: E402
from lrcodec.learn.refine import refine_image  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
IMAGE = dict(width=80, height=48, seed=21)  # odd size: padding and cropping are pinned too
METADATA_FILE = "lrc-mshp-q3-metadata.lrc"
ALPHA_FILES = {"lrc-mshp-q3-alpha.lrc": "alpha", "lrc-mshp-q3-alpha-constant.lrc": "alpha-constant"}  # -> option


def sample_metadata() -> dict[str, bytes]:
    """An sRGB ICC profile, EXIF (make, model, date; orientation 1) and XMP."""
    from PIL import Image, ImageCms

    exif = Image.Exif()
    exif.update({0x010F: "lrcodec", 0x0110: "golden", 0x0132: "2026:12:04 12:00:00", 0x0112: 1})
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="lrcodec"/></rdf:RDF></x:xmpmeta>')
    return {"icc": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(), "exif": exif.tobytes(),
            "xmp": xmp.encode()}


def metadata_golden() -> None:
    """The format-3 golden file: the q3 plain file's symbols with ``sample_metadata``."""
    from lrcodec.format.bitstream import with_metadata

    manifest_path = GOLDEN / "golden.json"
    manifest = json.loads(manifest_path.read_text())
    plain = manifest["lrc-mshp-q3-plain.lrc"]
    metadata = sample_metadata()
    data = with_metadata((GOLDEN / "lrc-mshp-q3-plain.lrc").read_bytes(), metadata)
    (GOLDEN / METADATA_FILE).write_bytes(data)
    decoded = codec.decode_latents(data)
    decoded.image().save(GOLDEN / f"{METADATA_FILE}.png")
    manifest[METADATA_FILE] = {**plain, "option": "metadata", "format_version": decoded.header.version,
                               "bytes": len(data), "metadata_sha256": metadata_digest(metadata),
                               "metadata_bytes": {k: len(v) for k, v in metadata.items()}}
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    print(METADATA_FILE, len(data), "bytes")


def sample_alpha(option: str) -> np.ndarray:
    """The golden image's alpha plane (integer arithmetic: the same everywhere): a disc fading
    out from the centre (every level) beside a fully transparent strip, or 200 everywhere."""
    height, width = IMAGE["height"], IMAGE["width"]
    if option == "alpha-constant":
        return np.full((height, width), 200, np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    alpha = np.clip(255 - ((xx - width // 2) ** 2 + (yy - height // 2) ** 2) // 4, 0, 255).astype(np.uint8)
    alpha[:, :6] = 0
    return alpha


def alpha_golden() -> None:
    """The format-5 golden files (made once, never rewritten): q3's plain encode of the golden
    image with ``sample_alpha``, and alpha_sha256, the digest of the alpha plane (uint8, H x W)."""
    from PIL import Image

    manifest_path = GOLDEN / "golden.json"
    manifest = json.loads(manifest_path.read_text())
    card = next(c for c in models.shipped_models(current_only=False) if c["name"] == "lrc-mshp-q3")
    model = models.load_model(card["name"])
    for name, option in ALPHA_FILES.items():
        if name in manifest or (GOLDEN / name).exists():
            raise SystemExit(f"{name} exists: golden files are never rewritten")
        image = photo_like(**IMAGE)
        image.putalpha(Image.fromarray(sample_alpha(option), "L"))
        data = codec.encode_image(image, model).data
        (GOLDEN / name).write_bytes(data)
        decoded = codec.decode_latents(data)
        assert np.array_equal(decoded.alpha, sample_alpha(option)), name
        decoded.image().save(GOLDEN / f"{name}.png")  # RGBA: its alpha exact, its colours within the float bound
        manifest[name] = {"model": card["name"], "model_id": card["model_id"], "option": option,
                          "format_version": decoded.header.version, "refined": decoded.header.refined,
                          "image": IMAGE, "bytes": len(data), "symbols_sha256": symbol_digest(decoded.latents),
                          "latents_sha256": latent_digest(decoded.latents), "pixels_sha256": pixel_digest(decoded.pixels),
                          "alpha_sha256": pixel_digest(decoded.alpha)}
        print(name, len(data), "bytes")
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")


def main(names: list[str]) -> None:
    manifest_path = GOLDEN / "golden.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    image = photo_like(**IMAGE)
    for card in models.shipped_models(current_only=False):
        if names and card["name"] not in names:
            continue
        model = models.load_model(card["name"])
        results = {
            "plain": codec.encode_image(image, model),
            "uq": codec.encode_image(image, model, uq=True, seed=7),
            "refined": refine_image(image, model, iterations=30, lr=0.02, seed=3).encoded,
        }
        for option, result in results.items():
            name = f"{card['name']}-{option}.lrc"
            (GOLDEN / name).write_bytes(result.data)
            decoded = codec.decode_latents(result.data)
            decoded.image().save(GOLDEN / f"{name}.png")  # pixels may differ by a level elsewhere
            manifest[name] = {"model": card["name"], "model_id": card["model_id"], "option": option,
                              "format_version": decoded.header.version, "refined": decoded.header.refined,
                              "image": IMAGE, "bytes": len(result.data),
                              "symbols_sha256": symbol_digest(decoded.latents),
                              "latents_sha256": latent_digest(decoded.latents),
                              "pixels_sha256": pixel_digest(decoded.pixels)}
            print(name, len(result.data), "bytes", "refined" if decoded.header.refined else "")
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--metadata"]:
        metadata_golden()
    elif sys.argv[1:] == ["--alpha"]:
        alpha_golden()
    else:
        main(sys.argv[1:])
