"""Decode every golden file of the shipped models and of the overfitted family with the lrcodec this Python has installed
and check its pinned digests (symbols, y_hat and, in format 5, the alpha plane) and its pixels
against the stored PNG within the float bound (its alpha exactly); a format-1 file must decode the same or, without torch, be refused with a
one-line error (as it may be wherever this machine's float networks differ from its encoder's).
Exits non-zero on any failure. Run by ``make test-decoder`` in a fresh
environment holding only lrcodec-decode, where torch must not be importable.

    python scripts/check_golden.py tests/golden [--no-torch]
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lrcodec import codec
from lrcodec.app.probe import grid_digest, latent_digest, metadata_digest, pixel_digest, symbol_digest
from lrcodec.errors import LrcodecError
from lrcodec.format.format1 import NOT_HERE
from lrcodec.metrics import PIXEL_FRACTION, PIXEL_LEVELS


def check(folder: Path, no_torch: bool) -> list[str]:
    failures = []
    manifest = json.loads((folder / "golden.json").read_text())
    for name, expected in sorted(manifest.items()):
        data = (folder / name).read_bytes()
        try:
            decoded = codec.decode_latents(data)
        except LrcodecError as e:
            # format 1: refused where the float networks differ from its encoder's, or without torch
            if not (expected["format_version"] == 1 and (str(e) == NOT_HERE or no_torch and "needs torch" in str(e))):
                failures.append(f"{name}: {e}")
            continue
        symbols, latents = symbol_digest(decoded.latents), latent_digest(decoded.latents)
        if metadata_digest(decoded.metadata) != expected.get("metadata_sha256", metadata_digest({})):
            failures.append(f"{name}: metadata differs")
        if expected["symbols_sha256"] not in (None, symbols):
            failures.append(f"{name}: symbols differ")
        if expected["format_version"] >= 2 and latents != expected["latents_sha256"]:
            failures.append(f"{name}: y_hat differs")
        if expected.get("alpha_sha256") != (None if decoded.alpha is None else pixel_digest(decoded.alpha)):
            failures.append(f"{name}: alpha differs")
        failures += _pixels(folder, name, decoded)
    return failures


def _pixels(folder: Path, name: str, decoded) -> list[str]:
    """The colours within the float bound of the stored PNG's, its alpha (if any) exactly."""
    png = Image.open(folder / f"{name}.png")
    ours = np.asarray(decoded.image().convert("RGB"), np.int16)
    stored = np.asarray(png.convert("RGB"), np.int16)
    if ours.shape != stored.shape or np.abs(ours - stored).max() > PIXEL_LEVELS or np.mean(ours != stored) >= PIXEL_FRACTION:
        return [f"{name}: pixels beyond the float bound"]
    alpha = np.asarray(png.getchannel("A")) if "A" in png.getbands() else None
    if (alpha is None) != (decoded.alpha is None) or (alpha is not None and not np.array_equal(alpha, decoded.alpha)):
        return [f"{name}: alpha differs from the stored PNG's"]
    return []


def check_overfit(folder: Path) -> list[str]:
    """The overfitted family's golden files: their latents exactly, their pixels within the bound."""
    failures = []
    for name, expected in sorted(json.loads((folder / "overfit.json").read_text()).items()):
        try:
            decoded = codec.decode_latents((folder / name).read_bytes())
        except LrcodecError as e:
            failures.append(f"{name}: {e}")
            continue
        if grid_digest(decoded.latents) != expected["symbols_sha256"]:
            failures.append(f"{name}: latents differ")
        failures += _pixels(folder, name, decoded)
    return failures


def main() -> None:
    folder, no_torch = Path(sys.argv[1]), "--no-torch" in sys.argv
    if no_torch and importlib.util.find_spec("torch") is not None:
        sys.exit("torch is importable here")
    failures = check(folder, no_torch) + check_overfit(folder)
    if no_torch and [m for m in sys.modules if m.split(".")[0] in ("torch", "compressai")]:
        failures.append("torch or compressai was imported")
    for line in failures:
        print(line, file=sys.stderr)
    count = sum(len(json.loads((folder / f).read_text())) for f in ("golden.json", "overfit.json"))
    print(f"{count - len(failures)} of {count} golden files as pinned" + (" (no torch)" if no_torch else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
