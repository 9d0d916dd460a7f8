"""Peak memory of a 12 MP photo at the default effort, through the CLI in fresh processes:
wall time and peak RSS of `lrcodec encode` (effort 2) and `lrcodec decode`, natively and with
the kernels capped at AVX2 (which also turns bfloat16 off, so the refinement loop runs in
float32: the largest case), on bench/photo.py's mosaic of real photos. Writes
bench/results/photo-memory.json; ``--label`` keeps earlier runs (for example of another
checkout, with PYTHONPATH pointing at it) under their own label.

    python bench/photo_memory.py [--photos ../shared/data/train/sunhays80] [--label NAME]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo import AVX2, LRCODEC, ROOT, mosaic, timed  # noqa: E402
from refine import machine  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "photo-memory.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "train" / "sunhays80")
    ap.add_argument("--label", default="this checkout")
    args = ap.parse_args()
    import lrcodec  # the lrcodec measured: this checkout's, or another's on PYTHONPATH

    source = Path(lrcodec.__file__).resolve().parent.parent
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=source).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD") + ("+uncommitted" if git("status", "--porcelain", "--", "lrcodec") else "")
    # what every figure starts from: the interpreter with torch, and with CompressAI's package too
    imports = {code: timed(["-c", code], program=sys.executable) for code in ("import torch", "import torch, compressai")}
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photo = mosaic(args.photos, work / "photo.png")
        for kernels, env in (("native", {}), ("avx2", AVX2)):
            encode = timed(["encode", str(photo), "-o", str(work / "photo.lrc"), "-f", "--quiet"], env)
            info = json.loads(subprocess.run([LRCODEC, "info", str(work / "photo.lrc"), "--json"], capture_output=True,
                                             text=True, check=True).stdout)
            decode = timed(["decode", str(work / "photo.lrc"), "-o", str(work / "back.png"), "-f", "--quiet"], env)
            runs[kernels] = {"encode": encode, "decode": decode, "bytes": info["file_bytes"], "refined": info["refined"]}
            print(kernels, json.dumps(runs[kernels]), flush=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    labelled = old.get("labelled", {}) if "labelled" in old else {}
    labelled[args.label] = {"commit": commit, "source": str(source), "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
                            "imports": imports, "runs": runs}
    RESULTS.write_text(json.dumps({
        "command": "python bench/photo_memory.py [--label NAME]",
        "image": f"3x3 mosaic (4032x3024) of the first nine photos of {args.photos.name} (bench/photo.py)",
        "setting": "lrcodec encode at the default effort, lrcodec decode; peak RSS of the process, start-up included",
        "machine": machine(), "goal_peak_rss_mb": 2048, "labelled": labelled}, indent=1) + "\n")


if __name__ == "__main__":
    main()
