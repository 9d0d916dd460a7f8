"""Surrogate comparison: one small configuration trained for the same steps with each
quantization surrogate, evaluated on Kodak with real bitstreams (and with universal
quantization for `noise`, `uq` and `soft-round`, and soft-mean reconstruction for `soft-round`).
Writes bench/results/surrogates.json.

    python bench/surrogates.py                       # defaults below
    python bench/surrogates.py --steps 3000 --images 24
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from lrcodec.evaluate import evaluate_image
from lrcodec.imageio import open_image, read_bytes
from lrcodec.models import load_model
from lrcodec.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
SURROGATES = ["noise", "mixed", "ste", "uq", "soft-round", "sua"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--M", type=int, default=48)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lmbda", type=float, default=0.0067)
    ap.add_argument("--images", type=int, default=6, help="Kodak images, every 4th (kodim01, 05, ...)")
    ap.add_argument("--surrogates", default=",".join(SURROGATES))
    ap.add_argument("--work", default=str(ROOT / "runs" / "surrogates"))
    args = ap.parse_args()

    kodak = sorted(p for p in Path(args.kodak).iterdir() if p.suffix == ".png")[::4][: args.images]
    images = [(p.name, open_image(read_bytes(str(p)), p.name)) for p in kodak]
    table = {}
    for surrogate in args.surrogates.split(","):
        out = Path(args.work) / f"s-{surrogate}"
        cfg = TrainConfig(data=args.train_data, out=str(out), lmbda=args.lmbda, N=args.N, M=args.M,
                          steps=args.steps, batch_size=args.batch_size, crop=args.crop, lr=1e-3,
                          surrogate=surrogate, checkpoint_every=args.steps, seed=0,
                          checkpoint_dir=str(Path(args.work) / "runs"))
        ckpt = Path(cfg.checkpoint_dir) / out.name / "checkpoint.pt"
        done = ckpt.exists() and torch.load(ckpt, weights_only=False)["step"] >= args.steps
        if not done:
            train(cfg, resume=str(ckpt) if ckpt.exists() else None)
        model = load_model(str(out.with_suffix(".safetensors")))
        variants = {"": {}}
        if surrogate in ("uq", "soft-round", "noise"):
            variants[" +UQ coding"] = {"uq": True}
        if surrogate == "soft-round":  # decode with the conditional mean r_alpha at the final alpha
            variants[" +UQ soft-mean"] = {"reconstruction": "soft-mean", "soft_alpha": round(cfg.alpha_max)}
        for suffix, coding in variants.items():
            pts = [evaluate_image(im, n, model, **coding) for n, im in images]
            bpp = float(np.mean([p.bpp for p in pts]))
            mse = float(np.mean([10 ** (-p.psnr / 10) for p in pts]))  # per-image MSE of [0, 1] images
            psnr = float(np.mean([p.psnr for p in pts]))
            label = surrogate + suffix
            table[label] = {"bpp": bpp, "psnr": psnr, "rd_loss": args.lmbda * 255**2 * mse + bpp}
            print(f"{label:22} bpp {bpp:.4f} PSNR {psnr:.2f} R-D loss {table[label]['rd_loss']:.4f}", file=sys.stderr)

    result = {
        "command": "python bench/surrogates.py " + " ".join(sys.argv[1:]),
        "config": {k: v for k, v in vars(args).items() if k not in ("work",)},
        "kodak_images": [n for n, _ in images],
        "results": table,
        "best_rd_loss": min(table, key=lambda k: table[k]["rd_loss"]),
        "note": "R-D loss = lambda*255^2*MSE + bpp from real files and real 8-bit pixels (lower is better); "
                "MSE averaged over images.",
    }
    path = ROOT / "bench" / "results" / "surrogates.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
