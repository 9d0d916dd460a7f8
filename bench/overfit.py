"""The overfitted family (issue 45) on the central 384x256 crops of kodim01, 05, 15 and 23.

* ``rd``: the family at four rates (-q 2, 3, 4, 6) and each effort asked for, against AVIF
  4:4:4 at speed 4 and 6, JPEG XL, WebP and lrcodec's hyperprior (-q 2-6) at efforts 0, 2 and
  5, all through real files (``lrcodec.app.evaluate.evaluate_bytes`` and ``classical_point``):
  BD-rate (PSNR), encode and decode seconds. Resumable: every point is saved as it is measured.
* ``study``: the quantization surrogates trained from scratch, overfit-2000 on kodim05's and
  kodim23's crops at -q 3 and -q 6 for a fixed number of iterations: each file's R-D loss,
  and the BD-rate of each surrogate's two points against the default's.
* ``coolchic``: Cool-chic 5.0.1 itself and overfit-2000 on the same crops, iterations and lambdas.
* ``speed``: one iteration on the whole 768x512 kodim23 (each profile, and one SSL refinement
  iteration of the shipped q3 hyperprior), and decoding that image's file as a whole process
  without torch (the family's and the hyperprior's), measured in one run.

    python bench/overfit.py --data ../shared/data/kodak --part rd --efforts 1 2 3   # resumable; parts of it
        may run side by side (--efforts, --hyperprior-efforts, --no-anchors): they share the file
    python bench/overfit.py --data ../shared/data/kodak --part summary             # the BD-rates of what is there
    python bench/overfit.py --data ../shared/data/kodak --part study --iterations 500
    python bench/overfit.py --data ../shared/data/kodak --part speed
    python bench/overfit.py --data ../shared/data/kodak --part coolchic --coolchic-src SRC --coolchic-python PY \
        --iterations 2000     # Cool-chic 5.0.1 fetched (github:Orange-OpenSource/Cool-Chic, tag v5.0.1) beside lrcodec
    -> bench/results/overfit-rd.json, overfit-study.json, overfit-speed.json (one file a part, so
       that parts run side by side)
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from refine import machine  # noqa: E402

from lrcodec.app.evaluate import CLASSICAL, available_classical, bd_rate, classical_point, evaluate_bytes  # noqa: E402
from lrcodec.metrics import psnr_of, rd_loss  # noqa: E402
from lrcodec.settings import SURROGATES, ZOO_LAMBDAS, EncodeSettings, OverfitSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
IMAGES = ("kodim01", "kodim05", "kodim15", "kodim23")
CROP = (384, 256)
FAMILY_QUALITIES = (2, 3, 4, 6)
HYPERPRIOR_QUALITIES = (2, 3, 4, 5, 6)
ANCHORS = ("AVIF 4:4:4 speed 4", "AVIF 4:4:4", "JPEG XL", "WebP")  # "AVIF 4:4:4" is speed 6
STUDY_IMAGES, STUDY_QUALITIES = ("kodim05", "kodim23"), (3, 6)


def crop(data: Path, name: str) -> Image.Image:
    image = Image.open(data / f"{name}.png").convert("RGB")
    left, top = (image.width - CROP[0]) // 2, (image.height - CROP[1]) // 2
    return image.crop((left, top, left + CROP[0], top + CROP[1]))


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def path(part: str) -> Path:
    return RESULTS / f"overfit-{part}.json"


def load(part: str) -> dict:
    return json.loads(path(part).read_text()) if path(part).exists() else {}


def save(part: dict) -> None:
    path(part["part"]).write_text(json.dumps(part, indent=1) + "\n")


def merge_point(point: dict) -> dict:
    """Add one rd point to the file under a lock (processes with other codecs share it); the
    file's part, with every process's points so far."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / "lrcodec-overfit-rd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        part = load("rd") or {"part": "rd", "points": []}
        part["points"].append(point)
        part["machine"] = machine()
        save(part)
        return part


