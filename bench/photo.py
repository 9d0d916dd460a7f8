"""A phone photo and Kodak at every effort: time, peak memory and R-D gain, encode and decode
per megapixel, with AVIF, JPEG XL and WebP timed in the same run (issue 26). Start-up against
`import torch`: bench/startup.py.

    python bench/photo.py                          # writes bench/results/photo.json
    python bench/photo.py --kodak-efforts 0,1,2,3 --photo-efforts 0,1,2

The 12 MP image is a 3x3 mosaic (4032x3024) of the first nine photos of --photos, each resized
to 1344x1008. Photo encodes and decodes run through the CLI in fresh processes (wall time and
peak RSS, start-up included), natively and with the kernels capped at AVX2
(``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``, which also turns bf16 off), the CPU the
issue's targets are set for. Kodak runs in-process through the library, one image at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refine import machine  # noqa: E402

from lrcodec import codec  # noqa: E402
from lrcodec.app.evaluate import available_classical, classical_point, psnr  # noqa: E402
from lrcodec.models import load_model  # noqa: E402
from lrcodec.learn.refine import file_loss, refine_image  # noqa: E402
from lrcodec.settings import DEFAULT_EFFORT, EFFORTS, effort_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LRCODEC = str(Path(sys.executable).with_name("lrcodec"))
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
ANCHORS = {"AVIF 4:4:4": 50, "JPEG XL": 75, "WebP": 75}  # the settings: speed 6, effort 7, method 6


def mosaic(folder: Path, target: Path) -> Path:
    from PIL import Image

    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:9]
    canvas = Image.new("RGB", (3 * 1344, 3 * 1008))
    for i, path in enumerate(photos):
        tile = Image.open(path).convert("RGB").resize((1344, 1008), Image.LANCZOS)
        canvas.paste(tile, (1344 * (i % 3), 1008 * (i // 3)))
    canvas.save(target, compress_level=1)
    return target


def timed(args: list[str], env: dict | None = None, program: str = LRCODEC) -> dict:
    """Wall seconds and peak RSS (MiB) of one lrcodec command (or ``program``) in a fresh parent process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, program, *args], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1])
    seconds, rss = out.stdout.split()
    return {"seconds": round(float(seconds), 2), "peak_rss_mb": round(int(rss) / 1024)}


def rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def photo_runs(image: Path, efforts: list[int], env: dict, work: Path) -> dict:
    """Encode at each effort and decode, through the CLI: time, memory, bpp, PSNR, iterations."""
    original, megapixels = rgb(image), rgb(image).shape[0] * rgb(image).shape[1] / 1e6
    rows = {}
    for effort in efforts:
        lrc, png, summary = work / f"e{effort}.lrc", work / f"e{effort}.png", work / f"e{effort}.json"
        encode = timed(["encode", str(image), "-e", str(effort), "-o", str(lrc), "-f", "--quiet",
                        "--summary", str(summary)], env)
        decode = timed(["decode", str(lrc), "-o", str(png), "-f", "--quiet"], env)
        row = json.loads(summary.read_text())["images"][0]
        rows[str(effort)] = {"encode": encode, "decode": decode, "bytes": row["bytes"], "bpp": row["bpp"],
                             "psnr": psnr(original, rgb(png)), "iterations": row["iterations"],
                             "encode_s_per_mp": round(encode["seconds"] / megapixels, 2),
                             "decode_s_per_mp": round(decode["seconds"] / megapixels, 2)}
        print(f"  effort {effort}: {rows[str(effort)]}", flush=True)
    return rows


def anchor_runs(image: Path) -> dict:
    from PIL import Image

    have = available_classical()
    picture = Image.open(image).convert("RGB")
    rows = {}
    for name, quality in ANCHORS.items():
        if name not in have:
            rows[name] = {"missing": "this Pillow build cannot write it"}
            continue
        p = classical_point(picture, image.name, name, quality)
        rows[name] = {"quality": quality, "bytes": p.bytes, "bpp": p.bpp, "psnr": p.psnr,
                      "encode_s": round(p.encode_s, 2), "decode_s": round(p.decode_s, 2)}
        print(f"  {name}: {rows[name]}", flush=True)
    return rows


