"""The page's decoder (web/) in headless Chromium against `lrcodec decode` without torch, in one run.

    python bench/web.py --kodak ../shared/data/kodak [--qualities 3 6] [--images 24] [--overfit-images 2]
                        [--repeats 3]                                                           # make bench-web

For each Kodak image, plain-encoded at each quality with the shipped model, and for the first
--overfit-images of them an overfitted file (`--model overfit -e 1`: its decoder in the file):

* `lrcodec decode FILE -o FILE.png` as a whole process (torch is never imported), median wall
  seconds of --repeats, the files interleaved;
* the viewer served by `lrcodec serve`'s server and driven by web/test/browser.mjs: each file's
  time in the page from fetching its bytes to its pixels on a canvas (the page decodes one file at
  a time, onnxruntime-web on as many threads as the page may use); the first file of each model
  also fetches and prepares the model (its "cold" time), the others find it ready;
* how many 8-bit values of the page's pixels differ from `lrcodec decode`'s, and by how much.

Also what alpha costs (the first image at each quality with a constant alpha, and with a radial
alpha, against the same image without), the size of the page's own code (web/index.html, viewer.*, src/*.js), raw and gzipped, and of
onnxruntime-web's files it loads. Results go to bench/results/web.json.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo import ROOT, timed  # noqa: E402
from refine import machine  # noqa: E402

from lrcodec import codec  # noqa: E402
from lrcodec.encoder import encode  # noqa: E402
from lrcodec.settings import EncodeSettings  # noqa: E402
from lrcodec.app.serve import ORT_FILES, serve_in_thread  # noqa: E402
from lrcodec.imageio import find_images  # noqa: E402
from lrcodec.runtime import runtime_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "web.json"
WEB = ROOT / "web"


def page_code() -> dict:
    files = [WEB / "index.html", WEB / "viewer.js", WEB / "viewer.css", WEB / "decode-worker.js",
             *sorted((WEB / "src").glob("*.js"))]
    raw = b"".join(f.read_bytes() for f in files)
    ort = WEB / "node_modules" / "onnxruntime-web" / "dist"
    return {"files": [f.relative_to(WEB).as_posix() for f in files], "bytes": len(raw),
            "gzip_bytes": len(gzip.compress(raw, 9)),
            "onnxruntime_web_bytes": {name: (ort / name).stat().st_size for name in ORT_FILES}}


def alpha_cost(image: Image.Image, model) -> dict:
    """Bytes of an image coded without alpha, with a constant alpha and with a radial one (the alpha
    round trip checked exactly)."""
    w, h = image.size
    yy, xx = np.mgrid[:h, :w]
    radial = np.clip(255 * (1.5 - np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))), 0, 255).astype(np.uint8)
    out = {"without": len(codec.encode_image(image, model).data)}
    for kind, plane in (("constant", np.full((h, w), 255, np.uint8)), ("radial", radial)):
        rgba = image.copy()
        rgba.putalpha(Image.fromarray(plane))
        data = codec.encode_image(rgba, model).data
        assert np.array_equal(codec.decode_latents(data).alpha, plane)
        out[kind] = len(data)
        out[f"{kind}_pct"] = round(100 * (len(data) / out["without"] - 1), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    parser.add_argument("--qualities", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--overfit-images", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images = find_images(args.kodak)[: args.images]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"
        files, alpha = [], {}
        for q in args.qualities:
            model = runtime_for(quality=q)
            alpha[f"q{q}"] = alpha_cost(Image.open(images[0]).convert("RGB"), model)
            for path in images:
                name = f"q{q}/{path.stem}.lrc"
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(codec.encode_image(Image.open(path).convert("RGB"), model).data)
                files.append(name)
        (folder / "overfit").mkdir()
        for path in images[: args.overfit_images]:  # about a minute each
            name = f"overfit/{path.stem}.lrc"
            (folder / name).write_bytes(encode(Image.open(path).convert("RGB"), EncodeSettings(model="overfit", effort=1)).data)
            files.append(name)
        process = {name: [] for name in files}
        for _ in range(args.repeats):
            for name in files:
                process[name].append(timed(["decode", str(folder / name), "-o", str(folder / f"{name}.png"), "-f",
                                            "--quiet"])["seconds"])
        page = {"files": {}}
        for group in ("q", "overfit"):  # each in a fresh page: the first hyperprior file starts onnxruntime-web
            served = Path(tmp) / group
            served.mkdir()
            for name in files:
                if name.startswith(group):
                    (served / name).parent.mkdir(exist_ok=True)
                    shutil.copy(folder / name, served / name)
            httpd, url = serve_in_thread(served)
            try:
                done = subprocess.run(["node", "test/browser.mjs", url], cwd=WEB, capture_output=True, text=True, check=True)
            finally:
                httpd.shutdown()
            page["files"].update(json.loads(done.stdout.splitlines()[-1])["files"])
        rows = []
        for name in files:
            shown = page["files"][name]
            ours = np.frombuffer(base64.b64decode(shown["rgba"]), np.uint8).reshape(shown["height"], shown["width"], 4)
            theirs = np.asarray(Image.open(folder / f"{name}.png").convert("RGB"))
            diff = np.abs(ours[..., :3].astype(np.int16) - theirs)
            rows.append({"file": name, "bytes": (folder / name).stat().st_size, "page_ms": round(shown["ms"], 1),
                         "process_s": statistics.median(process[name]),
                         "values_differing_pct": round(100 * float(np.mean(diff > 0)), 4), "max_difference": int(diff.max())})
    summary = {}
    for q in [*(f"q{q}" for q in args.qualities), *(["overfit"] if args.overfit_images else [])]:
        part = [r for r in rows if r["file"].startswith(f"{q}/")]
        cold = part[0] if q != "overfit" else None  # an overfitted file brings its decoder: no model to prepare
        warm = part[1:] if cold else part
        ratios = [r["page_ms"] / 1000 / r["process_s"] for r in warm]
        summary[q] = {
            "page_cold_ms": cold and cold["page_ms"], "page_warm_median_ms": statistics.median(r["page_ms"] for r in warm),
            "process_median_s": statistics.median(r["process_s"] for r in part),
            "ratio_warm_median": round(statistics.median(ratios), 3), "ratio_warm_max": round(max(ratios), 3),
            "ratio_cold": cold and round(cold["page_ms"] / 1000 / cold["process_s"], 3),
            "values_differing_pct_max": max(r["values_differing_pct"] for r in part),
            "max_difference": max(r["max_difference"] for r in part)}
    result = {"date": datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "command": "python bench/web.py " + " ".join(sys.argv[1:]),
              "chromium": subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True).stdout.strip(),
              "cross_origin_isolated": all(f.get("crossOriginIsolated") for f in page["files"].values()),
              "page_code": page_code(), "alpha": {"image": images[0].name, **alpha}, "summary": summary, "files": rows}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("summary", "page_code", "alpha")}, indent=1))


if __name__ == "__main__":
    main()