def _lrcodec_point(image: Image.Image, name: str, codec: str, settings: EncodeSettings, setting: str) -> dict:
    outcome = evaluate_bytes(f"{name}.png", png(image), settings)
    if outcome.data is None:
        raise SystemExit(f"{name} {codec} {setting}: {outcome.row['error']}")
    return {**outcome.row, "codec": codec, "setting": setting}


def rd_part(data: Path, efforts: list[int], profiles: list[str], hyperprior: list[int], anchors: bool,
            images: list[str]) -> None:
    done = {(p["codec"], p["image"], p["setting"]) for p in (load("rd") or {"points": []})["points"]}
    classical = available_classical()

    def add(point: dict) -> None:
        merge_point(point)
        done.add((point["codec"], point["image"], point["setting"]))
        print(point["codec"], point["image"], point["setting"], f"{point['bpp']:.4f} bpp {point['psnr']:.2f} dB "
              f"{point['encode_s']:.1f} s", flush=True)

    # cheapest first, so that an interrupted run has the anchors and the lower efforts
    jobs = [("anchors", None, None)] if anchors else []
    jobs += [(f"lrcodec hyperprior effort {e}", "hyperprior", e) for e in hyperprior if e < 5]
    jobs += [(f"{p} effort {e}", p, e) for e in efforts if e < 3 for p in profiles]
    jobs += [(f"lrcodec hyperprior effort {e}", "hyperprior", e) for e in hyperprior if e >= 5]
    jobs += [(f"{p} effort {e}", p, e) for e in efforts if e >= 3 for p in profiles]
    for codec, model, effort in jobs:
        for name in images:
            image = crop(data, name)
            if model is None:
                for anchor in ANCHORS:
                    if anchor not in classical:
                        continue
                    for q in CLASSICAL[anchor][2]:
                        if (anchor, f"{name}.png", str(q)) not in done:
                            add(classical_point(image, f"{name}.png", anchor, q).as_dict())
                continue
            for q in (HYPERPRIOR_QUALITIES if model == "hyperprior" else FAMILY_QUALITIES):
                if (codec, f"{name}.png", f"q{q}") in done:
                    continue
                settings = EncodeSettings(model=None if model == "hyperprior" else model, quality=q, effort=effort,
                                          time_limit=0.0 if model != "hyperprior" else None)
                add(_lrcodec_point(image, name, codec, settings, f"q{q}"))
    summarise_rd()


def summarise_rd() -> None:
    part = load("rd")
    part["command"] = "python bench/overfit.py --data DATA --part rd (--efforts 1 2 3 --hyperprior-efforts 0 2 5)"
    part["summary"] = rd_summary(part["points"])
    save(part)


def rd_summary(points: list[dict]) -> dict:
    """Per codec: mean bpp, PSNR and encode/decode seconds over its points, and for each
    overfitted curve its BD-rate (PSNR) against every other codec, per image then averaged."""
    by: dict[str, dict[str, list[dict]]] = {}
    for p in points:
        by.setdefault(p["codec"], {}).setdefault(p["image"], []).append(p)
    summary = {}
    for codec, images in by.items():
        everything = [p for ps in images.values() for p in ps]
        row = {"images": len(images), "points": len(everything),
               "encode_s": statistics.median(p["encode_s"] for p in everything),
               "decode_s": statistics.median(p["decode_s"] for p in everything)}
        if codec.startswith("overfit"):
            row["bd_rate_psnr_pct"] = {}
            for other, theirs in by.items():
                if other == codec or other.startswith("overfit") and other.split()[0] == codec.split()[0]:
                    continue
                common = sorted(set(images) & set(theirs))
                if len(common) < len(images):
                    continue
                values = [bd_rate([p["bpp"] for p in theirs[i]], [p["psnr"] for p in theirs[i]],
                                  [p["bpp"] for p in images[i]], [p["psnr"] for p in images[i]]) for i in common]
                row["bd_rate_psnr_pct"][other] = float(np.mean(values)) if all(np.isfinite(values)) else None
        summary[codec] = row
    return summary


