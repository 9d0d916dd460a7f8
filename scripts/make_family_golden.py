"""Write each architecture's golden files (tests/golden/<arch>-{plain,uq}.lrc, and for a
variable-rate one <arch>-q5.lrc at rate level 4 of a larger image too) with its small test network, and
tests/golden/families.json with the digests they must decode to.

Run once when a family is added; never rewrite an existing entry (a failing golden test means
files already written would decode differently):

    .venv/bin/python scripts/make_family_golden.py ARCH [ARCH...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "families"), str(ROOT)]

from conftest import GOLDEN, photo_like  # noqa: E402
from family_checks import tiny  # noqa: E402

from lrcodec import codec  # noqa: E402
from lrcodec.app.probe import latent_digest, symbol_digest  # noqa: E402


def main(archs: list[str]) -> None:
    path = GOLDEN / "families.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    for arch in archs:
        model = tiny(arch)
        options = [("plain", False, None, (80, 48)), ("uq", True, None, (80, 48))]
        if model.family.rate_levels(model.net):
            options.append(("q5", False, 4, (192, 128)))
        for option, uq, level, size in options:
            name = f"{arch}-{option}.lrc"
            if name in manifest:
                raise SystemExit(f"{name} exists: golden files are never rewritten")
            if level is not None:
                model.set_level(level)
            data = codec.encode_image(photo_like(*size, seed=21), model, uq=uq, seed=5).data
            latents = codec.decode_latents(data, model).latents
            (GOLDEN / name).write_bytes(data)
            manifest[name] = {"arch": arch, "model_id": model.model_id.hex(), "option": option, "bytes": len(data),
                              "symbols_sha256": symbol_digest(latents), "latents_sha256": latent_digest(latents)}
    path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
