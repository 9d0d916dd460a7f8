"""Effort levels on full Kodak images: what each level buys against the plain encode, and what it costs.

    python bench/refine.py                     # all 24 images, every shipped model, every effort level
    python bench/refine.py --images 4 --models lrc-mshp-q3 --levels 2
    python bench/refine.py --throughput-only   # --jobs 1 against --jobs 2 on a folder

For every image (in a fixed order spread over the set) and every shipped model: the plain
encode (effort 0) and each effort level, through real files (bpp from the bytes, PSNR from the
decoded 8-bit pixels), with the seconds per image and the true R-D loss against iterations.
Then BD-rate of each level against the plain encode over the models' rate points, on the
images done so far. Results are saved after every image and model, and a rerun resumes
(bench/results/refine.json; a plot beside it). The throughput part encodes a folder of Kodak
images at the default effort with 1 and with 2 worker processes.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lrcodec.app import batch
from lrcodec import codec
from lrcodec.app.evaluate import bd_rate, psnr
from lrcodec.imageio import open_image, read_bytes
from lrcodec.models import load_model, shipped_models
from lrcodec.learn.refine import file_loss, refine_image
from lrcodec.settings import DEFAULT_EFFORT, EFFORTS, EncodeSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags"))
        flags = " ".join(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return {"cpu": model, "flags": flags, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def image_order(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    return files[0::7] + files[3::7] + files[5::7] + files[1::7] + files[2::7] + files[4::7] + files[6::7]


def run_image(image, model, levels: list[int]) -> dict:
    x = codec.image_to_tensor(image)
    rgb = np.asarray(image)
    t0 = time.perf_counter()
    plain = codec.encode_image(image, model)
    seconds = time.perf_counter() - t0
    lmbda = model.card["lmbda"]
    entry = {"0": {"bpp": plain.bpp, "psnr": psnr(rgb, np.asarray(codec.decode_image(plain.data, model))),
                   "seconds": seconds, "loss": file_loss(plain, x, lmbda, model)[0]}}
    for level in levels:
        t0 = time.perf_counter()
        r = refine_image(image, model, EFFORTS[level])
        seconds = time.perf_counter() - t0
        entry[str(level)] = {
            "bpp": r.encoded.bpp, "psnr": psnr(rgb, np.asarray(codec.decode_image(r.encoded.data, model))),
            "seconds": seconds, "s_per_iteration": r.seconds_per_iteration, "iterations": r.iterations,
            "loss": file_loss(r.encoded, x, lmbda, model)[0], "kept_base": r.kept_base,
            "history": [[h[0], h[1], h[4]] for h in r.history],  # iteration, true loss, seconds
        }
    return entry


def summarise(results: dict, names: list[str], levels: list[int]) -> dict:
    """Curves over the images that every model has finished, BD-rate against effort 0."""
    done = sorted(set.intersection(*(set(results.get(n, {})) for n in names)))
    if not done:
        return {"images_done": []}
    curves, seconds, gain = {}, {}, {}
    for level in ["0", *map(str, levels)]:
        pts = []
        for name in names:
            per = [results[name][i][level] for i in done]
            pts.append((float(np.mean([p["bpp"] for p in per])), float(np.mean([p["psnr"] for p in per]))))
        curves[level] = {"bpp": [p[0] for p in sorted(pts)], "psnr": [p[1] for p in sorted(pts)]}
        seconds[level] = {n: float(np.mean([results[n][i][level]["seconds"] for i in done])) for n in names}
        gain[level] = float(np.mean([100 * (1 - results[n][i][level]["loss"] / results[n][i]["0"]["loss"])
                                     for n in names for i in done]))
    bd = {level: bd_rate(curves["0"]["bpp"], curves["0"]["psnr"], c["bpp"], c["psnr"])
          for level, c in curves.items() if level != "0"}
    return {"images_done": done, "curves": curves, "bd_rate_vs_plain_pct": bd, "seconds_per_image": seconds,
            "rd_loss_gain_pct": gain}


def throughput(folder: Path, images: int, model_name: str) -> dict:
    """Images per hour at the default effort with 1 and with 2 worker processes."""
    out = {}
    files = image_order(folder)[:images]
    for workers in (1, 2):
        target = Path(tempfile.mkdtemp())
        try:
            jobs = batch.plan(list(map(str, files)), str(target))
            t0 = time.perf_counter()
            rows = batch.run(jobs, EncodeSettings(model=model_name, effort=DEFAULT_EFFORT), workers=workers)
            seconds = time.perf_counter() - t0
        finally:
            shutil.rmtree(target)
        assert all(r["status"] == "ok" for r in rows), rows
        out[str(workers)] = {"seconds": seconds, "images_per_hour": 3600 * len(files) / seconds}
    return {"images": [f.name for f in files], "model": model_name, "effort": DEFAULT_EFFORT, "jobs": out}


def speed(image, names: list[str]) -> dict:
    """Seconds per iteration on one full image for every model at the default effort, with float32
    and with bfloat16 synthesis in the loop, and the real file's R-D loss gain each reaches."""
    out, gain = {}, {}
    x = codec.image_to_tensor(image)
    for name in names:
        model = load_model(name)
        for precision in ("float32", "bfloat16"):
            r = refine_image(image, model, EFFORTS[DEFAULT_EFFORT], precision=precision)
            out.setdefault(name, {})[precision] = r.seconds_per_iteration
            base, loss = (file_loss(e, x, model.card["lmbda"], model)[0] for e in (r.base, r.encoded))
            gain.setdefault(name, {})[precision] = 100 * (1 - loss / base)
    return {"image_size": list(image.size), "effort": DEFAULT_EFFORT, "s_per_iteration": out, "rd_loss_gain_pct": gain}


