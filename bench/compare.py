"""BD-rate of the shipped models in bench/results/kodak.json against those of an earlier
commit's kodak.json: did new weights make the set better at equal quality?

BD-rate against an anchor integrates over the quality range both curves share, so a set
that reaches higher quality can score worse against an anchor that is strong there while
being better everywhere; this comparison answers the question directly.

    python bench/compare.py REV        # writes bench/results/compare-previous.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from lrcodec.app.evaluate import bd_rates

RESULTS = Path(__file__).resolve().parent / "results"
CURVE = "lrcodec (shipped models)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="git revision whose bench/results/kodak.json is the baseline")
    args = parser.parse_args()
    old = json.loads(subprocess.run(["git", "show", f"{args.rev}:bench/results/kodak.json"], check=True,
                                    capture_output=True, text=True, cwd=RESULTS).stdout)
    new = json.loads((RESULTS / "kodak.json").read_text())
    a, b = old["curves"][CURVE], new["curves"][CURVE]
    result = {
        "command": f"python bench/compare.py {args.rev}",
        "baseline": {"rev": args.rev, "date": old["date"], "models": old["models"]},
        "current": {"date": new["date"], "models": new["models"]},
        "bd_rate_current_vs_baseline": bd_rates(a, b),
        "curves": {"baseline": a, "current": b},
    }
    (RESULTS / "compare-previous.json").write_text(json.dumps(result, indent=1) + "\n")
    bd = result["bd_rate_current_vs_baseline"]
    print(f"BD-rate of the current set against {args.rev}'s: "
          f"{bd['bd_rate_psnr_pct']:.1f} % (PSNR), {bd['bd_rate_ms_ssim_pct']:.1f} % (MS-SSIM)")


if __name__ == "__main__":
    main()
