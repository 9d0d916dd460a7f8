"""`make demo`: the plain encode against the default effort level on a real photograph.

The photograph is scikit-image's "chelsea" (451x300, CC0 by its photographer, Stefan van der
Walt; see lrcodec/samples/README.md). Both files go through real bytes: each is written,
read back, decoded, and its PSNR measured on the decoded 8-bit pixels.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "chelsea.png"


def main() -> int:
    from ..encoder import encode_bytes
    from ..codec import decode_image
    from .evaluate import psnr
    from ..imageio import open_image
    from ..models import load_model
    from ..settings import DEFAULT_EFFORT, EncodeSettings

    out_dir = Path("out")
    out_dir.mkdir(exist_ok=True)
    data = SAMPLE.read_bytes()
    original = np.asarray(open_image(data, SAMPLE.name).convert("RGB"))
    model = load_model()
    print(f"input   {SAMPLE} ({original.shape[1]}x{original.shape[0]}, {len(data)} bytes as PNG)")
    print(f"model   {model.name} (lambda {model.card.get('lmbda')})")
    print(f"{'':7} {'effort':>6} {'bytes':>7} {'bpp':>7} {'PSNR dB':>8} {'encode s':>9} {'decode s':>9}")
    for effort in (0, DEFAULT_EFFORT):
        t0 = time.perf_counter()
        outcome = encode_bytes(data, SAMPLE.name, EncodeSettings(effort=effort))
        t1 = time.perf_counter()
        lrc = out_dir / f"{SAMPLE.stem}.e{effort}.lrc"
        lrc.write_bytes(outcome.data)
        decoded = decode_image(lrc.read_bytes())
        t2 = time.perf_counter()
        decoded.save(out_dir / f"{SAMPLE.stem}.e{effort}.png")
        label = "plain" if effort == 0 else "default"
        print(f"{label:7} {effort:>6} {len(outcome.data):>7} {outcome.row['bpp']:>7.4f} "
              f"{psnr(original, np.asarray(decoded)):>8.2f} {t1 - t0:>9.2f} {t2 - t1:>9.2f}")
    print(f"files   {out_dir}/{SAMPLE.stem}.e*.lrc and their decoded .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
