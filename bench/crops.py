"""The same crop of a Kodak image from lrcodec, WebP, AVIF and JPEG at (nearly) equal bytes.

lrcodec encodes the whole image with the default model and effort; every other codec gets
the quality whose whole-image file is the largest not above lrcodec's size (JPEG, which
cannot get that small at a usable quality, gets the smallest file above it). The crops are
cut from the decoded whole images and shown enlarged without interpolation.

    python bench/crops.py [--image kodim23.png] [--box 420 40 560 180]
    -> bench/results/crops.png, bench/results/crops.json
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lrcodec.app.evaluate import psnr  # noqa: E402
from lrcodec.metrics import bits_per_pixel  # noqa: E402

RESULTS = ROOT / "bench" / "results"
OTHERS = {  # label: (Pillow format, options for a quality)
    "WebP (method 6)": ("WEBP", lambda q: {"quality": q, "method": 6}),
    "AVIF 4:4:4 (speed 4)": ("AVIF", lambda q: {"quality": q, "subsampling": "4:4:4", "speed": 4}),
    "JPEG (4:2:0)": ("JPEG", lambda q: {"quality": q, "subsampling": "4:2:0"}),
}


def encode_other(image: Image.Image, fmt: str, options, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options(quality))
    return buf.getvalue()


def match_size(image: Image.Image, fmt: str, options, budget: int) -> tuple[int, bytes]:
    """(quality, file) with the largest size not above ``budget``, else the smallest file."""
    best = None
    lo, hi = 1, 100
    while lo <= hi:  # sizes grow with quality: bisection
        q = (lo + hi) // 2
        data = encode_other(image, fmt, options, q)
        if len(data) <= budget:
            best = (q, data)
            lo = q + 1
        else:
            hi = q - 1
    return best or (1, encode_other(image, fmt, options, 1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--image", default="kodim23.png")
    ap.add_argument("--box", type=int, nargs=4, default=[420, 40, 560, 180], metavar=("LEFT", "TOP", "RIGHT", "BOTTOM"))
    ap.add_argument("--model", default=None, help="lrcodec --model (default: the shipped default)")
    ap.add_argument("--quality", type=int, default=None, help="lrcodec --quality (default: the default model)")
    ap.add_argument("--effort", type=int, default=None, help="lrcodec --effort (default: the default effort)")
    args = ap.parse_args()

    from lrcodec.encoder import encode_bytes
    from lrcodec.codec import decode_image
    from lrcodec.settings import DEFAULT_EFFORT, EncodeSettings

    path = Path(args.data) / args.image
    if not path.is_file():
        print(f"image not found: {path}", file=sys.stderr)
        return 1
    image = Image.open(path).convert("RGB")
    settings = EncodeSettings(model=args.model, quality=args.quality, effort=DEFAULT_EFFORT if args.effort is None else args.effort)
    ours = encode_bytes(path.read_bytes(), path.name, settings, None)
    panels = [("lrcodec", ours.data, decode_image(ours.data).convert("RGB"),
               {"model": ours.row.get("model"), "effort": settings.effort})]
    for label, (fmt, options) in OTHERS.items():
        quality, data = match_size(image, fmt, options, len(ours.data))
        panels.append((label, data, Image.open(io.BytesIO(data)).convert("RGB"), {"quality": quality}))

    reference = np.asarray(image)
    rows = []
    for label, data, decoded, extra in panels:
        full = np.asarray(decoded)
        crop = tuple(args.box)
        rows.append({"codec": label, "bytes": len(data), "bpp": round(bits_per_pixel(8 * len(data), image.width * image.height), 4),
                     "psnr_whole_image": round(psnr(reference, full), 2),
                     "psnr_crop": round(psnr(np.asarray(image.crop(crop)), np.asarray(decoded.crop(crop))), 2), **extra})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.2 * (len(panels) + 1), 3.7))
    tiles = [("original", image)] + [(label, decoded) for label, _, decoded, _ in panels]
    for ax, (label, im), row in zip(axes, tiles, [None] + rows):
        ax.imshow(np.asarray(im.crop(tuple(args.box))), interpolation="nearest")
        title = label if row is None else f"{label}\n{row['bytes']} bytes, {row['psnr_whole_image']:.2f} dB"
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{args.image}, crop {tuple(args.box)}: whole-image files of (nearly) equal size; PSNR of the whole image",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "crops.png", dpi=100)
    result = {"command": "python bench/crops.py" + "".join(f" {a}" for a in sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "image": args.image, "box": args.box, "rows": rows}
    (RESULTS / "crops.json").write_text(json.dumps(result, indent=1) + "\n")
    for r in rows:
        print(f"{r['codec']:22} {r['bytes']:7d} bytes {r['psnr_whole_image']:6.2f} dB (crop {r['psnr_crop']:.2f} dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