def kodak_runs(folder: Path, efforts: list[int], images: int) -> dict:
    """Per effort: mean bpp, PSNR and seconds per image, and the R-D loss gain against effort 0
    (the model's lambda, real bytes and decoded pixels)."""
    from PIL import Image

    model = load_model()
    lmbda = model.card["lmbda"]
    files = sorted(folder.glob("*.png"))[:images]
    per = {e: {"bpp": [], "psnr": [], "seconds": [], "loss": [], "iterations": []} for e in efforts}
    for path in files:
        image = Image.open(path).convert("RGB")
        x = codec.image_to_tensor(image)
        for effort in efforts:
            t0 = time.perf_counter()
            if effort == 0:
                encoded, iterations = codec.encode_image(image, model), 0
            else:
                result = refine_image(image, model, effort_settings(effort))
                encoded, iterations = result.encoded, result.iterations
            seconds = time.perf_counter() - t0
            loss, quality = file_loss(encoded, x, lmbda, model)
            for key, value in zip(per[effort], (encoded.bpp, quality, seconds, loss, iterations)):
                per[effort][key].append(value)
        print(f"  {path.name}: " + ", ".join(f"e{e} {per[e]['loss'][-1]:.4f}" for e in efforts), flush=True)
    base = per[efforts[0]]["loss"]
    return {"model": model.name, "images": [p.name for p in files], "lmbda": lmbda,
            "efforts": {str(e): {"bpp": statistics.fmean(v["bpp"]), "psnr": statistics.fmean(v["psnr"]),
                                 "seconds_per_image": statistics.fmean(v["seconds"]),
                                 "iterations": statistics.fmean(v["iterations"]),
                                 "loss_gain_pct": 100 * (1 - sum(v["loss"]) / sum(base))}
                        for e, v in per.items()}}


def tiled_against_untiled(folder: Path, images: int, tile: int = 16) -> dict:
    """The default effort's R-D loss gain on Kodak images refined whole and in tiles of ``tile``
    y positions (6 tiles for 768x512): the same draws, so only float summation order differs."""
    from PIL import Image

    model = load_model()
    gains = {"untiled": [], f"tiles of {tile}": []}
    for path in sorted(folder.glob("*.png"))[:images]:
        image = Image.open(path).convert("RGB")
        for label, option in zip(gains, (None, tile)):
            r = refine_image(image, model, effort_settings(DEFAULT_EFFORT), tile=option)
            gains[label].append(100 * (1 - r.history[-1][1] / r.history[0][1]))
    return {"images": images, "effort": DEFAULT_EFFORT, "true_loss_gain_pct": gains,
            "largest_difference_points": max(abs(a - b) for a, b in zip(*gains.values()))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "train" / "sunhays80")
    ap.add_argument("--kodak-efforts", default="0,1,2")
    ap.add_argument("--kodak-images", type=int, default=24)
    ap.add_argument("--photo-efforts", default=f"0,{DEFAULT_EFFORT}")
    ap.add_argument("--out", type=Path, default=RESULTS / "photo.json")
    args = ap.parse_args()
    for folder in (args.kodak, args.photos):
        if not folder.is_dir():
            sys.exit(f"error: no image folder {folder} (pass --kodak / --photos)")
    result = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": machine(), "efforts": {str(e): s.iterations if s else 0 for e, s in EFFORTS.items()},
              "time_limits": {str(e): s.time_limit for e, s in EFFORTS.items() if s}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = mosaic(args.photos, work / "photo.png")
        result["photo"] = {"size": [4032, 3024], "sources": sorted(p.name for p in args.photos.iterdir())[:9]}
        for label, env in (("native", {}), ("avx2", AVX2)):
            print(f"12 MP photo, {label} kernels", flush=True)
            result["photo"][label] = photo_runs(image, [int(e) for e in args.photo_efforts.split(",")], env, work)
        print("anchors on the photo", flush=True)
        result["photo"]["anchors"] = anchor_runs(image)
        print("Kodak", flush=True)
        result["kodak"] = kodak_runs(args.kodak, [int(e) for e in args.kodak_efforts.split(",")], args.kodak_images)
        result["kodak"]["tiled_against_untiled"] = tiled_against_untiled(args.kodak, 4)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
