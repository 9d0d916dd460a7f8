"""The channel-context family against the mean-scale models it was built on, in one run.

For every channel-context model in models/ and the mean-scale model its card names as base:
Kodak with real files (bpp from sizes, PSNR from decoded 8-bit pixels), BD-rate of the
context set against the base set over the rate points both have, median encode and decode
seconds of the whole command path on one image, and the gain of refinement at the default
effort on a few images in each family (the same relative gain is the goal).

    python bench/families.py [--refine-images 4]                  # the context models in models/
    python bench/families.py --pair CONTEXT BASE [--pair ...]      # models by name or path
    -> bench/results/families.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lrcodec import codec  # noqa: E402
from lrcodec.app.evaluate import bd_rate, psnr  # noqa: E402
from lrcodec.imageio import open_image, read_bytes  # noqa: E402
from lrcodec.metrics import bits_per_pixel, rd_loss  # noqa: E402
from lrcodec.models import load_model, shipped_models  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def kodak_point(model, images, lmbda: float) -> dict:
    """Mean bpp (real files), PSNR (decoded 8-bit pixels) and R-D loss at ``lmbda``."""
    bpps, psnrs = [], []
    for _, image in images:
        data = codec.encode_image(image, model).data
        decoded = np.asarray(codec.decode_image(data, model).convert("RGB"))
        bpps.append(bits_per_pixel(8 * len(data), image.width * image.height))
        psnrs.append(psnr(np.asarray(image.convert("RGB")), decoded))
    mse = np.mean([10 ** (-p / 10) for p in psnrs])
    return {"bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs)),
            "rd_loss": float(rd_loss(lmbda, mse, np.mean(bpps)))}


def timings(model, image, repeats: int) -> dict:
    enc, dec = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        data = codec.encode_image(image, model).data
        t1 = time.perf_counter()
        codec.decode_image(data, model)
        enc.append(t1 - t0)
        dec.append(time.perf_counter() - t1)
    return {"encode_s": statistics.median(enc), "decode_s": statistics.median(dec)}


def refinement_gain(model, images) -> dict:
    """Mean relative R-D loss reduction of the default effort against the plain encode (real files)."""
    from lrcodec.learn.refine import file_loss, refine_image
    from lrcodec.settings import DEFAULT_EFFORT, effort_settings

    gains, seconds = [], []
    for _, image in images:
        t0 = time.perf_counter()
        result = refine_image(image, model, effort_settings(DEFAULT_EFFORT))
        seconds.append(time.perf_counter() - t0)
        x, _ = codec.prepare_image(image)
        x = x[:, :, : image.height, : image.width]
        lmbda = model.card["lmbda"]
        base, refined = file_loss(result.base, x, lmbda, model)[0], file_loss(result.encoded, x, lmbda, model)[0]
        gains.append(100 * (1 - refined / base))
    return {"rd_loss_gain_pct": float(np.mean(gains)), "seconds_per_image": float(np.mean(seconds))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--refine-images", type=int, default=4, help="images for the refinement gain (0: skip)")
    ap.add_argument("--pair", nargs=2, action="append", metavar=("CONTEXT", "BASE"),
                    help="a channel-context model and the mean-scale model to compare it with")
    args = ap.parse_args()
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() == ".png")
    if not files:
        print(f"no PNG images in {args.data}", file=sys.stderr)
        return 1
    images = [(p.name, open_image(read_bytes(str(p)), p.name)) for p in files]
    names = args.pair or [(c["name"], c["training"]["base"]) for c in shipped_models(current_only=False)
                          if c.get("arch") == "channel-context"]
    if not names:
        print("no channel-context models in models/ (or give --pair CONTEXT BASE)", file=sys.stderr)
        return 1
    pairs = []
    for context_name, base_name in names:
        context, base = load_model(context_name), load_model(base_name)
        row = {"context": context_name, "base": base_name, "lmbda": context.card.get("lmbda"),
               "context_shape": context.card.get("context"), "context_model_id": context.model_id.hex(),
               "base_model_id": base.model_id.hex()}
        for label, model in (("context", context), ("base", base)):
            row[label + "_kodak"] = kodak_point(model, images, row["lmbda"])
            row[label + "_speed"] = timings(model, images[0][1], args.repeats)
            if args.refine_images:
                row[label + "_refinement"] = refinement_gain(model, images[: args.refine_images])
            print(f"  {model.name}: {row[label + '_kodak']}", file=sys.stderr)
        row["rd_loss_change_pct"] = 100 * (row["context_kodak"]["rd_loss"] / row["base_kodak"]["rd_loss"] - 1)
        row["decode_time_ratio"] = row["context_speed"]["decode_s"] / row["base_speed"]["decode_s"]
        row["encode_time_ratio"] = row["context_speed"]["encode_s"] / row["base_speed"]["encode_s"]
        pairs.append(row)
    pairs.sort(key=lambda r: r["lmbda"])
    curve = {label: {k: [r[label + "_kodak"][k] for r in pairs] for k in ("bpp", "psnr")} for label in ("context", "base")}
    result = {
        "command": "python bench/families.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "images": len(images), "torch_threads": torch.get_num_threads(),
        "pairs": pairs, "curves": curve,
        # Over a set of rate points only: pairs at one lambda are separate comparisons.
        "bd_rate_context_vs_base_pct": (bd_rate(curve["base"]["bpp"], curve["base"]["psnr"],
                                                curve["context"]["bpp"], curve["context"]["psnr"])
                                        if len({r["lmbda"] for r in pairs}) == len(pairs) >= 2 else None),
        "rd_loss_note": "R-D loss = lambda 255^2 MSE + bpp from real files; relative gain per image, averaged",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "families.json").write_text(json.dumps(result, indent=1) + "\n")
    for r in pairs:
        c, b = r["context_kodak"], r["base_kodak"]
        print(f"{r['context']:14} {c['bpp']:.4f} bpp {c['psnr']:.2f} dB | {r['base']:14} {b['bpp']:.4f} bpp "
              f"{b['psnr']:.2f} dB | R-D loss {r['rd_loss_change_pct']:+.2f} % | decode x{r['decode_time_ratio']:.2f}")
    if result["bd_rate_context_vs_base_pct"] is not None:
        print(f"BD-rate context vs base: {result['bd_rate_context_vs_base_pct']:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
