"""Start-up: what a whole `lrcodec` process costs next to `python -c "import torch"`, in one run.

    python bench/startup.py [--kodak ../shared/data/kodak] [--photos ../shared/data/train/sunhays80]
                            [--label NAME]                  # make bench-startup

Measured, each in fresh processes (wall time and peak RSS, medians of --repeats, interleaved so
that a slow moment hits every command alike):

* `python -c "import torch"`, `lrcodec --help`, `lrcodec decode` of a Kodak file (kodim01,
  plain-encoded with the default model) and plain `lrcodec encode` of the same image;
* mbt2018 at its zoo quality-3 size on seeded random weights fitted to the image
  (``bench/architectures.py:zoo_sized``): `lrcodec decode` as a whole process against
  CompressAI's ``decompress()`` as a library call on the same weights (compressai imported and
  the model built beforehand);
* whether each command imports compressai (``python -X importtime``);
* a 12 MP photo (bench/photo.py's mosaic): `lrcodec decode` and plain `lrcodec encode`, with
  AVIF 4:4:4 speed 6 (quality 50) encode and decode of the same photo in the same run;
* with ``--baseline DIR``, another checkout's decode and plain encode (Kodak and 12 MP) in the
  same run, for the seconds the change saves.

Results go to bench/results/startup.json under ``--label`` (default "this checkout"; another
checkout can be measured by running this file with PYTHONPATH pointing at it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo import LRCODEC, ROOT, mosaic, timed  # noqa: E402
from refine import machine  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "startup.json"


def medians(commands: dict[str, tuple[list[str], str, dict]], repeats: int) -> dict:
    """Median wall seconds and peak RSS of each command, the commands interleaved."""
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, (args, program, env) in commands.items():
            runs[name].append(timed(args, env, program=program))
    return {name: {"seconds": round(statistics.median(r["seconds"] for r in rs), 2),
                   "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in rs))}
            for name, rs in runs.items()}


def imports_compressai(args: list[str]) -> bool:
    """Whether the lrcodec command imports any compressai module (``-X importtime``)."""
    code = "import sys; from lrcodec.app.cli import main; sys.argv = ['lrcodec', *sys.argv[1:]]; main()"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True, text=True)
    return any(line.split("|")[-1].strip().startswith("compressai") for line in out.stderr.splitlines())


def compressai_decompress(model, image, repeats: int) -> float:
    """Median seconds of CompressAI's own ``decompress()`` of the image on the model's weights."""
    import torch

    from lrcodec import codec
    from lrcodec.families.reference import compressai_network
    from lrcodec.models import weights_of

    net = compressai_network(model.arch, weights_of(model.net))
    net.update(force=True)
    x, _ = codec.prepare_image(image)
    with torch.no_grad():
        out = net.compress(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net.decompress(out["strings"], out["shape"])
            times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "train" / "sunhays80")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout (e.g. a git worktree of the landed main) whose `lrcodec decode` and "
                         "`encode` run in the same run, interleaved, as `python -P -m lrcodec.cli` on its PYTHONPATH")
    args = ap.parse_args()
    from PIL import Image

    import lrcodec
    from architectures import zoo_sized
    from lrcodec import codec
    from lrcodec.app.evaluate import classical_point
    from lrcodec.models import save_model

    source = Path(lrcodec.__file__).resolve().parent.parent
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=source).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD") + ("+uncommitted" if git("status", "--porcelain", "--", "lrcodec") else "")
    kodim = args.kodak / "kodim01.png"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lrc, mbt_lrc, weights = work / "kodim01.lrc", work / "mbt.lrc", work / "mbt2018-random.safetensors"
        subprocess.run([LRCODEC, "encode", str(kodim), "-e", "0", "-o", str(lrc), "-f", "--quiet"], check=True)
        image = Image.open(kodim).convert("RGB")
        mbt = zoo_sized("mbt2018", 0, image)
        save_model(mbt.net, weights, dict(mbt.card, arch=mbt.arch), fp16=False)
        mbt_lrc.write_bytes(codec.encode_image(image, mbt).data)
        decode = ["decode", str(lrc), "-o", str(work / "out.png"), "-f", "--quiet"]
        encode = ["encode", str(kodim), "-e", "0", "-o", str(work / "again.lrc"), "-f", "--quiet"]
        mbt_decode = ["decode", str(mbt_lrc), "--model", str(weights), "-o", str(work / "mbt.png"), "-f", "--quiet"]
        commands = {"import torch": (["-c", "import torch"], sys.executable, {}),
                    "lrcodec --help": (["--help"], LRCODEC, {}),
                    "decode kodak": (decode, LRCODEC, {}), "encode kodak, effort 0": (encode, LRCODEC, {}),
                    "decode kodak, mbt2018": (mbt_decode, LRCODEC, {})}
        before = {"PYTHONPATH": str(args.baseline)} if args.baseline else None
        if before:
            commands["baseline: decode kodak"] = (["-P", "-m", "lrcodec.cli", *decode], sys.executable, before)
            commands["baseline: encode kodak, effort 0"] = (["-P", "-m", "lrcodec.cli", *encode], sys.executable, before)
        kodak = medians(commands, args.repeats)
        kodak["compressai decompress() of the mbt2018 file's image, library call"] = {
            "seconds": compressai_decompress(mbt, image, args.repeats)}
        imports = {name: imports_compressai(cmd) for name, (cmd, program, _) in commands.items() if program == LRCODEC}
        for name, row in kodak.items():
            print(f"{name}: {row}", flush=True)
        photo = {}
        if args.photos.is_dir():
            big = mosaic(args.photos, work / "photo.png")
            photo["encode, effort 0"] = timed(["encode", str(big), "-e", "0", "-o", str(work / "photo.lrc"), "-f", "--quiet"])
            photo["decode"] = timed(["decode", str(work / "photo.lrc"), "-o", str(work / "photo-out.png"), "-f", "--quiet"])
            if before:
                photo["baseline: encode, effort 0"] = timed(["-P", "-m", "lrcodec.cli", "encode", str(big), "-e", "0", "-o",
                                                             str(work / "before.lrc"), "-f", "--quiet"], before,
                                                            program=sys.executable)
                photo["baseline: decode"] = timed(["-P", "-m", "lrcodec.cli", "decode", str(work / "photo.lrc"), "-o",
                                                   str(work / "before.png"), "-f", "--quiet"], before, program=sys.executable)
            p = classical_point(Image.open(big).convert("RGB"), big.name, "AVIF 4:4:4", 50)
            photo["AVIF 4:4:4 speed 6, quality 50"] = {"encode_s": round(p.encode_s, 2), "decode_s": round(p.decode_s, 2)}
            print(f"12 MP: {photo}", flush=True)
    torch_s, torch_mb = kodak["import torch"]["seconds"], kodak["import torch"]["peak_rss_mb"]
    ratios = {
        "decode kodak - import torch (s; goal <= 0.5)": round(kodak["decode kodak"]["seconds"] - torch_s, 2),
        "encode kodak, effort 0 - import torch (s; goal <= 0.7)": round(kodak["encode kodak, effort 0"]["seconds"] - torch_s, 2),
        "decode kodak peak RSS - import torch's (MB; goal <= 250)": kodak["decode kodak"]["peak_rss_mb"] - torch_mb,
        "lrcodec --help (s; goal <= 0.3)": kodak["lrcodec --help"]["seconds"],
        "mbt2018 decode process / compressai decompress() (goal <= 0.7)": round(
            kodak["decode kodak, mbt2018"]["seconds"]
            / kodak["compressai decompress() of the mbt2018 file's image, library call"]["seconds"], 2)}
    if photo:
        avif = photo["AVIF 4:4:4 speed 6, quality 50"]["encode_s"]
        ratios["12 MP decode / AVIF speed 6 encode"] = round(photo["decode"]["seconds"] / avif, 2)
        ratios["12 MP encode, effort 0 / AVIF speed 6 encode"] = round(photo["encode, effort 0"]["seconds"] / avif, 2)
        for name in ("decode", "encode, effort 0"):
            if f"baseline: {name}" in photo:
                ratios[f"12 MP {name}: seconds saved against the baseline"] = round(
                    photo[f"baseline: {name}"]["seconds"] - photo[name]["seconds"], 2)
    for name in ("decode kodak", "encode kodak, effort 0"):
        if f"baseline: {name}" in kodak:
            ratios[f"{name}: seconds saved against the baseline"] = round(
                kodak[f"baseline: {name}"]["seconds"] - kodak[name]["seconds"], 2)
    print(json.dumps(ratios, indent=1))
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    labelled = old.get("labelled", {})
    baseline = None
    if args.baseline:
        baseline = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  cwd=args.baseline).stdout.strip() or str(args.baseline)
    labelled[args.label] = {"commit": commit, "source": str(source), "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
                            "baseline": baseline, "kodak": kodak, "imports_compressai": imports, "photo_12mp": photo, "goals": ratios}
    RESULTS.write_text(json.dumps({
        "command": "python bench/startup.py [--baseline DIR] [--label NAME]",
        "setting": f"fresh processes, medians of {args.repeats}, interleaved; kodim01 with the default model at "
                   "effort 0; mbt2018 at its quality-3 size on seeded random weights (bench/architectures.py); "
                   "12 MP: bench/photo.py's mosaic, one run each",
        "machine": machine(), "labelled": labelled}, indent=1) + "\n")


if __name__ == "__main__":
    main()
