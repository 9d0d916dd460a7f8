"""What the latent width leaves on the table: each shipped model's PSNR with y quantized as the
coder sends it, and with y fed to the synthesis unquantized (the transform's own ceiling, at any
rate). Where the two are close, more training or a larger lambda cannot buy much more quality
at this M; docs/training.md uses this to decide which models to widen.

    python bench/ceiling.py                 # the first 6 Kodak images, every shipped model
    python bench/ceiling.py --images 24
    LRCODEC_MODELS=DIR python bench/ceiling.py --out ...   # another model set
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lrcodec import codec
from lrcodec.app.evaluate import collect_images, psnr
from lrcodec.imageio import open_image, read_bytes
from lrcodec.models import load_model, shipped_models

ROOT = Path(__file__).resolve().parent.parent


def psnr_of(x_hat, image) -> float:
    decoded = codec.tensor_to_image(x_hat[..., : image.height, : image.width])
    return psnr(np.asarray(image.convert("RGB")), np.asarray(decoded))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--images", type=int, default=6, help="the first N images, sorted by name")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ceiling.json"))
    args = ap.parse_args()
    paths = collect_images([args.data])[: args.images]
    images = [open_image(read_bytes(p), p) for p in paths]
    env = os.environ.get("LRCODEC_MODELS", "")
    rows = []
    for card in shipped_models():
        name, N, M = card["name"], card["N"], card["M"]
        model = load_model(name)
        quantized, unquantized = [], []
        for image in images:
            x, _ = codec.prepare_image(image)
            y, z = codec.analyse(model, x)
            q = codec.quantize_latents(model, y, z)
            with torch.no_grad():
                quantized.append(psnr_of(model.net.g_s(q.y_hat), image))
                unquantized.append(psnr_of(model.net.g_s(y), image))
        rows.append({"model": name, "N": N, "M": M, "psnr_quantized": statistics.mean(quantized),
                     "psnr_unquantized": statistics.mean(unquantized)})
        print(f"{name:14} M={M:<4} quantized {rows[-1]['psnr_quantized']:.2f} dB  "
              f"unquantized {rows[-1]['psnr_unquantized']:.2f} dB", flush=True)
    result = {"images": [Path(p).name for p in paths], "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": " ".join([f"LRCODEC_MODELS={env}"] * bool(env) + ["python bench/ceiling.py", *sys.argv[1:]]),
              "models": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
