"""Decode lrcodec files and print digests of what they decode to, under whatever arithmetic
this process runs: ``python -m lrcodec.probe [--pixels=DIR] FILE...`` prints a JSON object.

Used by the tests and ``bench/portability.py`` to show that the latents do not depend on the
CPU kernels (``ATEN_CPU_CAPABILITY``), oneDNN or not, the thread count or the transforms' dtype."""

from __future__ import annotations

import hashlib
import json
import sys
from contextlib import nullcontext
from pathlib import Path


def latent_digest(latents) -> str:
    """SHA-256 of everything the range decoder produced and what it implies for g_s."""
    h = hashlib.sha256()
    for a in (latents.z_symbols.numpy(), latents.y_symbols.numpy(), latents.sigma_index, latents.y_hat.numpy()):
        h.update(a.tobytes())
    return h.hexdigest()


def pixel_digest(pixels) -> str:
    return hashlib.sha256(pixels.numpy().tobytes()).hexdigest()


def decode_variants(paths: list[str], pixels_dir: str | None = None) -> dict:
    """{variant: {path: {latents, pixels} or {error}}} for threads 1 and 2, native kernels instead
    of oneDNN, and float64 transforms; with ``pixels_dir``, the 2-thread decoded pixels are saved
    there as NAME.npy too."""
    import copy

    import numpy as np
    import torch

    from .bitstream import parse_header
    from .codec import decode_latents, native_kernels
    from .errors import LrcodecError
    from .models import find_model_by_id

    results: dict = {}
    for path in paths:
        data = open(path, "rb").read()
        model = find_model_by_id(parse_header(data).model_id)
        wide = copy.copy(model)
        wide.net, wide._exact = copy.deepcopy(model.net).double(), None
        variants = {"threads-1": (model, 1, nullcontext), "threads-2": (model, 2, nullcontext),
                    "native": (model, 2, native_kernels), "float64": (wide, 2, nullcontext)}
        for name, (m, threads, context) in variants.items():
            torch.set_num_threads(threads)
            record = results.setdefault(name, {})
            try:
                with context():
                    decoded = decode_latents(data, m)
            except LrcodecError as e:
                record[path] = {"error": str(e)}
                continue
            record[path] = {"latents": latent_digest(decoded.latents), "pixels": pixel_digest(decoded.pixels)}
            if pixels_dir and name == "threads-2":
                np.save(f"{pixels_dir}/{Path(path).stem}.npy", decoded.pixels.numpy())
    return results


if __name__ == "__main__":  # pragma: no cover - run in subprocesses by tests and bench
    args = sys.argv[1:]
    pixels_dir = args.pop(0).removeprefix("--pixels=") if args and args[0].startswith("--pixels=") else None
    json.dump(decode_variants(args, pixels_dir), sys.stdout)
