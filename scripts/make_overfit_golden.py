"""Write the overfitted family's golden files (tests/golden/overfit-*.lrc, their decoded PNGs
and overfit.json with the digests they must decode to): one small file per profile.

Run once per new profile (new profiles get new files); never rerun to make a failing golden
test pass: a failure means files users already have would decode differently.

    .venv/bin/python scripts/make_overfit_golden.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import photo_like  # noqa: E402

from lrcodec import codec  # noqa: E402
from lrcodec.app.probe import grid_digest, pixel_digest  # noqa: E402
from lrcodec.format.overfit import PROFILES  # noqa: E402
from lrcodec.learn.overfit import encode_overfit  # noqa: E402
from lrcodec.settings import OverfitSettings  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
IMAGE = dict(width=80, height=48, seed=21)  # as scripts/make_golden.py's: padding and cropping pinned too
ITERATIONS = 300


def main() -> None:
    manifest_path = GOLDEN / "overfit.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    image = photo_like(**IMAGE)
    for name in PROFILES:
        file = f"{name}.lrc"
        if file in manifest:
            continue  # pinned: never rewritten
        result = encode_overfit(image, OverfitSettings(profile=name, iterations=ITERATIONS, lmbda=0.013))
        (GOLDEN / file).write_bytes(result.data)
        decoded = codec.decode_latents(result.data)
        decoded.image().save(GOLDEN / f"{file}.png")
        manifest[file] = {"profile": name, "model_id": decoded.header.model_id.hex(), "image": IMAGE,
                          "iterations": ITERATIONS, "bytes": len(result.data), "psnr": round(result.psnr, 3),
                          "symbols_sha256": grid_digest(decoded.latents), "pixels_sha256": pixel_digest(decoded.pixels)}
        print(file, len(result.data), "bytes")
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")


if __name__ == "__main__":
    main()
