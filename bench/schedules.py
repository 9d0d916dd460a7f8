"""How fast refinement converges: learning-rate and temperature schedules at small budgets.

    python bench/schedules.py                       # 4 full Kodak images, shipped q3
    python bench/schedules.py --images 6 --models lrc-mshp-q1,lrc-mshp-q3,lrc-mshp-q6

For each image: the plain encode's true R-D loss, then SSL refinement with the reference
settings (lr 0.005, T = exp(-0.001 t), 500 iterations; the SGA+ paper's) and with candidate
schedules at 25-200 iterations. The gain of a run is the relative drop of the real file's R-D
loss (real bytes, real decoded pixels) against the plain encode. Writes
bench/results/refine-schedules.json; resumes from it (a finished run is not redone).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lrcodec import codec
from lrcodec.imageio import open_image, read_bytes
from lrcodec.models import load_model
from lrcodec.learn.refine import RefineSettings, file_loss, refine_image

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ["kodim01.png", "kodim08.png", "kodim15.png", "kodim22.png", "kodim04.png", "kodim19.png"]

# name -> RefineSettings fields (the loop is otherwise the library's default).
CANDIDATES = {
    "reference-500": dict(iterations=500),
    "reference-100": dict(iterations=100),
    **{f"lr{lr}-c{c}-{n}": dict(iterations=n, lr=lr, decay=c / n, lr_drop=0.8)
       for n in (100,) for lr in (0.01, 0.02, 0.04) for c in (1.0, 2.0, 3.0)},
    # second round, around the best of the first (lr 0.02, c 1)
    "lr0.02-c0.5-100": dict(iterations=100, lr=0.02, decay=0.005, lr_drop=0.8),
    "lr0.02-c1.0-100-nodrop": dict(iterations=100, lr=0.02, decay=0.01),
    "lr0.02-c1.0-100-patience3": dict(iterations=100, lr=0.02, decay=0.01, lr_drop=0.8, patience=3),
    **{f"lr{lr}-c1.0-{n}": dict(iterations=n, lr=lr, decay=1 / n, lr_drop=0.8)
       for n, lr in ((25, 0.02), (25, 0.04), (50, 0.02), (50, 0.04), (200, 0.01), (200, 0.02), (500, 0.01))},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--models", default="lrc-mshp-q3")
    ap.add_argument("--candidates", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--extra", default=None, help='JSON {name: settings} of more candidates')
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "refine-schedules.json"))
    args = ap.parse_args()

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results.setdefault("machine", {"cpu": platform.processor() or platform.machine(),
                                   "threads": torch.get_num_threads(), "torch": torch.__version__})
    runs = results.setdefault("runs", {})
    candidates = dict(CANDIDATES, **(json.loads(args.extra) if args.extra else {}))
    names = args.candidates.split(",") if args.candidates else list(candidates)
    for model_name in args.models.split(","):
        model = load_model(model_name)
        for image_name in IMAGES[: args.images]:
            path = Path(args.data) / image_name
            image = open_image(read_bytes(str(path)), image_name).convert("RGB")
            x = codec.image_to_tensor(image)
            for name in names:
                key = f"{model_name}/{image_name}/{name}"
                if key in runs:
                    continue
                settings = RefineSettings(**candidates[name])
                t0 = time.perf_counter()
                r = refine_image(image, model, settings)
                seconds = time.perf_counter() - t0
                base_loss = file_loss(r.base, x, model.card["lmbda"], model)[0]
                loss = file_loss(r.encoded, x, model.card["lmbda"], model)[0]
                runs[key] = {"settings": candidates[name], "base_loss": base_loss, "loss": loss,
                             "gain_pct": 100 * (base_loss - loss) / base_loss, "bpp": r.encoded.bpp,
                             "base_bpp": r.base.bpp, "psnr": r.psnr, "base_psnr": r.base_psnr,
                             "seconds": seconds, "s_per_iteration": r.seconds_per_iteration,
                             "iterations_run": r.iterations, "history": [list(h) for h in r.history]}
                print(f"{key}: gain {runs[key]['gain_pct']:.2f} % in {seconds:.1f} s", flush=True)
                out.write_text(json.dumps(results, indent=1) + "\n")
    summary = {}
    for key, run in runs.items():
        summary.setdefault(key.rsplit("/", 1)[1], []).append(run["gain_pct"])
    results["mean_gain_pct"] = {k: sum(v) / len(v) for k, v in summary.items()}
    out.write_text(json.dumps(results, indent=1) + "\n")
    for k, v in sorted(results["mean_gain_pct"].items(), key=lambda kv: -kv[1]):
        print(f"{k:24} {v:6.2f} %  ({len(summary[k])} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
