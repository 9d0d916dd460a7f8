"""Decoded pixels against the thread count, and decodes from a pool of threads.

For every Kodak image and each model, the same latents are synthesised by g_s as CompressAI's
layers run it (``plain``, NCHW on oneDNN) and as lrcodec decodes (``lrcodec``:
``codec.synthesise``, channels-last), with 1, 2 and 3 threads: how many pixel values differ
from the 2-thread result and by how much (the bound the tests assert, ``tests/conftest.py``),
and the best-of-3 g_s time at each. Then every file is decoded one by one and again from a
pool of 3 threads in this process: how many decodes differ (nothing process-wide changes
during a call, so none should). Writes bench/results/threads.json.

    python bench/threads.py [--data ../shared/data/kodak] [--models lrc-mshp-q3 lrc-mshp-q6]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from refine import machine

from lrcodec import codec
from lrcodec.app.evaluate import collect_images
from lrcodec.models import load_model

RESULTS = Path(__file__).resolve().parent / "results"
THREADS = (1, 2, 3)


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
    paths = {"plain": lambda model, y, H, W: codec.to_pixels(model.net.g_s(y))[:, :, :H, :W],
             "lrcodec": codec.synthesise}
    rows, files = [], []
    default_threads = torch.get_num_threads()
    for name in args.models:
        model = load_model(name)
        for path in images:
            image = Image.open(path).convert("RGB")
            encoded = codec.encode_image(image, model)
            files.append((encoded.data, model))
            y_hat = encoded.latents.y_hat
            row = {"model": name, "image": Path(path).name, "values": 3 * image.width * image.height}
            for label, g_s in paths.items():
                pixels = {}
                for threads in THREADS:
                    torch.set_num_threads(threads)
                    with torch.no_grad():
                        pixels[threads], row[f"{label}_s_{threads}_threads"] = best_of(
                            lambda: g_s(model, y_hat, image.height, image.width))
                for threads in THREADS:
                    diff = (pixels[threads].int() - pixels[2].int()).abs()
                    row[f"{label}_values_differing_{threads}_vs_2"] = int((diff > 0).sum())
                    row[f"{label}_max_difference_{threads}_vs_2"] = int(diff.max())
            rows.append(row)
            print(json.dumps(row), flush=True)
    torch.set_num_threads(default_threads)
    one_by_one = [np.asarray(codec.decode_image(data, model)) for data, model in files]
    with ThreadPoolExecutor(3) as pool:
        pooled = list(pool.map(lambda f: np.asarray(codec.decode_image(*f)), files))
    summary = {"values": sum(r["values"] for r in rows), "files": len(rows), "threads_compared": list(THREADS)}
    for label in paths:
        differing = [(r[f"{label}_values_differing_{t}_vs_2"], r["values"]) for r in rows for t in THREADS]
        summary[label] = {
            "values_differing": sum(d for d, _ in differing),
            "max_fraction_differing_in_a_file": max(d / n for d, n in differing),
            "max_difference": max(r[f"{label}_max_difference_{t}_vs_2"] for r in rows for t in THREADS),
            **{f"g_s_s_{t}_threads": sum(r[f"{label}_s_{t}_threads"] for r in rows) for t in THREADS},
        }
    summary["time_ratio_2_threads"] = summary["lrcodec"]["g_s_s_2_threads"] / summary["plain"]["g_s_s_2_threads"]
    summary["thread_pool"] = {"decodes": len(files), "workers": 3, "threads_each": default_threads,
                              "differing_from_one_by_one": sum(not np.array_equal(a, b) for a, b in zip(one_by_one, pooled))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps({
        "command": "python bench/threads.py", "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": {**machine(), "capability": torch.backends.cpu.get_cpu_capability()},
        "summary": summary, "rows": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