def study_part(data: Path, iterations: int, surrogates: list[str]) -> None:
    """Each surrogate from scratch on the study crops at two lambdas, through real files."""
    from lrcodec.codec import decode_image
    from lrcodec.learn.overfit import encode_overfit

    part = load("study") or {"part": "study", "runs": []}
    part["command"] = f"python bench/overfit.py --data DATA --part study --iterations {iterations}"
    part["iterations"] = iterations
    done = {(r["surrogate"], r["image"], r["quality"]) for r in part["runs"] if r["iterations"] == iterations}
    for surrogate in surrogates:
        for name in STUDY_IMAGES:
            image = crop(data, name)
            reference = np.asarray(image, np.float64)
            for q in STUDY_QUALITIES:
                if (surrogate, name, q) in done:
                    continue
                lmbda = ZOO_LAMBDAS[q - 1]
                t0 = time.perf_counter()
                result = encode_overfit(image, OverfitSettings(iterations=iterations, lmbda=lmbda, surrogate=surrogate))
                seconds = time.perf_counter() - t0
                mse = float(np.mean((np.asarray(decode_image(result.data), np.float64) - reference) ** 2)) / 255**2
                bpp = 8 * len(result.data) / (image.width * image.height)
                part["runs"].append({"surrogate": surrogate, "image": name, "quality": q, "lmbda": lmbda,
                                     "iterations": iterations, "bpp": bpp, "psnr": psnr_of(mse),
                                     "rd_loss": rd_loss(lmbda, mse, bpp), "seconds": seconds})
                save(part)
                print(surrogate, name, q, f"{bpp:.4f} bpp {psnr_of(mse):.2f} dB loss {rd_loss(lmbda, mse, bpp):.4f}",
                      flush=True)
    part["summary"] = study_summary(part["runs"], iterations)
    part["machine"] = machine()
    save(part)


def study_summary(runs: list[dict], iterations: int, baseline: str = "soft-round-noise") -> dict:
    """Per surrogate: its mean R-D loss relative to the baseline (C3's and Cool-chic's surrogate) per image and lambda,
    and its BD-rate against the baseline (its two points per image)."""
    runs = [r for r in runs if r["iterations"] == iterations]
    key = {(r["surrogate"], r["image"], r["quality"]): r for r in runs}
    out = {}
    for surrogate in sorted({r["surrogate"] for r in runs}):
        ratios, bds = [], []
        for name in STUDY_IMAGES:
            mine = [key.get((surrogate, name, q)) for q in STUDY_QUALITIES]
            base = [key.get((baseline, name, q)) for q in STUDY_QUALITIES]
            if None in mine or None in base:
                continue
            ratios += [m["rd_loss"] / b["rd_loss"] - 1 for m, b in zip(mine, base)]
            try:
                bds.append(bd_rate([b["bpp"] for b in base], [b["psnr"] for b in base],
                                   [m["bpp"] for m in mine], [m["psnr"] for m in mine]))
            except ValueError:  # a collapsed run: one PSNR at both lambdas, no curve
                bds.append(float("nan"))
        if ratios:
            out[surrogate] = {"rd_loss_vs_baseline_pct": 100 * float(np.mean(ratios)),
                              "bd_rate_vs_baseline_pct": float(np.mean(bds)) if all(np.isfinite(bds)) else None,
                              "psnr": float(np.mean([key[(surrogate, n, q)]["psnr"] for n in STUDY_IMAGES
                                                     for q in STUDY_QUALITIES if (surrogate, n, q) in key])),
                              "bpp": float(np.mean([key[(surrogate, n, q)]["bpp"] for n in STUDY_IMAGES
                                                    for q in STUDY_QUALITIES if (surrogate, n, q) in key]))}
    return out


