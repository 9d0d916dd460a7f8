"""`make demo`: encode and decode a sample image with the shipped default model.

Uses the first Kodak image from ../shared/data when it is there, otherwise a generated
image, and prints sizes, bpp and PSNR of the real round trip through files.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np


def sample_image(out_dir: Path) -> Path:
    kodak = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kodak" / "kodim23.png"
    if kodak.exists():
        return kodak
    from PIL import Image

    yy, xx = np.mgrid[0:512, 0:768]
    arr = np.stack([128 + 100 * np.sin(xx / (40 + 10 * c)) * np.cos(yy / 30) for c in range(3)], -1)
    path = out_dir / "generated.png"
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path)
    return path


def main() -> int:
    from PIL import Image

    from .codec import decode_image, encode_image
    from .models import load_model

    out_dir = Path("out")
    out_dir.mkdir(exist_ok=True)
    src = sample_image(out_dir)
    image = Image.open(src).convert("RGB")
    model = load_model()
    t0 = time.perf_counter()
    result = encode_image(image, model)
    t1 = time.perf_counter()
    lrc = out_dir / (src.stem + ".lrc")
    lrc.write_bytes(result.data)
    decoded = decode_image(lrc.read_bytes())
    t2 = time.perf_counter()
    png = out_dir / (src.stem + ".decoded.png")
    decoded.save(png)
    mse = np.mean((np.asarray(image, np.float64) - np.asarray(decoded, np.float64)) ** 2)
    print(f"model    {model.name} (lambda {model.card.get('lmbda')})")
    print(f"input    {src} ({image.width}x{image.height})")
    print(f"encoded  {lrc}: {len(result.data)} bytes, {result.bpp:.4f} bpp, {t1 - t0:.2f} s")
    print(f"decoded  {png}: PSNR {10 * math.log10(255**2 / mse):.2f} dB, {t2 - t1:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
