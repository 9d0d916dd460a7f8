"""lrcodec's benchmark suite: R-D against the anchors, BD-rates, speed and coder efficiency,
all measured in one run on the same images. Writes bench/results/<name>.json and .png.

    python bench/run.py                 # all Kodak images, every shipped model, all anchors
    python bench/run.py --quick         # 4 images, fewer quality points (< 10 minutes)
    python bench/run.py --data DIR      # another folder of images
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from published import PUBLISHED  # noqa: E402

from lrcodec import codec  # noqa: E402
from lrcodec.app.evaluate import (  # noqa: E402
    CLASSICAL,
    Point,
    available_classical,
    average_curve,
    bd_rate,
    bd_rates,
    classical_point,
    evaluate_image,
    ms_ssim_db,
)
from lrcodec.families.reference import compressai_network  # noqa: E402
from lrcodec.imageio import open_image, read_bytes  # noqa: E402
from lrcodec.models import load_model, shipped_models  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def coder_comparison(model, image, image_name: str, repeats: int) -> dict:
    """lrcodec's coder vs CompressAI's compress()/decompress() on the same model and image:
    sizes against the ideal information content, and median times."""
    x, _ = codec.prepare_image(image)
    enc_t, dec_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = codec.encode_image(image, model)
        t1 = time.perf_counter()
        codec.decode_latents(result.data, model)
        enc_t.append(t1 - t0)
        dec_t.append(time.perf_counter() - t1)
    q = result.latents
    with torch.no_grad():  # ideal with the float network's continuous sigma and mu (no table)
        bits_y, bits_z = (b.item() for b in model.family.float_bits(model.net, q.y_hat, q.z_hat))
    payload_bits = 8 * (len(result.data) - 52)
    ours = {
        "payload_bits": payload_bits, "file_bytes": len(result.data),
        "ideal_bits_table_sigma": result.bits_ideal, "ideal_bits_exact_sigma": bits_y + bits_z,
        "overhead_vs_table_ideal_pct": 100 * (payload_bits / result.bits_ideal - 1),
        "overhead_vs_exact_ideal_pct": 100 * (payload_bits / (bits_y + bits_z) - 1),
        "encode_s": statistics.median(enc_t), "decode_s": statistics.median(dec_t),
    }
    if model.arch == "channel-context":  # lrcodec's own family: CompressAI has no coder for it
        return {"image": image_name, "lrcodec": ours}

    net = compressai_network(model.arch, model.net.state_dict())  # CompressAI's, the same weights
    net.update(force=True)
    c_enc, c_dec = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = net.compress(x)
        t1 = time.perf_counter()
        with torch.no_grad():
            net.decompress(out["strings"], out["shape"])
        c_enc.append(t1 - t0)
        c_dec.append(time.perf_counter() - t1)
    cai_bits = 8 * sum(len(s[0]) for s in out["strings"])
    # CompressAI's latents (same quantization: medians for z, mu-centred y).
    return {
        "image": image_name,
        "lrcodec": ours,
        "compressai": {
            "payload_bits": cai_bits,
            "overhead_vs_exact_ideal_pct": 100 * (cai_bits / (bits_y + bits_z) - 1),
            "encode_s": statistics.median(c_enc), "decode_s": statistics.median(c_dec),
        },
        "note": "Whole encode (g_a, h_a, h_s, quantization, entropy coding) and whole decode "
                "(entropy decoding, h_s, g_s) of each coder, same model and image, same process; "
                "lrcodec runs h_s as an integer network (float64-held integers, lrcodec.format.exact) and "
                "verifies each payload by re-encoding it; g_s runs on oneDNN in both.",
    }


def training_total(card: dict) -> dict:
    """Steps and hours of a model including the runs it was fine-tuned from (card 'init_training'
    chain), the hours also split by device."""
    steps, by_device, t = 0, {}, card.get("training")
    while t:
        steps += t.get("steps", 0)
        device = t.get("device", "cpu")
        by_device[device] = by_device.get(device, 0.0) + t.get("hours", 0.0)
        t = t.get("init_training")
    return {"training_steps": steps, "training_hours": round(sum(by_device.values()), 2),
            "training_hours_by_device": {k: round(v, 2) for k, v in by_device.items()}}


def startup_seconds(repeats: int = 5) -> float:
    exe = str(Path(sys.executable).with_name("lrcodec"))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([exe, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mb(args: list[str]) -> float:
    """Peak resident memory (MiB) of one lrcodec command, measured in a fresh parent process
    so that no other child's peak is mixed in."""
    exe = str(Path(sys.executable).with_name("lrcodec"))
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, exe, *args], capture_output=True, check=True, text=True)
    return int(out.stdout.strip()) / 1024


