"""Encode-time tuning on Kodak (issue 44): ``--tune ms-ssim`` against ``--tune psnr`` at effort 2
(MS-SSIM and PSNR BD-rates, and against AVIF 4:4:4 speed 4 measured in the same run), and
``--roi`` masks over a face or object in four images (PSNR inside the mask at the untuned
file's size). Every file is what ``lrcodec encode`` writes (``lrcodec.app.evaluate.evaluate_bytes``).

    python bench/tuning.py --data ../shared/data/kodak            # bench/results/tuning.json
    python bench/tuning.py --data ../shared/data/kodak --part roi  # one part (tune, roi or gain)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from lrcodec.app.batch import Job, execute
from lrcodec.app.evaluate import average_curve, bd_rates, classical_point, collect_images, evaluate_bytes, Point
from lrcodec.imageio import open_image, read_bytes
from lrcodec.settings import EncodeSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "tuning.json"
MASKS = ROOT / "bench" / "masks"  # <image stem>.png: white over the face or object
QUALITIES = (2, 4, 6)
AVIF = "AVIF 4:4:4 speed 4"


def _curve(points: list[dict]) -> dict:
    rows = average_curve([Point(**{k: p[k] for k in Point.__dataclass_fields__}) for p in points])
    return {k: [r[k] for r in rows] for k in ("bpp", "psnr", "ms_ssim")}


def tune_part(files: list[str], jobs: int) -> dict:
    points: dict[str, list[dict]] = {"psnr": [], "ms-ssim": []}
    for tune in points:
        for q in QUALITIES:
            settings = EncodeSettings(quality=q, effort=2, tune=tune)
            for job, outcome in execute([Job(f, "") for f in files], settings, workers=jobs, task=evaluate_bytes):
                if outcome.data is None:
                    raise SystemExit(f"{job.source}: {outcome.row['error']}")
                outcome.row["setting"] = f"q{q}"
                points[tune].append(outcome.row)
                print(tune, q, outcome.row["image"], outcome.row["bytes"], f"{outcome.row['ms_ssim']:.4f}",
                      outcome.row["iterations"], flush=True)
    from lrcodec.app.evaluate import CLASSICAL

    avif = [classical_point(open_image(read_bytes(f), f), Path(f).name, AVIF, s).as_dict()
            for f in files for s in CLASSICAL[AVIF][2]]
    curves = {"psnr": _curve(points["psnr"]), "ms-ssim": _curve(points["ms-ssim"]), AVIF: _curve(avif)}
    return {
        "qualities": list(QUALITIES), "curves": curves,
        "ms-ssim vs psnr": bd_rates(curves["psnr"], curves["ms-ssim"]),
        "psnr vs AVIF": bd_rates(curves[AVIF], curves["psnr"]),
        "ms-ssim vs AVIF": bd_rates(curves[AVIF], curves["ms-ssim"]),
        "points": points,
    }


def _at_size(path: str, mask: str, target: int) -> tuple[dict, float]:
    """The ROI-tuned file whose size is within 1 % of ``target`` bytes: a secant search on
    log lambda (the quality-3 model's own lambda to start)."""
    data = read_bytes(path)
    lo = hi = None
    lmbda = 0.0067
    best = None
    for _ in range(8):
        row = evaluate_bytes(path, data, EncodeSettings(effort=2, roi=mask, lmbda=lmbda)).row
        gap = row["bytes"] / target - 1
        if best is None or abs(gap) < abs(best[0]):
            best = (gap, row, lmbda)
        if abs(gap) <= 0.01:
            break
        if gap > 0:
            hi = (lmbda, gap)
        else:
            lo = (lmbda, gap)
        if lo and hi:  # interpolate log lambda between the brackets
            a, b = math.log(lo[0]), math.log(hi[0])
            lmbda = math.exp(a + (b - a) * (-lo[1]) / (hi[1] - lo[1]))
        else:
            lmbda *= math.exp(-2.5 * gap)  # bytes grow about as lambda^0.4
    return best[1], best[2]


def gain_part(image: str = "kodim04", gains=(9.0, 99.0, 999.0)) -> dict:
    """How far a stronger mask moves PSNR into the region at the same size (``ROI_GAIN``)."""
    import lrcodec.learn.distortion as distortion

    path, mask = str(Path(args.data) / f"{image}.png"), str(MASKS / f"{image}.png")
    target = evaluate_bytes(path, read_bytes(path), EncodeSettings(effort=2)).row["bytes"]
    rows = []
    try:
        for gain in gains:
            distortion.ROI_GAIN = gain
            tuned, lmbda = _at_size(path, mask, target)
            rows.append({"roi_gain": gain, "bytes": tuned["bytes"], "roi_psnr": tuned["roi_psnr"],
                         "psnr": tuned["psnr"], "lmbda": lmbda})
            print(rows[-1], flush=True)
    finally:
        distortion.ROI_GAIN = 9.0
    return {"image": image, "untuned_bytes": target, "gains": rows}


def roi_part() -> dict:
    from lrcodec.app.evaluate import psnr
    from lrcodec.codec import decode_image
    from lrcodec.encoder import encode
    from lrcodec.imageio import open_mask

    rows = []
    for mask in sorted(MASKS.glob("*.png")):
        path = str(Path(args.data) / f"{mask.stem}.png")
        image = open_image(read_bytes(path), path)
        inside = open_mask(str(mask), image.width, image.height) > 127
        untuned = encode(image, EncodeSettings(effort=2))
        decoded = np.asarray(decode_image(untuned.data).convert("RGB"))
        reference = np.asarray(image.convert("RGB"))
        untuned_roi = psnr(reference[inside], decoded[inside])
        tuned, lmbda = _at_size(path, str(mask), len(untuned.data))
        rows.append({"image": mask.stem, "mask_fraction": float(inside.mean()), "untuned_bytes": len(untuned.data),
                     "untuned_psnr": psnr(reference, decoded), "untuned_roi_psnr": untuned_roi,
                     "roi_bytes": tuned["bytes"], "roi_psnr": tuned["psnr"], "roi_roi_psnr": tuned["roi_psnr"],
                     "roi_lmbda": lmbda, "roi_gain_db": tuned["roi_psnr"] - untuned_roi,
                     "size_ratio": tuned["bytes"] / len(untuned.data)})
        print(rows[-1], flush=True)
    return {"images": rows, "mean_roi_gain_db": float(np.mean([r["roi_gain_db"] for r in rows]))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/kodak")
    parser.add_argument("--part", choices=("tune", "roi", "gain", "all"), default="all")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    files = collect_images([args.data])
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    started = time.strftime("%Y-%m-%d %H:%M")
    if args.part in ("tune", "all"):
        report["tune"] = {"command": f"python bench/tuning.py --data {args.data} --part tune", "cpu": cpu,
                          "date": started, "images": len(files), **tune_part(files, args.jobs)}
        RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    if args.part in ("gain", "all"):
        report["roi_gain"] = {"command": f"python bench/tuning.py --data {args.data} --part gain", "cpu": cpu,
                              "date": started, **gain_part()}
        RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    if args.part in ("roi", "all"):
        report["roi"] = {"command": f"python bench/tuning.py --data {args.data} --part roi", "cpu": cpu,
                         "date": started, **roi_part()}
        RESULTS.write_text(json.dumps(report, indent=1) + "\n")
