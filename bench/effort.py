"""The default effort's cost (issue 44): ``lrcodec encode -e 2`` of each Kodak image as a whole
process, this tree against another commit's (checked out with ``git worktree``), interleaved
image by image in one run, with each file's R-D loss (real bytes, the decoder's pixels) and
``lrcodec eval -e 2``'s bytes for the same images.

    python bench/effort.py --data ../shared/data/kodak --against f0c01ef   # bench/results/effort.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "effort.json"
LMBDA = 0.0067  # lrc-mshp-q3's, the default quality's


def encode(tree: Path, image: Path, out: Path) -> dict:
    """One ``lrcodec encode -e 2`` process of ``tree``'s package: its wall time and summary row."""
    summary = out.with_suffix(".json")
    command = [sys.executable, "-m", "lrcodec.app.cli", "encode", str(image), "-e", "2", "-o", str(out), "--force",
               "--quiet", "--summary", str(summary)]
    t0 = time.perf_counter()
    subprocess.run(command, cwd=tree, check=True, env={**os.environ, "PYTHONPATH": str(tree)})
    seconds = time.perf_counter() - t0
    row = json.loads(summary.read_text())["images"][0]
    mse = 10 ** (-row["psnr"] / 10)
    return {"seconds": seconds, "bytes": row["bytes"], "psnr": row["psnr"], "iterations": row["iterations"],
            "kept_base": row["kept_base"], "loss": LMBDA * 255**2 * mse + row["bpp"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/kodak")
    parser.add_argument("--against", default="f0c01ef")
    args = parser.parse_args()
    images = sorted(Path(args.data).resolve().glob("*.png"))
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            rows = []
            for image in images:
                pair = {}
                for name, tree in (("before", old), ("after", ROOT)):
                    pair[name] = encode(tree, image, Path(tmp) / f"{name}-{image.stem}.lrc")
                eval_json = Path(tmp) / "eval.json"
                subprocess.run([sys.executable, "-m", "lrcodec.app.cli", "eval", str(image), "-e", "2", "--json",
                                str(eval_json)], cwd=ROOT, check=True, capture_output=True)
                pair["eval_bytes"] = json.loads(eval_json.read_text())["images"][0]["bytes"]
                rows.append({"image": image.name, **pair})
                print(image.name, pair, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=True)
    before = [r["before"] for r in rows]
    after = [r["after"] for r in rows]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    report = {
        "command": f"python bench/effort.py --data {args.data} --against {args.against}", "cpu": cpu,
        "date": time.strftime("%Y-%m-%d %H:%M"), "images": rows,
        "seconds_before": statistics.mean(r["seconds"] for r in before),
        "seconds_after": statistics.mean(r["seconds"] for r in after),
        "time_ratio": statistics.mean(a["seconds"] / b["seconds"] for a, b in zip(after, before)),
        "loss_before": statistics.mean(r["loss"] for r in before),
        "loss_after": statistics.mean(r["loss"] for r in after),
        "eval_bytes_equal": sum(r["eval_bytes"] == r["after"]["bytes"] for r in rows),
    }
    report["loss_change_pct"] = 100 * (report["loss_after"] / report["loss_before"] - 1)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print({k: v for k, v in report.items() if k != "images"})


if __name__ == "__main__":
    main()
