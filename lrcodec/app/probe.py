"""Decode lrcodec files and print digests of what they decode to, under whatever arithmetic
this process runs: ``python -m lrcodec.app.probe [--pixels=DIR] FILE...`` prints a JSON object.

Used by the tests and ``bench/portability.py`` to show that the latents do not depend on the
CPU kernels (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``), oneDNN or not, the thread count or
the transforms' dtype; the pixels are float and may differ by a level between these (the tests
bound how often)."""

from __future__ import annotations

import hashlib
import json
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np


def symbol_digest(latents) -> str:
    """SHA-256 of the integers the range decoder produced (z and y symbols, sigma indices): the
    same on every machine for every format version that decodes there."""
    return _digest(np.asarray(latents.z_symbols), np.asarray(latents.y_symbols), latents.sigma_index)


def latent_digest(latents) -> str:
    """SHA-256 of the symbols and the y_hat they imply for g_s. Machine-independent from format
    2 on (its mu is exact); format 1's y_hat holds a float mu."""
    return _digest(np.asarray(latents.z_symbols), np.asarray(latents.y_symbols), latents.sigma_index, np.asarray(latents.y_hat))


def grid_digest(grids: list) -> str:
    """SHA-256 of an overfitted file's latent grids (int64), level by level with their shapes."""
    return _digest(*[np.asarray(s, np.int64) for g in grids for s in (np.array(np.shape(g)), g)])


def metadata_digest(metadata: dict[str, bytes]) -> str:
    """SHA-256 over the metadata kinds and bytes a file carries (format 3), in kind order."""
    h = hashlib.sha256()
    for kind, raw in metadata.items():
        h.update(kind.encode() + len(raw).to_bytes(8, "little") + raw)
    return h.hexdigest()


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()


def pixel_digest(pixels) -> str:
    return hashlib.sha256(np.asarray(pixels).tobytes()).hexdigest()


VARIANTS = ("threads-1", "threads-2", "threads-3", "native", "float64")  # what each file is decoded under


def decode_variants(paths: list[str], pixels_dir: str | None = None) -> dict:
    """{variant: {path: {symbols, latents, pixels} or {error}}} for threads 1, 2 and 3, native
    kernels instead of oneDNN, and float64 transforms; with ``pixels_dir``, each variant's
    decoded pixels are saved there as NAME.VARIANT.npy too. It sets the thread count and oneDNN process-wide,
    which only a process of its own may do (``python -m lrcodec.app.probe``)."""
    import copy

    import numpy as np
    import torch

    from ..format.bitstream import parse_header
    from ..codec import decode_latents
    from ..errors import LrcodecError
    from ..models import find_model_by_id

    results: dict = {}
    loaded: dict = {}
    for path in paths:
        data = open(path, "rb").read()
        try:  # a file this build cannot read, or whose model is not shipped: the same error in every variant
            model_id = parse_header(data).model_id
            if model_id not in loaded:
                model = find_model_by_id(model_id)
                wide = copy.copy(model)
                wide.net, wide._exact = copy.deepcopy(model.net).double(), None
                loaded[model_id] = model, wide
        except LrcodecError as e:
            for name in VARIANTS:
                results.setdefault(name, {})[path] = {"error": str(e)}
            continue
        model, wide = loaded[model_id]
        variants = dict(zip(VARIANTS, [(model, 1, nullcontext), (model, 2, nullcontext), (model, 3, nullcontext),
                                       (model, 2, lambda: torch.backends.mkldnn.flags(enabled=False)),
                                       (wide, 2, nullcontext)]))
        for name, (m, threads, context) in variants.items():
            torch.set_num_threads(threads)
            record = results.setdefault(name, {})
            try:
                with context():
                    decoded = decode_latents(data, m)
            except LrcodecError as e:
                record[path] = {"error": str(e)}
                continue
            record[path] = {"symbols": symbol_digest(decoded.latents), "latents": latent_digest(decoded.latents),
                            "pixels": pixel_digest(decoded.pixels)}
            if pixels_dir:
                np.save(f"{pixels_dir}/{Path(path).stem}.{name}.npy", decoded.pixels.numpy())
    return results


if __name__ == "__main__":  # pragma: no cover - run in subprocesses by tests and bench
    args = sys.argv[1:]
    pixels_dir = args.pop(0).removeprefix("--pixels=") if args and args[0].startswith("--pixels=") else None
    json.dump(decode_variants(args, pixels_dir), sys.stdout)
