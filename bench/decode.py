"""Decoding without torch (``lrcodec.runtime``) against decoding with it, in one run.

    python bench/decode.py [--kodak ../shared/data/kodak] [--photos ../shared/data/train/sunhays80]
                           [--repeats 3]                      # make bench-decode

Measured in fresh processes (wall time and peak RSS, medians of --repeats, interleaved):

* `python -c "import torch"`;
* `lrcodec decode` of a Kodak file (kodim01, plain-encoded with the default model): without
  torch (the default) in this environment and in a fresh one holding only lrcodec-decode
  (scripts/build_decoder.py), and with torch (the model loaded and passed to the library);
  the plain encode of kodim01 both ways too;
* the same for a 12 MP photo (bench/photo.py's mosaic), with AVIF 4:4:4 speed 6 (quality 50)
  encode and decode of it;
* the decode-only install on disk, package by package, next to this environment's torch;
* pixels: every Kodak image and every golden file of the shipped models decoded both ways,
  how many 8-bit values differ and by how much (the symbols and y_hat are compared too:
  they must be equal).

Results go to bench/results/decode.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo import LRCODEC, ROOT, mosaic  # noqa: E402
from refine import machine  # noqa: E402
from startup import medians  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "decode.json"
WITH_TORCH = ("import sys; from lrcodec import codec, models; from lrcodec.format.bitstream import parse_header; "
              "data = open(sys.argv[1], 'rb').read(); "
              "codec.decode_image(data, models.find_model_by_id(parse_header(data).model_id)).save(sys.argv[2])")
ENCODE_WITH_TORCH = ("import sys; from PIL import Image; from lrcodec import codec, models; "
                     "open(sys.argv[2], 'wb').write(codec.encode_image(Image.open(sys.argv[1]), models.load_model()).data)")


def decode_only_install(work: Path) -> Path:
    """A fresh environment holding lrcodec-decode alone (what ``make test-decoder`` builds)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from build_decoder import build

    wheel = build(work / "dist")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
                    str(wheel)], check=True)
    return venv


def sizes(site: Path) -> dict:
    """MB on disk of each top-level entry of a site-packages folder (their .dist-info folded in)."""
    out: dict[str, float] = {}
    for entry in site.iterdir():
        name = entry.name.split("-")[0].removesuffix(".libs").removesuffix(".py").lower()
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        out[name] = out.get(name, 0) + sum(p.stat().st_size for p in files) / 2**20
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.05}


def site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())


def pixel_agreement(images: list, files: list[bytes]) -> dict:
    """Both decoders on each Kodak image (encoded at effort 0 with the default model) and each
    file: the symbols and y_hat must be equal, and pixels within the float bound."""
    from lrcodec import codec, models
    from lrcodec.app.probe import latent_digest
    from lrcodec.format.bitstream import parse_header

    default = models.load_model()
    rows = {"values": 0, "differing": 0, "largest": 0, "latents_equal": True}
    for data in [codec.encode_image(im, default).data for im in images] + files:
        torch_model = models.find_model_by_id(parse_header(data).model_id)
        a, b = codec.decode_latents(data), codec.decode_latents(data, torch_model)
        rows["latents_equal"] &= latent_digest(a.latents) == latent_digest(b.latents)
        pa, pb = np.asarray(a.pixels, np.int16), np.asarray(b.pixels, np.int16)
        rows["values"] += pa.size
        rows["differing"] += int((pa != pb).sum())
        rows["largest"] = max(rows["largest"], int(np.abs(pa - pb).max()))
    rows["fraction"] = rows["differing"] / rows["values"]
    return rows