def plot(d: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = d["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for level, c in s["curves"].items():
        axes[0].plot(c["bpp"], c["psnr"], "k--" if level == "0" else "o-",
                     label="plain encode" if level == "0" else f"effort {level}")
    axes[0].set(xlabel="bpp (real files)", ylabel="PSNR (dB)",
                title=f"Kodak, {len(s['images_done'])} images (mean per model)")
    name = d["models"][len(d["models"]) // 2]
    for level in d["levels"]:
        runs = [d["results"][name][i][str(level)]["history"] for i in s["images_done"]]
        base = [d["results"][name][i]["0"]["loss"] for i in s["images_done"]]
        its = [h[0] for h in runs[0]]
        rel = np.mean([[100 * (1 - h[1] / b) for h in run][: len(its)] for run, b in zip(runs, base)
                       if len(run) >= len(its)], axis=0)
        axes[1].plot(its, rel, "o-", ms=3, label=f"effort {level}")
    axes[1].set(xlabel="iteration", ylabel="true R-D loss below the plain encode (%)", title=f"{name}, mean over images")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--models", default="all", help="'all' or comma-separated shipped model names")
    ap.add_argument("--levels", default=",".join(str(e) for e in EFFORTS if e))
    ap.add_argument("--throughput-images", type=int, default=4)
    ap.add_argument("--throughput-only", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "refine.json"))
    args = ap.parse_args()

    out = Path(args.out)
    d = json.loads(out.read_text()) if out.exists() else {}
    names = [c["name"] for c in shipped_models()] if args.models == "all" else args.models.split(",")
    levels = [int(v) for v in args.levels.split(",")]
    presets = {str(e): vars(EFFORTS[e]) for e in levels}
    if d and (d.get("presets") != presets or d.get("models") != names):
        print(f"{out} was made with other presets or models; starting afresh", file=sys.stderr)
        d = {}
    command = " ".join(["python bench/refine.py", *sys.argv[1:]])
    d.update({"command": "python bench/refine.py", "machine": machine(), "models": names, "levels": levels,
              "presets": presets})
    d.setdefault("invocations", []).append({"command": command, "started": time.strftime("%Y-%m-%d %H:%M")})
    results = d.setdefault("results", {})
    if not args.throughput_only and "speed" not in d:
        first = image_order(Path(args.data))[0]
        d["speed"] = speed(open_image(read_bytes(str(first)), first.name).convert("RGB"), names)
        d["speed"]["image"] = first.name
        out.write_text(json.dumps(d, indent=1) + "\n")
    if not args.throughput_only:
        models = {n: load_model(n) for n in names}
        d["model_ids"] = {n: m.model_id.hex() for n, m in models.items()}
        for path in image_order(Path(args.data))[: args.images]:
            image = open_image(read_bytes(str(path)), path.name).convert("RGB")
            for name, model in models.items():
                if path.name in results.get(name, {}):
                    continue
                entry = run_image(image, model, levels)
                results.setdefault(name, {})[path.name] = entry
                d["summary"] = summarise(results, names, levels)
                d["date"] = time.strftime("%Y-%m-%d %H:%M")
                out.write_text(json.dumps(d, indent=1) + "\n")
                print(f"{name} {path.name}: " + ", ".join(
                    f"e{k} {v['bpp']:.4f} bpp {v['psnr']:.2f} dB {v['seconds']:.1f} s" for k, v in entry.items()),
                    flush=True)
    if not args.skip_throughput:
        d["throughput"] = throughput(Path(args.data), args.throughput_images, names[len(names) // 2])
        out.write_text(json.dumps(d, indent=1) + "\n")
    if d.get("summary", {}).get("images_done"):
        plot(d, out.with_suffix(".png"))
        print(json.dumps({k: v for k, v in d["summary"].items() if k != "curves"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
