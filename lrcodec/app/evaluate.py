"""Measuring codecs the way the field does: real files, PSNR / MS-SSIM, BD-rate.

* ``evaluate_bytes``: what ``lrcodec eval`` measures of one image: the file ``lrcodec.encoder``
  writes for the settings (the same bytes as ``encode``), decoded as ``decode`` does.
* ``evaluate_image``: a model object's plain encode or refinement, for the benchmarks.
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

from ..encoder import Outcome
from ..format.overfit import is_overfit
from ..metrics import bits_per_pixel, psnr_of
from ..settings import EncodeSettings


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit RGB arrays (the mean over all samples; ``metrics.psnr_of``)."""
    return psnr_of(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) / 255.0**2)


def ms_ssim(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """MS-SSIM (``metrics.ms_ssim``, in float64) of two 8-bit RGB arrays, NaN below 161 pixels a
    side (where its five scales do not fit); ``weights`` (H x W) weigh its maps."""
    import torch

    from ..metrics import MS_SSIM_WEIGHTS, ms_ssim_levels, ms_ssim as _ms_ssim

    if ms_ssim_levels(*a.shape[:2]) < len(MS_SSIM_WEIGHTS):
        return float("nan")
    ta = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(np.array(b)).permute(2, 0, 1)[None].double()
    w = None if weights is None else torch.from_numpy(np.asarray(weights, np.float64))[None, None]
    return float(_ms_ssim(ta, tb, 255.0, weights=w)[0])


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
    effort: int | None = None  # lrcodec's files: the effort, tuning and whether a ROI mask steered them
    tune: str | None = None
    roi: bool = False
    roi_psnr: float | None = None  # PSNR inside the mask (its pixels above half grey)
    iterations: int | None = None  # refinement iterations run (fewer than the effort's where its time limit bound)

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


def evaluate_bytes(source: str, data: bytes, settings: EncodeSettings) -> Outcome:
    """One image as ``lrcodec eval`` measures it (a ``batch`` task: failures are rows): the
    file ``lrcodec.encoder`` writes for ``settings``, decoded as ``lrcodec decode`` does
    (without torch where it can), its bytes, PSNR, MS-SSIM and timings."""
    from pathlib import Path

    from ..codec import decode_image
    from ..encoder import encode, failure, model_for
    from ..imageio import open_image

    try:
        image = open_image(data, source, settings.max_pixels)
        model_for(settings), _decoder(settings)  # loaded before the clocks start, once per process
        t0 = time.perf_counter()
        outcome = encode(image, settings)
        t1 = time.perf_counter()
        decoded = decode_image(outcome.data, _decoder(settings))
        t2 = time.perf_counter()
    except Exception as e:  # reported as ``encode`` reports it
        return failure(e)
    ref, out = _rgb(image), _rgb(decoded)
    effort = settings.effort if settings.refine is None else None
    if is_overfit(settings.model):  # trained, not refined: no tuning applies
        label, tune = f"lrcodec {outcome.row['model']} effort {effort}", None
    else:
        refinement = settings.refine_settings()
        tune = refinement.tune if refinement is not None else None
        label = "lrcodec" + (f" effort {effort}" if effort is not None else f" {settings.refine.label}") + \
            (f" {tune}" if refinement is not None else "")
    point = Point(Path(source).name, label, outcome.row["model"],
                  len(outcome.data), outcome.row["bpp"], psnr(ref, out), ms_ssim(ref, out), t1 - t0, t2 - t1,
                  effort, tune, settings.roi is not None)
    if settings.roi is not None:
        from ..imageio import open_mask

        inside = open_mask(settings.roi, image.width, image.height, settings.max_pixels) > 127
        point.roi_psnr = psnr(ref[inside], out[inside]) if inside.any() else None
    point.iterations = outcome.row["iterations"]
    return Outcome(outcome.data, point.as_dict())


def _decoder(settings: EncodeSettings):
    """The model ``lrcodec decode`` decodes these files with, loaded once per process: the
    model's runtime export (no torch) where it has one, else the model itself."""
    from ..encoder import cached_model, cached_runtime

    if is_overfit(settings.model):
        return None  # the file carries its decoder
    return cached_runtime(settings.model, settings.quality) or cached_model(settings.model, settings.quality, "cpu")


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


def evaluate_paths(paths: list[str], settings: EncodeSettings, jobs: int = 1, executor: str = "local",
                   address: str | None = None, on_done=None) -> list[dict]:
    """Evaluate images on ``batch``'s executors (``jobs`` processes, or Ray), in the order
    given; an image that fails is a one-line error."""
    from ..errors import LrcodecError
    from .batch import Job, execute

    rows = {}
    for job, outcome in execute([Job(p, "") for p in paths], settings, workers=jobs, executor=executor,
                                address=address, task=evaluate_bytes):
        if outcome.data is None:
            raise LrcodecError(outcome.row["error"] if outcome.row["error"].startswith(job.source)
                               else f"{job.source}: {outcome.row['error']}")
        rows[job.source] = outcome.row
        if on_done:
            on_done()
    return [rows[p] for p in paths]
