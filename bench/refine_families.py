"""Refinement's gain per model family: effort-2 refinement (the default) of the first Kodak
images with models of different families trained the same way, measured by real files
(bytes and decoded pixels, ``refine.file_loss``).

    .venv/bin/python bench/refine_families.py MODEL [MODEL...] [--images 6]

MODEL: anything ``--model`` takes (a trained checkpoint, a shipped name).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from PIL import Image  # noqa: E402

from lrcodec import codec  # noqa: E402
from lrcodec.models import load_model  # noqa: E402
from lrcodec.learn.refine import file_loss, refine_image  # noqa: E402
from lrcodec.settings import DEFAULT_EFFORT, effort_settings  # noqa: E402
from refine import image_order, machine  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--passes", type=int, default=None,
                    help="masked passes of the autoregressive relaxed forward (a study; default: the family's)")
    ap.add_argument("--out", default=str(RESULTS / "refine-families.json"))
    args = ap.parse_args()
    from lrcodec.families import autoregressive

    if args.passes:
        autoregressive.PASSES = args.passes
    paths = image_order(Path(args.data))[: args.images]
    rows = []
    for name in args.models:
        model = load_model(name)
        gains, seconds = [], []
        for path in paths:
            image = Image.open(path).convert("RGB")
            result = refine_image(image, model, effort_settings(DEFAULT_EFFORT))
            x = codec.image_to_tensor(image)
            base, refined = (file_loss(r, x, model.card["lmbda"], model)[0] for r in (result.base, result.encoded))
            gains.append(100 * (1 - refined / base))
            seconds.append(result.seconds_per_iteration * result.iterations)
        rows.append({"model": name, "arch": model.arch, "card": {k: model.card.get(k) for k in ("N", "M", "lmbda")},
                     "training": {k: model.card.get("training", {}).get(k) for k in ("steps", "hours")},
                     "rd_loss_gain_pct": gains, "mean_gain_pct": sum(gains) / len(gains),
                     "loop_seconds": seconds})
        print(f"{name:40} {model.arch:22} gain {rows[-1]['mean_gain_pct']:.2f} % "
              f"({', '.join(f'{g:.2f}' for g in gains)})", flush=True)
    report = {"command": "python bench/refine_families.py " + " ".join(sys.argv[1:]), "effort": DEFAULT_EFFORT,
              "autoregressive_passes": autoregressive.PASSES,
              "images": [p.name for p in paths], "machine": machine(), "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
