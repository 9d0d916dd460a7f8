"""Measuring codecs the way the field does: real files, PSNR / MS-SSIM, BD-rate.

* ``evaluate_image``: encode (or refine) and decode one image through real bytes.
* ``classical_point``: the same for Pillow's JPEG, WebP, AVIF and JPEG 2000 encoders.
* ``bd_rate``: Bjøntegaard delta rate with piecewise-cubic (PCHIP) interpolation of
  log-rate over PSNR, integrated over the overlapping quality interval.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..metrics import bits_per_pixel, psnr_of


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit RGB arrays (the mean over all samples; ``metrics.psnr_of``)."""
    return psnr_of(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) / 255.0**2)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, data range 255) of two 8-bit RGB arrays; needs sides >= 161."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    ta = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(np.array(b)).permute(2, 0, 1)[None].double()
    if min(a.shape[:2]) < 161:
        return float("nan")
    return float(_ms_ssim(ta, tb, data_range=255.0))


def ms_ssim_db(value: float) -> float:
    return -10 * math.log10(max(1 - value, 1e-12))


@dataclass
class Point:
    """One image coded at one setting."""

    image: str
    codec: str
    setting: str
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encode_s: float = 0.0
    decode_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _rgb(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def evaluate_image(image, name: str, model, *, method: str = "base", iterations: int = 500,
                   uq: bool = False, seed: int = 0, reconstruction: str = "dither",
                   soft_alpha: int | None = None, **refine_options) -> Point:
    """Encode (or refine) and decode one image through real bytes; time both.
    Soft-mean reconstruction implies universal quantization."""
    from ..codec import decode_image, encode_image, quantizer_options
    from ..learn.refine import refine_image

    quantizer = quantizer_options(model, uq, seed, reconstruction, soft_alpha)
    t0 = time.perf_counter()
    if method == "base":
        data = encode_image(image, model, **quantizer).data
    else:
        data = refine_image(image, model, method=method, iterations=iterations, **quantizer,
                            **refine_options).encoded.data
    t1 = time.perf_counter()
    decoded = decode_image(data, model)
    t2 = time.perf_counter()
    ref, out = _rgb(image), _rgb(decoded)
    label = (model.name + ("" if method == "base" else f"+{method}") + ("+uq" if quantizer["uq"] else "")
             + (f"+soft-mean{quantizer['soft_alpha']}" if quantizer["soft_alpha"] else ""))
    return Point(name, label, str(model.card.get("lmbda", "")), len(data), bits_per_pixel(8 * len(data), image.width * image.height),
                 psnr(ref, out), ms_ssim(ref, out), t1 - t0, t2 - t1)


# ------------------------------------------------------------------ classical codecs

CLASSICAL = {
    # name: (Pillow format, save options for a quality q, qualities to sweep)
    "JPEG": ("JPEG", lambda q: {"quality": q, "subsampling": "4:2:0"}, [5, 10, 20, 30, 40, 50, 60, 70, 80, 90]),
    "WebP": ("WEBP", lambda q: {"quality": q, "method": 6}, [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90]),
    "AVIF 4:4:4": ("AVIF", lambda q: {"quality": q, "subsampling": "4:4:4", "speed": 6}, [5, 10, 20, 30, 40, 50, 60, 70, 80]),
    "AVIF 4:4:4 speed 4": ("AVIF", lambda q: {"quality": q, "subsampling": "4:4:4", "speed": 4},
                           [5, 10, 20, 30, 40, 50, 60, 70, 80]),
    "AVIF 4:2:0": ("AVIF", lambda q: {"quality": q, "subsampling": "4:2:0", "speed": 6}, [5, 10, 20, 30, 40, 50, 60, 70, 80]),
    # Compression ratios (24 bpp / ratio); mct=1 applies the colour transform (Pillow's default is off).
    "JPEG 2000": ("JPEG2000", lambda r: {"quality_mode": "rates", "quality_layers": [r], "irreversible": True, "mct": 1},
                  [240, 160, 120, 80, 60, 40, 30, 20, 15]),
    # Plugins (the formats extra installs them): libheif's HEVC, libjxl at its default effort.
    "HEIC 4:4:4": ("HEIF", lambda q: {"quality": q, "chroma": 444}, [5, 10, 20, 30, 40, 50, 60, 70, 80]),
    "JPEG XL": ("JXL", lambda q: {"quality": q, "effort": 7}, [10, 20, 30, 40, 50, 60, 70, 80, 90]),
}


def available_classical() -> dict:
    """The classical codecs this Pillow build can write (name -> spec), and why others are missing."""
    from PIL import features

    from ..imageio import register_formats

    have = {"avif": features.check("avif"), **register_formats()}
    need = {"JPEG": features.check("jpg"), "WebP": features.check("webp"), "AVIF 4:4:4": have["avif"],
            "AVIF 4:4:4 speed 4": have["avif"], "AVIF 4:2:0": have["avif"], "JPEG 2000": features.check("jpg_2000"),
            "HEIC 4:4:4": have["heif"], "JPEG XL": have["jxl"]}
    return {k: v for k, v in CLASSICAL.items() if need[k]}


def classical_point(image, name: str, codec_name: str, setting) -> Point:
    from PIL import Image

    fmt, options, _ = CLASSICAL[codec_name]
    rgb = image.convert("RGB")
    buf = io.BytesIO()
    t0 = time.perf_counter()
    rgb.save(buf, format=fmt, **options(setting))
    t1 = time.perf_counter()
    data = buf.getvalue()
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    decoded.load()
    t2 = time.perf_counter()
    ref, out = _rgb(rgb), _rgb(decoded)
    return Point(name, codec_name, str(setting), len(data), bits_per_pixel(8 * len(data), rgb.width * rgb.height),
                 psnr(ref, out), ms_ssim(ref, out), t1 - t0, t2 - t1)


# ------------------------------------------------------------------ curves and BD-rate


def average_curve(points: list[Point]) -> list[dict]:
    """Mean bpp / PSNR / MS-SSIM per (codec, setting) over images, sorted by rate."""
    groups: dict[tuple[str, str], list[Point]] = {}
    for p in points:
        groups.setdefault((p.codec, p.setting), []).append(p)
    rows = []
    for (codec, setting), ps in groups.items():
        ssim = [p.ms_ssim for p in ps if not math.isnan(p.ms_ssim)]
        rows.append({
            "codec": codec, "setting": setting, "images": len(ps),
            "bpp": float(np.mean([p.bpp for p in ps])), "psnr": float(np.mean([p.psnr for p in ps])),
            "ms_ssim": float(np.mean(ssim)) if ssim else float("nan"),
            "encode_s": float(np.median([p.encode_s for p in ps])),
            "decode_s": float(np.median([p.decode_s for p in ps])),
        })
    return sorted(rows, key=lambda r: (r["codec"], r["bpp"]))


def bd_rate(rate_a, quality_a, rate_b, quality_b) -> float:
    """Average bitrate difference of curve B against curve A at equal quality, in percent
    (negative: B needs fewer bits). PCHIP of log-rate over quality, integrated over the
    overlap; NaN when the curves do not overlap."""
    from scipy.integrate import quad
    from scipy.interpolate import PchipInterpolator

    def curve(rate, quality):
        order = np.argsort(quality)
        q = np.asarray(quality, dtype=np.float64)[order]
        r = np.log(np.asarray(rate, dtype=np.float64)[order])
        keep = np.concatenate([[True], np.diff(q) > 1e-9])
        return PchipInterpolator(q[keep], r[keep]), q[keep][0], q[keep][-1]

    if min(len(rate_a), len(rate_b)) < 2:
        return float("nan")
    fa, lo_a, hi_a = curve(rate_a, quality_a)
    fb, lo_b, hi_b = curve(rate_b, quality_b)
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    if not hi > lo:
        return float("nan")
    ia = quad(fa, lo, hi, limit=200)[0]
    ib = quad(fb, lo, hi, limit=200)[0]
    return float((math.exp((ib - ia) / (hi - lo)) - 1) * 100)


def bd_rates(anchor: dict, curve: dict) -> dict:
    """BD-rate of ``curve`` against ``anchor`` (dicts of bpp, psnr, ms_ssim lists) in PSNR and
    in MS-SSIM dB, the two figures every benchmark reports."""
    return {
        "bd_rate_psnr_pct": bd_rate(anchor["bpp"], anchor["psnr"], curve["bpp"], curve["psnr"]),
        "bd_rate_ms_ssim_pct": bd_rate(anchor["bpp"], [ms_ssim_db(s) for s in anchor["ms_ssim"]],
                                       curve["bpp"], [ms_ssim_db(s) for s in curve["ms_ssim"]]),
    }


# ------------------------------------------------------------------ folders, in parallel


def collect_images(paths: list[str]) -> list[str]:
    """Image files named directly or found (sorted, recursively) inside the given folders."""
    from ..imageio import expand_inputs

    return [str(path) for path, _ in expand_inputs(paths)]


_worker_model = None


def _init_worker(model_name, quality, threads, device="cpu"):
    import torch

    from .batch import cached_model

    global _worker_model
    torch.set_num_threads(threads)
    _worker_model = cached_model(model_name, quality, device)


def _evaluate_path(args) -> dict:
    from pathlib import Path

    from ..imageio import open_image, read_bytes

    path, options = args
    image = open_image(read_bytes(path), path)
    return evaluate_image(image, Path(path).name, _worker_model, **options).as_dict()


def evaluate_paths(paths: list[str], model_name, quality, options: dict, jobs: int = 1, on_done=None,
                   device: str = "cpu") -> list[dict]:
    """Evaluate images in ``jobs`` processes, each with an equal share of the CPU threads."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))
    work = [(p, options) for p in paths]
    if jobs <= 1:
        _init_worker(model_name, quality, threads, device)
        results = []
        for w in work:
            results.append(_evaluate_path(w))
            if on_done:
                on_done()
        return results
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(model_name, quality, threads, device)) as pool:
        results = []
        for r in pool.map(_evaluate_path, work):
            results.append(r)
            if on_done:
                on_done()
        return results
