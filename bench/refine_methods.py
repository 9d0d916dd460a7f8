"""Refinement benchmark: base encode vs SGA+/SGA/STE/noise refinement, real file sizes.

    python bench/refine_methods.py      # 2 images (256x256 centre crops), 3 models, 7 methods, 500 iterations
    python bench/refine_methods.py --images 24 --crop 0 --models all --methods ste,noise,atanh,linear,cosine,ssl,linear-3c,ssl-3c

For every image and shipped model: the plain encode, then each method; bpp from real files,
PSNR from real decoded pixels; BD-rate of every method against the base encode over the
models' rate points; true loss against iterations; seconds per iteration on a full
768x512 image with every model, and on that full image with the middle model, SSL's gain
after 100/250/500/1000 iterations. Writes bench/results/refine-methods[-NAME].json and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lrcodec import codec
from lrcodec.app.evaluate import bd_rate, psnr
from lrcodec.imageio import open_image, read_bytes
from lrcodec.models import load_model, shipped_models
from lrcodec.learn.refine import refine_image

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["ste", "noise", "atanh", "linear", "cosine", "ssl", "linear-3c", "ssl-3c"]


def run_method(image, model, method: str, iterations: int, seed: int) -> dict:
    three = method.endswith("-3c")
    t0 = time.perf_counter()
    r = refine_image(image, model, method=method.removesuffix("-3c"), three_class=three,
                     iterations=iterations, seed=seed, eval_every=10)
    seconds = time.perf_counter() - t0
    decoded = codec.decode_image(r.encoded.data, model)
    return {
        "bpp": r.encoded.bpp, "psnr": psnr(np.asarray(image.convert("RGB")), np.asarray(decoded)),
        "kept_base": r.kept_base, "seconds": seconds, "s_per_iteration": r.seconds_per_iteration,
        "history": [list(h) for h in r.history],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--images", type=int, default=2, help="first N of a fixed order (kodim01, 08, 15, ...)")
    ap.add_argument("--crop", type=int, default=256, help="centre crop side (0: full image)")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--methods", default="ste,noise,atanh,linear,cosine,ssl,ssl-3c", help=f"any of {','.join(METHODS)}")
    ap.add_argument("--models", default="lrc-mshp-q1,lrc-mshp-q3,lrc-mshp-q5",
                    help="'all' or comma-separated shipped model names")
    ap.add_argument("--speed-iterations", type=int, default=20, help="iterations timed on a full image")
    ap.add_argument("--full-iterations", type=int, default=1000,
                    help="SSL iterations on the full image with the middle model (gain curve)")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()

    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() == ".png")
    order = files[0::7] + files[3::7] + files[5::7]  # spread over the set, fixed
    chosen = order[: args.images]
    images = []
    for p in chosen:
        im = open_image(read_bytes(str(p)), p.name).convert("RGB")
        if args.crop:
            left, top = (im.width - args.crop) // 2, (im.height - args.crop) // 2
            im = im.crop((left, top, left + args.crop, top + args.crop))
        images.append((p.name, im))
    names = [c["name"] for c in shipped_models()] if args.models == "all" else args.models.split(",")
    models = [load_model(n) for n in names]
    methods = args.methods.split(",")

    results: dict = {}
    for model in models:
        for img_name, image in images:
            base = codec.encode_image(image, model)
            decoded = codec.decode_image(base.data, model)
            entry = {"base": {"bpp": base.bpp, "psnr": psnr(np.asarray(image), np.asarray(decoded))}}
            for method in methods:
                entry[method] = run_method(image, model, method, args.iterations, seed=0)
                print(f"{model.name} {img_name} {method}: {entry['base']['bpp']:.4f} -> {entry[method]['bpp']:.4f} bpp, "
                      f"{entry['base']['psnr']:.2f} -> {entry[method]['psnr']:.2f} dB", file=sys.stderr)
            results.setdefault(model.name, {})[img_name] = entry

    # Mean per model and method, then BD-rate of each method against base over the models.
    curves = {}
    for method in ["base"] + methods:
        pts = []
        for model in models:
            per = [results[model.name][n][method] for n, _ in images]
            pts.append((float(np.mean([p["bpp"] for p in per])), float(np.mean([p["psnr"] for p in per]))))
        pts.sort()
        curves[method] = {"bpp": [p[0] for p in pts], "psnr": [p[1] for p in pts]}
    bd = {m: bd_rate(curves["base"]["bpp"], curves["base"]["psnr"], curves[m]["bpp"], curves[m]["psnr"])
          for m in methods}

    def gains(history) -> dict:
        """True-loss reduction relative to iteration 0, best seen by iteration t."""
        l0 = history[0][1]
        return {t: (l0 - min(x[1] for x in history if x[0] <= t)) / l0
                for t in (100, 250, 500, 1000) if t <= history[-1][0]}

    gain_at = {}
    for method in methods:
        rows = [gains(results[model.name][n][method]["history"]) for model in models for n, _ in images]
        gain_at[method] = {t: float(np.mean([r[t] for r in rows])) for t in rows[0]}

    speed = {}
    full = open_image(read_bytes(str(files[0])), files[0].name)
    mid = models[len(models) // 2]
    for model in models:
        its = args.full_iterations if model is mid else args.speed_iterations
        r = refine_image(full, model, method="ssl", iterations=its, eval_every=10)
        speed[model.name] = {"image": files[0].name, "size": list(full.size), "iterations": its,
                             "s_per_iteration": r.seconds_per_iteration, "threads": torch.get_num_threads()}
        if model is mid:
            speed[model.name] |= {"ssl_true_loss_reduction": gains(r.history), "bpp": [r.base.bpp, r.encoded.bpp],
                                  "psnr": [r.base_psnr, r.psnr]}

    name = "refine-methods" + (f"-{args.name}" if args.name else "")
    out = {
        "command": "python bench/refine_methods.py " + " ".join(sys.argv[1:]),
        "images": [n for n, _ in images], "crop": args.crop, "iterations": args.iterations,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "models": names, "model_ids": {m.name: m.model_id.hex() for m in models},
        "curves": curves, "bd_rate_vs_base_pct": bd,
        "true_loss_reduction_at_iterations": gain_at, "speed_full_image": speed, "results": results,
    }
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for method, c in curves.items():
        axes[0].plot(c["bpp"], c["psnr"], "o-" if method != "base" else "k--", label=method)
    axes[0].set(xlabel="bpp (real files)", ylabel="PSNR (dB)", title="refinement R-D (mean over images)")
    m0, n0 = models[len(models) // 2].name, images[0][0]
    for method in methods:
        h = np.array(results[m0][n0][method]["history"])
        axes[1].plot(h[:, 0], h[:, 1], label=method)
    axes[1].set(xlabel="iteration", ylabel="true R-D loss", title=f"{m0}, {n0}")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results_dir / f"{name}.png", dpi=110)
    print(json.dumps({"bd_rate_vs_base_pct": bd, "gain": gain_at, "speed": speed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