def coolchic_part(data: Path, src: Path, python: str, iterations: int, images: list[str], qualities: list[int],
                  threads: int) -> None:
    """Cool-chic (fetched and run, never committed; its hop profile, about 2,000 MAC/pixel) and
    overfit-2000 on the same crops, at the same iterations and matched lambdas (Cool-chic's
    loss is MSE + lambda bpp: lambda_cc = 1 / (255^2 lambda)), each file's bytes, PSNR and the
    whole encode's seconds."""
    from lrcodec.codec import decode_image
    from lrcodec.learn.overfit import encode_overfit

    part = load("coolchic") or {"part": "coolchic", "runs": []}
    part["command"] = (f"python bench/overfit.py --data DATA --part coolchic --coolchic-src COOLCHIC/src "
                       f"--coolchic-python PY --iterations {iterations} --threads {threads}")
    done = {(r["codec"], r["image"], r["quality"], r["iterations"]) for r in part["runs"]}
    env = {**__import__("os").environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    for name in images:
        image = crop(data, name)
        reference = np.asarray(image, np.float64)
        for q in qualities:
            lmbda = ZOO_LAMBDAS[q - 1]
            for codec in ("overfit-2000", "Cool-chic 5.0.1 hop"):
                if (codec, name, q, iterations) in done:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    tmp = Path(tmp)
                    t0 = time.perf_counter()
                    if codec == "overfit-2000":
                        data_ = encode_overfit(image, OverfitSettings(iterations=iterations, lmbda=lmbda)).data
                        t1 = time.perf_counter()
                        decoded = decode_image(data_)
                    else:
                        image.save(tmp / "in.png")
                        (tmp / "wd").mkdir()
                        subprocess.run([python, "cc_encode.py", f"--input={tmp / 'in.png'}", f"--output={tmp / 'b.cool'}",
                                        f"--workdir={tmp / 'wd'}", f"--lmbda={1 / (255**2 * lmbda)}",
                                        f"--dec_cfg_residue={src / 'cfg/dec/intra/hop.cfg'}", f"--n_itr={iterations}"],
                                       cwd=src, env=env, check=True, capture_output=True)
                        t1 = time.perf_counter()
                        subprocess.run([python, "cc_decode.py", f"--input={tmp / 'b.cool'}", f"--output={tmp / 'out.png'}"],
                                       cwd=src, env=env, check=True, capture_output=True)
                        data_ = (tmp / "b.cool").read_bytes()
                        decoded = Image.open(tmp / "out.png").convert("RGB")
                    t2 = time.perf_counter()
                mse = float(np.mean((np.asarray(decoded, np.float64) - reference) ** 2)) / 255**2
                bpp = 8 * len(data_) / (image.width * image.height)
                part["runs"].append({"codec": codec, "image": name, "quality": q, "lmbda": lmbda, "iterations": iterations,
                                     "bytes": len(data_), "bpp": bpp, "psnr": psnr_of(mse),
                                     "rd_loss": rd_loss(lmbda, mse, bpp), "encode_s": t1 - t0, "decode_s": t2 - t1})
                part["machine"] = machine()
                save(part)
                print(codec, name, q, f"{bpp:.4f} bpp {psnr_of(mse):.2f} dB {t1 - t0:.0f} s", flush=True)


def _iteration_seconds(step, repeats: int = 6) -> float:
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _process_seconds(commands: dict[str, list[str]], repeats: int = 5) -> dict[str, float]:
    """Each command's median wall seconds as a whole process, the commands interleaved."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, args in commands.items():
            t0 = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def speed_part(data: Path, encode_iterations: int) -> None:
    from lrcodec.encoder import encode
    from lrcodec.families.overfit import OverfitNet
    from lrcodec.format.overfit import PROFILES
    from lrcodec.learn import overfit as learn
    from lrcodec.learn.refine import refine_image
    from lrcodec.models import load_model
    from lrcodec.settings import RefineSettings

    image = Image.open(data / "kodim23.png").convert("RGB")
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float().div_(255)
    part = {"part": "speed", "command": f"python bench/overfit.py --data DATA --part speed --encode-iterations {encode_iterations}",
            "image": f"kodim23 {image.width}x{image.height}", "iteration_s": {}, "decode_process_s": {}}
    for name, profile in PROFILES.items():
        net = OverfitNet(profile, image.height, image.width)
        settings = OverfitSettings(profile=name)
        net.initialise(torch.Generator().manual_seed(0))
        opt, gen = torch.optim.Adam(net.parameters(), lr=settings.lr), torch.Generator().manual_seed(0)
        part["iteration_s"][name] = _iteration_seconds(lambda: learn._step(net, x, settings, 0.5, gen, opt))
    model = load_model(None, 3)
    times = {}
    for n in (8, 24):  # one SSL iteration: the difference of two refinements, per iteration
        t0 = time.perf_counter()
        refine_image(image, model, RefineSettings(iterations=n, eval_every=n))
        times[n] = time.perf_counter() - t0
    part["iteration_s"]["lrc-mshp-q3 refinement"] = (times[24] - times[8]) / 16
    with tempfile.TemporaryDirectory() as tmp:
        files = {"overfit-2000": learn.encode_overfit(image, OverfitSettings(iterations=encode_iterations)).data,
                 "lrc-mshp-q3": encode(image, EncodeSettings(quality=3, effort=0)).data}
        commands = {}
        for name, data_ in files.items():
            path = Path(tmp) / f"{name}.lrc"
            path.write_bytes(data_)
            commands[name] = [sys.executable, "-m", "lrcodec.app.cli", "decode", str(path), "-o",
                              str(Path(tmp) / f"{name}.png"), "--force", "--quiet"]
            part.setdefault("file_bytes", {})[name] = len(data_)
        part["decode_process_s"] = _process_seconds(commands)
        part["import_torch_s"] = _process_seconds({"torch": [sys.executable, "-c", "import torch"]})["torch"]
    part["machine"] = machine()
    save(part)
    print(json.dumps(part, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="Kodak folder (kodim01.png ...)")
    ap.add_argument("--part", choices=("rd", "study", "speed", "summary", "coolchic"), required=True)
    ap.add_argument("--coolchic-src", type=Path, help="coolchic: Cool-chic 5.0.1's source folder (fetched, not committed)")
    ap.add_argument("--coolchic-python", default=sys.executable, help="coolchic: the Python that runs Cool-chic")
    ap.add_argument("--images", nargs="+", help="crops to run (coolchic: default kodim23; rd: all four, "
                    "so that processes of one thread each can share them)")
    ap.add_argument("--qualities", type=int, nargs="+", default=[3, 6], help="coolchic: -q of the runs")
    ap.add_argument("--efforts", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--profiles", nargs="+", default=["overfit-2000"])
    ap.add_argument("--hyperprior-efforts", type=int, nargs="*", default=[0, 2, 5])
    ap.add_argument("--no-anchors", action="store_true")
    ap.add_argument("--iterations", type=int, default=500, help="study: iterations of every run")
    ap.add_argument("--surrogates", nargs="+", default=list(SURROGATES), choices=SURROGATES)
    ap.add_argument("--encode-iterations", type=int, default=250)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    from lrcodec.learn.overfit import keep_freed_memory

    keep_freed_memory()  # as the CLI does for an overfitted encode
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part == "rd":
        rd_part(args.data, args.efforts, args.profiles, args.hyperprior_efforts, not args.no_anchors,
                args.images or list(IMAGES))
    elif args.part == "study":
        study_part(args.data, args.iterations, args.surrogates)
    elif args.part == "speed":
        speed_part(args.data, args.encode_iterations)
    elif args.part == "coolchic":
        coolchic_part(args.data, args.coolchic_src, args.coolchic_python, args.iterations, args.images or ["kodim23"],
                      args.qualities,
                      args.threads or torch.get_num_threads())
    else:
        summarise_rd()


if __name__ == "__main__":
    main()
