"""The surrogate study: every training surrogate on the same data, seed, schedule and budget,
at two rate points, scored on Kodak with real files.

Two protocols (the result file says which one produced it):

* ``finetune`` (the CPU protocol, default): every run starts from the same trained model
  (``--init``, the shipped q3: N = 64, M = 96) and gets the same ``--steps`` (2,000) of batch 8 at
  256 x 256 at each ``--lmbdas`` value;
* ``scratch`` (``--init none``, for a GPU session): from random weights at N = 64, M = 96,
  ``--steps`` 20,000 or more.

Runs: ``noise``, ``ste``, ``mixed``, ``uq``, ``soft-round``, ``sua`` at each lambda, then the SUA
paper's tricks as ablations: scale bound 0.01 instead of 0.11 on ``mixed`` and ``sua``; on ``sua``
no partial stop-gradient (lrcodec applies it to SUA only; under ``ste``, ``mixed`` and ``uq`` the
value's gradient to mu is 0 already), final temperature 0 and 0.5; and ``mixed`` again with
seed 1, the yardstick for what the data order and the noise alone change. Each run is scored
on the Kodak images with hard rounding, and ``noise``, ``uq`` and ``soft-round`` also with UQ
coding (dither), ``soft-round`` also with soft-mean reconstruction.
Held-out R-D loss every 250 steps is the training curve. Runs go ``--jobs`` at a time as
one-thread processes; each run resumes from its checkpoint and keeps its score, so the study
can be stopped and continued. ``--collect`` writes what is finished so far.

    python bench/surrogates.py [--jobs 2]                   -> bench/results/surrogates.json, .png
    python bench/surrogates.py --init none --steps 20000    # the from-scratch protocol
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lrcodec.metrics import rd_loss  # noqa: E402
from lrcodec.settings import SURROGATES  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# The settings every run starts from: seed 0, and SUA's final temperature as it was when the
# study ran (0.2; the study's tau_end 0 ablation won and became `lrcodec train`'s default).
STUDY_BASE = {"seed": 0, "tau_end": 0.2}
ABLATIONS = {  # name: (surrogate, TrainConfig changes)
    "mixed, seed 1": ("mixed", {"seed": 1}),  # not an ablation: the spread from data order and noise alone
    "mixed, sigma_min 0.01": ("mixed", {"sigma_min": 0.01}),  # the scale bound on the best surrogate too
    "sua, sigma_min 0.01": ("sua", {"sigma_min": 0.01}),
    "sua, no stop-gradient": ("sua", {"sua_stop_gradient": False}),
    "sua, tau_end 0": ("sua", {"tau_end": 0.0}),
    "sua, tau_end 0.5": ("sua", {"tau_end": 0.5}),
}


def plan(args) -> list[dict]:
    runs = []
    for lmbda in args.lmbdas:
        for surrogate in args.surrogates:
            runs.append({"label": surrogate, "surrogate": surrogate, "lmbda": lmbda, "changes": {}})
    if args.ablations:
        for lmbda in args.lmbdas:
            for label, (surrogate, changes) in ABLATIONS.items():
                runs.append({"label": label, "surrogate": surrogate, "lmbda": lmbda, "changes": changes})
    for run in runs:
        slug = run["label"].replace(", ", "-").replace(" ", "")
        run["key"] = f"{slug}-l{run['lmbda']}"
    return runs


def score(model, images, lmbda: float, surrogate: str, alpha_max: float) -> dict:
    from lrcodec.app.evaluate import evaluate_image

    variants = {"hard rounding": {}}
    if surrogate in ("noise", "uq", "soft-round"):
        variants["UQ coding"] = {"uq": True}
    if surrogate == "soft-round":
        variants["UQ, soft-mean"] = {"reconstruction": "soft-mean", "soft_alpha": round(alpha_max)}
    out = {}
    for name, coding in variants.items():
        points = [evaluate_image(image, n, model, **coding) for n, image in images]
        bpp = float(np.mean([p.bpp for p in points]))
        mse = float(np.mean([10 ** (-p.psnr / 10) for p in points]))
        out[name] = {"bpp": bpp, "psnr": float(np.mean([p.psnr for p in points])),
                     "rd_loss": rd_loss(lmbda, mse, bpp)}
    return out


def run_one(args, run: dict) -> None:
    """Train (or resume) one run and score it; writes WORK/KEY/score.json."""
    import torch

    from lrcodec.imageio import open_image, read_bytes
    from lrcodec.models import load_model
    from lrcodec.learn.train import TrainConfig, train

    torch.set_num_threads(1)
    work = Path(args.work) / run["key"]
    cfg = TrainConfig(data=args.train_data, out=str(work / "model"), lmbda=run["lmbda"], steps=args.steps,
                      batch_size=args.batch_size, crop=args.crop, lr=args.lr, surrogate=run["surrogate"],
                      checkpoint_every=250, checkpoint_dir=str(work / "runs"),
                      init=None if args.init == "none" else args.init,
                      **({"N": 64, "M": 96} if args.init == "none" else {}), **{**STUDY_BASE, **run["changes"]})
    checkpoint = Path(cfg.checkpoint_dir) / "model" / "checkpoint.pt"
    t0 = time.time()
    train(cfg, resume=str(checkpoint) if checkpoint.exists() else None)
    model = load_model(str(work / "model.safetensors"))
    files = sorted(p for p in Path(args.kodak).iterdir() if p.suffix == ".png")[: args.images]
    images = [(p.name, open_image(read_bytes(str(p)), p.name)) for p in files]
    training = model.card["training"]
    result = {**run, "steps": training["steps"], "train_hours": training["hours"],
              "history": training["history"], "kodak": score(model, images, run["lmbda"], run["surrogate"],
                                                             cfg.alpha_max),
              "kodak_images": len(images), "seconds": round(time.time() - t0, 1)}
    (work / "score.json").write_text(json.dumps(result, indent=1) + "\n")


def config_of(args) -> dict:
    return {"init": args.init, "steps": args.steps, "batch_size": args.batch_size, "crop": args.crop,
            "lr": args.lr, "lmbdas": args.lmbdas, "seed": 0, "kodak_images": args.images,
            "data": os.path.relpath(args.train_data, ROOT)}  # relative: the same study in any clone


def finished(args, runs: list[dict]) -> dict:
    """key -> score of the runs done: scored in the work folder, or recorded in the committed
    result file under the same configuration (so a fresh clone continues the study)."""
    out = {}
    committed = RESULTS / "surrogates.json"
    if committed.exists():
        previous = json.loads(committed.read_text())
        if previous.get("config") == config_of(args):
            out = {r["key"]: r for r in previous.get("runs", [])}
    for r in runs:
        path = Path(args.work) / r["key"] / "score.json"
        if path.exists():
            out[r["key"]] = json.loads(path.read_text())
    return out


def collect(args, runs: list[dict]) -> dict:
    scores = finished(args, runs)
    done = [scores[r["key"]] for r in runs if r["key"] in scores]
    best = {}
    for lmbda in args.lmbdas:
        mine = [d for d in done if d["lmbda"] == lmbda and not d["changes"]]
        if mine:
            winner = min(mine, key=lambda d: d["kodak"]["hard rounding"]["rd_loss"])
            best[str(lmbda)] = winner["label"]
    result = {
        "command": "python bench/surrogates.py" + "".join(f" {a}" for a in sys.argv[1:] if a != "--collect"),
        "protocol": "scratch" if args.init == "none" else "finetune",
        "config": config_of(args),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "runs_planned": len(runs), "runs_done": len(done),
        "best_by_hard_rounding_rd_loss": best, "runs": done,
        "note": "R-D loss = lambda 255^2 MSE + bpp from real files and decoded 8-bit pixels (MSE averaged "
                "over images); history: held-out R-D loss with hard rounding every 250 steps.",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "surrogates.json").write_text(json.dumps(result, indent=1) + "\n")
    if done:
        plot(done, RESULTS / "surrogates.png")
    return result


def plot(done: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lmbdas = sorted({d["lmbda"] for d in done})
    labels = sorted({d["label"] for d in done})
    palette = plt.cm.tab10 if len(labels) <= 10 else plt.cm.tab20
    color = {label: palette(i % palette.N) for i, label in enumerate(labels)}  # one colour per run in both rows
    fig, axes = plt.subplots(2, len(lmbdas), figsize=(6 * len(lmbdas), 8), squeeze=False)
    for col, lmbda in enumerate(lmbdas):
        for d in sorted((d for d in done if d["lmbda"] == lmbda), key=lambda d: d["label"]):
            steps = [h["step"] for h in d["history"]]
            axes[0][col].plot(steps, [h["loss"] for h in d["history"]], marker=".", color=color[d["label"]],
                              label=d["label"])
            for variant, r in d["kodak"].items():
                marker = {"hard rounding": "o", "UQ coding": "s", "UQ, soft-mean": "^"}[variant]
                axes[1][col].scatter(r["bpp"], r["psnr"], marker=marker, color=color[d["label"]],
                                     label=f"{d['label']} ({variant})")
        axes[0][col].set(title=f"lambda {lmbda}: held-out R-D loss", xlabel="step", ylabel="R-D loss")
        axes[1][col].set(title=f"lambda {lmbda}: Kodak, real files", xlabel="bpp", ylabel="PSNR (dB)")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--init", default="lrc-mshp-q3", help="common start, or 'none' for from scratch")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=None, help="default 1e-4 for fine-tunes, 1e-3 from scratch")
    ap.add_argument("--lmbdas", type=float, nargs="+", default=[0.0035, 0.013])
    ap.add_argument("--surrogates", nargs="+", default=list(SURROGATES), choices=SURROGATES)
    ap.add_argument("--no-ablations", dest="ablations", action="store_false")
    ap.add_argument("--images", type=int, default=24, help="the first N Kodak images")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "surrogate-study"))
    ap.add_argument("--collect", action="store_true", help="only write the results of finished runs")
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)  # internal: one run in this process
    args = ap.parse_args()
    if args.lr is None:
        args.lr = 1e-3 if args.init == "none" else 1e-4
    runs = plan(args)
    if args.run:
        run_one(args, next(r for r in runs if r["key"] == args.run))
        return 0
    if not args.collect:
        done = finished(args, runs)
        todo = [r for r in runs if r["key"] not in done]
        Path(args.work).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        running: list[subprocess.Popen] = []
        for run in todo:
            while len(running) >= args.jobs:
                time.sleep(5)
                running = [p for p in running if p.poll() is None]
            with open(Path(args.work) / f"{run['key']}.log", "a") as log:
                running.append(subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--run", run["key"]],
                                                env=env, stdout=log, stderr=subprocess.STDOUT))
            print(f"started {run['key']}", file=sys.stderr)
        for p in running:
            p.wait()
    result = collect(args, runs)
    print(f"{result['runs_done']} of {result['runs_planned']} runs done; best: {result['best_by_hard_rounding_rd_loss']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
