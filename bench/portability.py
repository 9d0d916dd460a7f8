"""Do files decode the same under other arithmetic? Every image x every shipped model: encode
here, decode in a subprocess with PyTorch's kernels without SIMD (ATEN_CPU_CAPABILITY=default)
and oneDNN held to SSE4.1 (ONEDNN_MAX_CPU_ISA=SSE41), each with 1, 2 and 3 threads, native
kernels instead of oneDNN, and float64 transforms; compare
latents (must be identical) and pixels (float g_s: may differ) with the decode in this process.
Also: what the exact entropy-parameter path costs in rate against the float network's sigma/mu.

    python bench/portability.py [--data DIR] [--images N] [--capability default]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lrcodec import codec
from lrcodec.imageio import open_image, read_bytes
from lrcodec.models import load_model, shipped_models
from lrcodec.app.probe import latent_digest
from lrcodec.format.likelihoods import gaussian_interval_likelihood

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def y_bits(y, mu, sigma, table) -> float:
    """Ideal bits of y coded around mu with sigma rounded up to the coder's table."""
    idx = np.clip(np.searchsorted(table, sigma.ravel()), 0, len(table) - 1)
    s = torch.from_numpy(table[idx].reshape(sigma.shape))
    v = torch.round(torch.from_numpy(y - mu))
    return -torch.log2(gaussian_interval_likelihood(v - 0.5, v + 0.5, s)).sum().item()


def rate_cost(model, image) -> tuple[float, float]:
    """(bits of y with the exact path's sigma and mu, with the float h_s's), same z symbols."""
    x, _ = codec.prepare_image(image)
    y, z = codec.analyse(model, x)
    q = codec.quantize_latents(model, y, z)
    with torch.no_grad():
        sigma, mu = model.family.split(model.family.hyper_synthesis(model.net, q.z_hat))
    y64, table = y.double().numpy(), model.exact.sigma_table
    exact = y_bits(y64, q.mu.numpy(), q.sigma.numpy(), table)  # q.sigma is already a table value
    return exact, y_bits(y64, mu.double().numpy(), sigma.double().numpy(), table)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--images", type=int, default=None, help="first N images only")
    ap.add_argument("--capability", default="default", help="ATEN_CPU_CAPABILITY of the decoding process")
    ap.add_argument("--onednn-isa", default="SSE41", help="ONEDNN_MAX_CPU_ISA of the decoding process")
    args = ap.parse_args()
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() == ".png")[: args.images]
    images = [(p.stem, open_image(read_bytes(str(p)), p.name)) for p in files]
    cards = shipped_models()
    per_model = {}
    with tempfile.TemporaryDirectory() as tmp:
        for card in cards:
            model = load_model(card["name"])
            here, paths, bits_exact, bits_float = {}, [], 0.0, 0.0
            for stem, image in images:
                data = codec.encode_image(image, model).data
                path = Path(tmp) / f"{card['name']}-{stem}.lrc"
                path.write_bytes(data)
                paths.append(str(path))
                here[str(path)] = codec.decode_latents(data, model)
                e, f = rate_cost(model, image)
                bits_exact, bits_float = bits_exact + e, bits_float + f
            pixels_dir = Path(tmp) / "pixels"
            pixels_dir.mkdir(exist_ok=True)
            out = subprocess.run([sys.executable, "-m", "lrcodec.app.probe", f"--pixels={pixels_dir}", *paths],
                                 capture_output=True, text=True, env={**os.environ, "ATEN_CPU_CAPABILITY": args.capability,
                                                              "ONEDNN_MAX_CPU_ISA": args.onednn_isa})
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return 1
            probe = json.loads(out.stdout)
            failures = {v: [Path(p).stem for p, r in by.items() if "error" in r] for v, by in probe.items()}
            latent_mismatches = {v: [Path(p).stem for p, r in by.items()
                                     if r.get("latents") != latent_digest(here[p].latents)] for v, by in probe.items()}
            differing, max_diff, total = 0, 0, 0
            for p in paths:
                ours = here[p].pixels.numpy().astype(np.int16)
                for variant in probe:  # every variant's pixels: thread counts, native kernels, float64
                    theirs = np.load(pixels_dir / f"{Path(p).stem}.{variant}.npy").astype(np.int16)
                    differing += int((theirs != ours).sum())
                    max_diff = max(max_diff, int(np.abs(theirs - ours).max()))
                    total += ours.size
            per_model[card["name"]] = {
                "files": len(paths), "decode_failures": failures, "latent_mismatches": latent_mismatches,
                "pixels_differing": differing, "pixel_values": total, "pixels_differing_pct": 100 * differing / total,
                "max_pixel_difference": max_diff,
                "rate_cost_exact_vs_float_pct": 100 * (bits_exact / bits_float - 1),
            }
            print(card["name"], json.dumps(per_model[card["name"]]), file=sys.stderr)
    failures = sum(len(v) for m in per_model.values() for v in m["decode_failures"].values())
    mismatches = sum(len(v) for m in per_model.values() for v in m["latent_mismatches"].values())
    result = {
        "command": "python bench/portability.py" + (f" --images {args.images}" if args.images else ""),
        "date": time.strftime("%Y-%m-%d %H:%M"), "data": args.data, "images": [s for s, _ in images],
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "encoded_with": "this process (PyTorch's default CPU kernels, oneDNN on, 2 threads)",
        "decoded_with": f"ATEN_CPU_CAPABILITY={args.capability} ONEDNN_MAX_CPU_ISA={args.onednn_isa}, variants: 1, 2 and 3 threads, native kernels "
                        "instead of oneDNN, float64 transforms (pixels compared for every variant)",
        "summary": {"files": sum(m["files"] for m in per_model.values()), "variants": len(probe),
                    "decode_failures": failures, "latent_mismatches": mismatches,
                    "pixels_differing_pct": 100 * sum(m["pixels_differing"] for m in per_model.values())
                    / sum(m["pixel_values"] for m in per_model.values()),
                    "max_pixel_difference": max(m["max_pixel_difference"] for m in per_model.values())},
        "models": per_model,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "portability.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
