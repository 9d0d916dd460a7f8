"""Decoded pixels against the thread count, and what making them independent of it costs.

For every Kodak image and each model, the same file is decoded by g_s as CompressAI's layers
run it on oneDNN (``plain``) and as lrcodec decodes (``stable``: ``lrcodec/kernels.py``), with
1 and 2 threads: how many pixel values differ between the thread counts, and the best-of-3
g_s time at each. Writes bench/results/threads.json.

    python bench/threads.py [--data ../shared/data/kodak] [--models lrc-mshp-q3 lrc-mshp-q6]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

import torch
from PIL import Image
from refine import machine

from lrcodec import codec
from lrcodec.evaluate import collect_images
from lrcodec.kernels import stable_forward
from lrcodec.models import load_model

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn, reps: int = 3):
    out, best = fn(), float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/kodak")
    ap.add_argument("--models", nargs="+", default=["lrc-mshp-q3", "lrc-mshp-q6"])
    args = ap.parse_args()
    images = collect_images([args.data])
    paths = {"plain": lambda net, y: net.g_s(y), "stable": lambda net, y: stable_forward(net.g_s, y)}
    rows = []
    for name in args.models:
        model = load_model(name)
        for path in images:
            image = codec.prepare_image(Image.open(path).convert("RGB"))[0]
            y, z = codec.analyse(model, image)
            y_hat = codec.quantize_latents(model, y, z).y_hat
            row = {"model": name, "image": Path(path).name}
            for label, g_s in paths.items():
                pixels = {}
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    with torch.no_grad():
                        out, seconds = best_of(lambda: codec.to_pixels(g_s(model.net, y_hat)))
                    pixels[threads] = out
                    row[f"{label}_s_{threads}_threads"] = seconds
                row[f"{label}_values_differing"] = int((pixels[1] != pixels[2]).sum())
            row["values"] = int(pixels[1].numel())
            rows.append(row)
            print(json.dumps(row))
    summary = {}
    for label in paths:
        summary[label] = {
            "values_differing": sum(r[f"{label}_values_differing"] for r in rows),
            "files_differing": sum(r[f"{label}_values_differing"] > 0 for r in rows),
            "g_s_s_2_threads": sum(r[f"{label}_s_2_threads"] for r in rows),
            "g_s_s_1_thread": sum(r[f"{label}_s_1_threads"] for r in rows),
        }
    summary["values"] = sum(r["values"] for r in rows)
    summary["files"] = len(rows)
    summary["time_ratio_2_threads"] = summary["stable"]["g_s_s_2_threads"] / summary["plain"]["g_s_s_2_threads"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps({
        "command": "python bench/threads.py", "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": {**machine(), "threads_compared": [1, 2], "capability": torch.backends.cpu.get_cpu_capability()},
        "summary": summary, "rows": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