def plot(curves: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for name, c in curves.items():
        style = "--" if "published" in name else "-"
        marker = "o" if name.startswith("lrcodec") else "."
        lw = 2.5 if name.startswith("lrcodec") else 1.2
        axes[0].plot(c["bpp"], c["psnr"], style, marker=marker, lw=lw, label=name)
        ssim = [ms_ssim_db(s) for s in c["ms_ssim"]]
        axes[1].plot(c["bpp"], ssim, style, marker=marker, lw=lw, label=name)
    axes[0].set(xlabel="bits per pixel", ylabel="PSNR (dB)", title=f"{title}: PSNR")
    axes[1].set(xlabel="bits per pixel", ylabel="MS-SSIM (dB)", title=f"{title}: MS-SSIM")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlim(0, 1.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--quick", action="store_true", help="4 images and fewer quality points")
    ap.add_argument("--name", default=None, help="result file name (default: kodak or kodak-quick)")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats for medians")
    ap.add_argument("--update-cards", action="store_true",
                    help="write each model's measured Kodak bpp / PSNR / MS-SSIM into its model card")
    args = ap.parse_args()

    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() == ".png")
    if not files:
        print(f"no PNG images in {args.data}", file=sys.stderr)
        return 1
    if args.quick:
        files = files[:: max(1, len(files) // 4)][:4]
    name = args.name or ("kodak-quick" if args.quick else "kodak")
    images = [(p.name, open_image(read_bytes(str(p)), p.name)) for p in files]
    print(f"{len(images)} images from {args.data}", file=sys.stderr)

    points: list[Point] = []
    cards = shipped_models()
    models = [load_model(c["name"]) for c in cards]
    for model in models:
        for img_name, image in images:
            points.append(evaluate_image(image, img_name, model))
        print(f"  {model.name}: done", file=sys.stderr)

    classical = available_classical()
    missing = sorted(set(CLASSICAL) - set(classical))
    missing = [f"{name}: " + ("plugin not installed (pip install '.[bench]')" if name in ("HEIC 4:4:4", "JPEG XL")
                              else "this Pillow build cannot write it") for name in missing]
    for codec_name, (_, _, settings) in classical.items():
        if args.quick:
            settings = settings[1::2]
        for setting in settings:
            for img_name, image in images:
                points.append(classical_point(image, img_name, codec_name, setting))
        print(f"  {codec_name}: done", file=sys.stderr)

    rows = average_curve(points)
    curves: dict[str, dict] = {}
    lr_rows = sorted([r for r in rows if r["codec"] in {m.name for m in models}], key=lambda r: r["bpp"])
    curves["lrcodec (shipped models)"] = {k: [r[k] for r in lr_rows] for k in ("bpp", "psnr", "ms_ssim")}
    for codec_name in classical:
        rs = sorted([r for r in rows if r["codec"] == codec_name], key=lambda r: r["bpp"])
        curves[codec_name] = {k: [r[k] for r in rs] for k in ("bpp", "psnr", "ms_ssim")}
    if Path(args.data).name == "kodak" and len(images) == 24:
        curves.update(PUBLISHED)
    elif Path(args.data).name == "kodak":
        for k, v in PUBLISHED.items():
            curves[k + " [24 images; this run used a subset]"] = v

    ours = curves["lrcodec (shipped models)"]
    bd = {}
    for other, c in curves.items():
        if other.startswith("lrcodec"):
            continue
        bd[other] = bd_rates(c, ours)

    uq_rows = []
    for model in models:
        pts = [evaluate_image(image, n, model, uq=True) for n, image in images]
        uq_rows.append((float(np.mean([p.bpp for p in pts])), float(np.mean([p.psnr for p in pts])),
                        float(np.mean([p.ms_ssim for p in pts]))))
    uq_rows.sort()
    uq_curve = {"bpp": [r[0] for r in uq_rows], "psnr": [r[1] for r in uq_rows], "ms_ssim": [r[2] for r in uq_rows]}
    uq_vs_hard = bd_rate(ours["bpp"], ours["psnr"], uq_curve["bpp"], uq_curve["psnr"])
    curves["lrcodec +UQ coding (same models)"] = uq_curve

    speed = []
    for model in models:
        speed.append({"model": model.name, **coder_comparison(model, images[0][1], images[0][0], args.repeats)})

    memory = {"model": "default (--quality 3)", "note": "peak RSS of the lrcodec command, PNG in and out"}
    for label, size in (("768x512", None), ("2048x1536", (2048, 1536)), ("4000x3000", (4000, 3000)),
                        ("8000x6000", (8000, 6000))):
        src = str(files[0])
        if size:
            src = str(RESULTS / f"tmp-{label}.png")
            images[0][1].convert("RGB").resize(size).save(src)
        tmp = RESULTS / "tmp-bench.lrc"
        tmp.unlink(missing_ok=True)
        memory[label] = {
            "encode_peak_rss_mb": peak_rss_mb(["encode", src, "-o", str(tmp), "--effort", "0", "--quiet"]),
            "decode_peak_rss_mb": peak_rss_mb(["decode", str(tmp), "-o", str(tmp.with_suffix(".png")), "--quiet", "--force"]),
        }
        if label in ("768x512", "2048x1536"):
            memory[label]["refine_peak_rss_mb"] = peak_rss_mb(
                ["refine", src, "-o", str(tmp), "--iterations", "3", "--quiet", "--force"])
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".png").unlink(missing_ok=True)
        if size:
            Path(src).unlink()

    result = {
        "command": "python bench/run.py" + (" --quick" if args.quick else ""),
        "data": args.data, "images": [n for n, _ in images],
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": __import__("os").cpu_count(), "torch_threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "models": [{k: c.get(k) for k in ("name", "arch", "N", "M", "lmbda", "model_id")} | training_total(c) for c in cards],
        "curves": curves, "bd_rate_of_lrcodec_vs": bd, "rows": rows,
        "uq_coding": {"curve": uq_curve, "bd_rate_vs_hard_rounding_pct": uq_vs_hard},
        "coder_speed_and_efficiency": speed, "memory": memory,
        "startup_help_s": startup_seconds(),
        "not_measured": missing,
        "points": [p.as_dict() for p in points],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    plot(curves, RESULTS / f"{name}.png", f"{Path(args.data).name} ({len(images)} images)")
    if args.update_cards and len(images) == 24:
        from lrcodec.models import models_dir

        for card, row in zip(cards, [next(r for r in rows if r["codec"] == c["name"]) for c in cards]):
            path = models_dir() / f"{card['name']}.json"
            stored = json.loads(path.read_text())
            stored["kodak"] = {"bpp": row["bpp"], "psnr": row["psnr"], "ms_ssim": row["ms_ssim"],
                               "images": 24, "measured_by": result["command"] + " --update-cards",
                               "note": "real bitstreams: bpp from file sizes, PSNR/MS-SSIM from decoded 8-bit pixels"}
            path.write_text(json.dumps(stored, indent=2) + "\n")
    print(json.dumps({"bd_rate_of_lrcodec_vs": bd, "memory": memory}, indent=1))
    for r in lr_rows:
        print(f"{r['codec']:24} {r['bpp']:.4f} bpp {r['psnr']:.2f} dB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