def stages(lrc: Path) -> dict:
    """Seconds of each stage of one decode without torch, in-process after a first decode (the
    model loaded, its sessions made): symbols (the entropy decoding and the exact path), the
    synthesis on onnxruntime, and writing the PNG."""
    from lrcodec import codec
    from lrcodec.format.bitstream import parse_header
    from lrcodec.imageio import image_bytes

    data = lrc.read_bytes()
    codec.decode_image(data)
    header = parse_header(data)
    model = codec._model_for(header, None)
    t0 = time.perf_counter()
    latents = codec._decode_symbols(data, header, model)
    t1 = time.perf_counter()
    pixels = codec.synthesise(model, latents.y_hat, header.height, header.width)
    t2 = time.perf_counter()
    image_bytes(codec.tensor_to_image(pixels), "out.png")
    t3 = time.perf_counter()
    return {"symbols_s": round(t1 - t0, 2), "synthesis_s": round(t2 - t1, 2), "png_s": round(t3 - t2, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "train" / "sunhays80")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from PIL import Image

    from lrcodec.app.evaluate import classical_point, collect_images

    kodim = args.kodak / "kodim01.png"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        venv = decode_only_install(work / "decoder")
        light = str(venv / "bin" / "lrcodec")
        lrc = work / "kodim01.lrc"
        subprocess.run([LRCODEC, "encode", str(kodim), "-e", "0", "-o", str(lrc), "-f", "--quiet"], check=True)
        out = str(work / "out.png")
        commands = {"import torch": (["-c", "import torch"], sys.executable, {}),
                    "decode kodak, without torch": (["decode", str(lrc), "-o", out, "-f", "--quiet"], LRCODEC, {}),
                    "decode kodak, lrcodec-decode install": (["decode", str(lrc), "-o", out, "-f", "--quiet"], light, {}),
                    "decode kodak, with torch": (["-c", WITH_TORCH, str(lrc), out], sys.executable, {}),
                    "encode kodak, effort 0, without torch": (["encode", str(kodim), "-e", "0", "-o", str(work / "e.lrc"),
                                                              "-f", "--quiet"], LRCODEC, {}),
                    "encode kodak, effort 0, with torch": (["-c", ENCODE_WITH_TORCH, str(kodim), str(work / "t.lrc")],
                                                           sys.executable, {})}
        kodak = medians(commands, args.repeats)
        for name, row in kodak.items():
            print(f"{name}: {row}", flush=True)
        photo = {}
        if args.photos.is_dir():
            big = mosaic(args.photos, work / "photo.png")
            big_lrc = work / "photo.lrc"
            subprocess.run([LRCODEC, "encode", str(big), "-e", "0", "-o", str(big_lrc), "-f", "--quiet"], check=True)
            photo = medians({"decode, without torch": (["decode", str(big_lrc), "-o", out, "-f", "--quiet"], LRCODEC, {}),
                             "decode, with torch": (["-c", WITH_TORCH, str(big_lrc), out], sys.executable, {})}, 1)
            photo["decode without torch, stages in-process"] = stages(big_lrc)
            p = classical_point(Image.open(big).convert("RGB"), big.name, "AVIF 4:4:4", 50)
            photo["AVIF 4:4:4 speed 6, quality 50"] = {"encode_s": round(p.encode_s, 2), "decode_s": round(p.decode_s, 2)}
            print(f"12 MP: {photo}", flush=True)
        light_sizes = sizes(site_packages(venv / "bin" / "python"))
        ours = sizes(site_packages(Path(sys.executable)))
    golden = ROOT / "tests" / "golden"
    files = [(golden / n).read_bytes() for n, e in json.loads((golden / "golden.json").read_text()).items()
             if e["format_version"] >= 2]
    images = [Image.open(p).convert("RGB") for p in collect_images([str(args.kodak)])]
    pixels = pixel_agreement(images, files)
    print(f"pixels: {pixels}", flush=True)
    torch_s, torch_mb = kodak["import torch"]["seconds"], kodak["import torch"]["peak_rss_mb"]
    install_mb = round(sum(v for k, v in light_sizes.items() if k not in ("pip", "setuptools", "_distutils_hack")), 1)
    goals = {
        "decode kodak without torch / import torch (goal <= 0.4)": round(kodak["decode kodak, without torch"]["seconds"] / torch_s, 2),
        "decode kodak without torch, peak RSS (MB; goal <= 450)": kodak["decode kodak, without torch"]["peak_rss_mb"],
        "decode kodak, lrcodec-decode install / import torch": round(kodak["decode kodak, lrcodec-decode install"]["seconds"] / torch_s, 2),
        "decode kodak with torch / import torch": round(kodak["decode kodak, with torch"]["seconds"] / torch_s, 2),
        "encode kodak, effort 0, without torch / import torch": round(
            kodak["encode kodak, effort 0, without torch"]["seconds"] / torch_s, 2),
        "import torch peak RSS (MB)": torch_mb,
        "lrcodec-decode install on disk, without pip (MB; goal < 100)": install_mb,
    }
    if photo:
        avif = photo["AVIF 4:4:4 speed 6, quality 50"]["encode_s"]
        goals["12 MP decode without torch / AVIF speed 6 encode (goal <= 1.5)"] = round(photo["decode, without torch"]["seconds"] / avif, 2)
        goals["12 MP decode with torch / AVIF speed 6 encode"] = round(photo["decode, with torch"]["seconds"] / avif, 2)
    print(json.dumps(goals, indent=1))
    RESULTS.write_text(json.dumps({
        "command": "python bench/decode.py", "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "setting": f"fresh processes, medians of {args.repeats} (12 MP: one), interleaved; kodim01 and the 12 MP "
                   "mosaic plain-encoded with the default model; with torch = the model loaded by the library",
        "machine": machine(), "kodak": kodak, "photo_12mp": photo, "goals": goals,
        "pixels_torch_vs_runtime": {"images": "24 Kodak images at effort 0 with the default model, and the format-2 "
                                              "golden files of the shipped models", **pixels},
        "install_mb": {"lrcodec-decode environment": light_sizes,
                       "this environment, largest": dict(list(ours.items())[:8])}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
