"""Write the golden files of tests/golden/: one small .lrc per shipped model and option (plain,
--uq, refined) and golden.json with the digests they must decode to.

Run once per release of a model (new names get new files); never rerun to make a failing
golden test pass: a failure means files users already have would decode differently.

    .venv/bin/python scripts/make_golden.py [MODEL...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import photo_like  # noqa: E402

from lrcodec import codec, models  # noqa: E402
from lrcodec.app.probe import latent_digest, pixel_digest, symbol_digest  # noqa: E402
from lrcodec.learn.refine import refine_image  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
IMAGE = dict(width=80, height=48, seed=21)  # odd size: padding and cropping are pinned too


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
    main(sys.argv[1:])
