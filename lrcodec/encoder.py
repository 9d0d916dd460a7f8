"""The one encoder: an image and ``EncodeSettings`` in, an lrcodec file out. ``encode``,
``refine``, the batch workers, Ray tasks, the Pillow plugin, the demo and ``eval`` all call it,
so identical settings give identical files whoever asks.

    outcome = encode(image, EncodeSettings(effort=2))   # outcome.data: the file's bytes
    outcome = encode_bytes(png_bytes, "photo.png", settings)

A plain encode (effort 0) runs without torch where the model has a runtime export and CUDA is
not asked for; refinement runs on the model's torch network. Models are loaded once per process
and kept for later images (keyed by name, quality, models folder and device).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .errors import LrcodecError
from .format.overfit import is_overfit
from .settings import EncodeSettings


@dataclass
class Outcome:
    """One image's result: the file's bytes (None if it failed) and a summary row."""

    data: bytes | None
    row: dict = field(default_factory=dict)


_models: dict = {}
_lock = threading.Lock()


def cached_model(name: str | None, quality: int | None, device: str = "cpu"):
    """A model loaded once per process (workers keep theirs for every later image)."""
    from .devices import resolve_device
    from .models import load_model, models_dir

    dev = resolve_device(device)
    key = (name, quality, str(models_dir()), str(dev))
    with _lock:
        if key not in _models:
            _models[key] = load_model(name, quality).to(dev)
        return _models[key]


def cached_runtime(name: str | None, quality: int | None):
    """The model's runtime export (``lrcodec.runtime``; None: it codes with torch only), found
    once per process."""
    from .models import models_dir
    from .runtime import runtime_for

    key = ("runtime", name, quality, str(models_dir()))
    with _lock:
        if key not in _models:
            _models[key] = runtime_for(name, quality, quiet=True)
        return _models[key]


def model_for(settings: EncodeSettings):
    """The model an encode with these settings codes with: its runtime export for a plain
    encode that has one (no torch) unless CUDA is asked for, else the torch model; None for
    the overfitted family, which learns its decoder for each image."""
    if is_overfit(settings.model):
        return None
    plain = settings.refine_settings() is None and not settings.device.startswith("cuda")
    return (plain and cached_runtime(settings.model, settings.quality)) or cached_model(
        settings.model, settings.quality, settings.device)


def encode_bytes(data: bytes, name: str, settings: EncodeSettings, progress=None) -> Outcome:
    """``encode`` of an image given as file bytes (orientation applied, size limit checked)."""
    from .imageio import open_image

    t0 = time.perf_counter()
    return encode(open_image(data, name, settings.max_pixels), settings, progress, t0)


def encode(image, settings: EncodeSettings, progress=None, started: float | None = None) -> Outcome:
    """The file of a PIL image as ``settings`` say (refinement, ROI, tuning, metadata and alpha kept);
    the row's size and bpp are the whole file's. ``progress(stage, done, total, ...)``."""
    t0 = time.perf_counter() if started is None else started
    if is_overfit(settings.model):
        outcome = _encode_overfit(image, settings, progress)
    else:
        outcome = _encode_pixels(image, model_for(settings), settings, progress)
    outcome.row.update(seconds=time.perf_counter() - t0)
    return _with_metadata(outcome, image, settings)


def _with_metadata(outcome: Outcome, image, settings: EncodeSettings) -> Outcome:
    """The outcome with the input's metadata that ``settings.metadata`` keeps in its file."""
    from .format.bitstream import with_metadata
    from .imageio import image_metadata
    from .metrics import bits_per_pixel

    metadata = image_metadata(image, settings.metadata)
    if not metadata:
        return outcome
    data = with_metadata(outcome.data, metadata)
    return Outcome(data, {**outcome.row, "bytes": len(data),
                          "bpp": bits_per_pixel(8 * len(data), image.width * image.height)})


def _quantizer(model, settings: EncodeSettings) -> dict:
    from .codec import quantizer_options

    return quantizer_options(model, settings.uq, settings.seed, settings.reconstruction, settings.soft_alpha)


def _roi(settings: EncodeSettings, image):
    """The ROI mask for this image (None: none)."""
    if settings.roi is None:
        return None
    from .imageio import open_mask

    return open_mask(settings.roi, image.width, image.height, settings.max_pixels)


def _encode_pixels(image, model, settings: EncodeSettings, progress=None) -> Outcome:
    from .codec import encode_image

    refinement = settings.refine_settings()
    quantizer = _quantizer(model, settings)
    if refinement is None:
        if settings.target_bpp is not None:
            raise LrcodecError("--target-bpp needs refinement (an effort above 0)")
        encoded = encode_image(image, model, **quantizer, drop_alpha=settings.drop_alpha, progress=progress)
        return Outcome(encoded.data, {"width": image.width, "height": image.height, "model": model.name,
                                      "bytes": len(encoded.data), "bpp": encoded.bpp, "iterations": 0})
    from .learn.refine import find_lambda_for_bpp, refine_image

    options = dict(**quantizer, drop_alpha=settings.drop_alpha, roi=_roi(settings, image), progress=progress)
    if settings.target_bpp is not None:
        result, _ = find_lambda_for_bpp(image, model, settings.target_bpp, settings=refinement, **options)
    else:
        result = refine_image(image, model, refinement, **options)
    return refined_outcome(result, image, model, settings)


def _encode_overfit(image, settings: EncodeSettings, progress=None) -> Outcome:
    from .devices import resolve_device
    from .format.bitstream import parse_header
    from .learn.overfit import encode_overfit

    overfit = settings.overfit_settings(image.width * image.height)
    result = encode_overfit(image, overfit, drop_alpha=settings.drop_alpha, device=str(resolve_device(settings.device)),
                            progress=progress, max_pixels=settings.max_pixels)
    header = parse_header(result.data, max_pixels=2**64)
    return Outcome(result.data, {
        "width": image.width, "height": image.height, "model": result.profile, "bytes": len(result.data),
        "bpp": result.bpp, "psnr": result.psnr, "iterations": result.iterations, "lmbda": result.lmbda,
        "decoder_bytes": header.z_length, "latent_bytes": header.y_length})


def refined_outcome(result, image, model, settings: EncodeSettings, **extra) -> Outcome:
    """The outcome of a ``RefineResult``."""
    encoded = result.encoded
    return Outcome(encoded.data, {
        "width": image.width, "height": image.height, "model": model.name, "bytes": len(encoded.data),
        "bpp": encoded.bpp, "psnr": result.psnr, "base_bytes": len(result.base.data), "base_bpp": result.base.bpp,
        "base_psnr": result.base_psnr, "iterations": result.iterations, "kept_base": result.kept_base,
        "lmbda": result.lmbda, "tune": result.tune, "roi": settings.roi is not None, **extra})


def encode_group(items: list[tuple[str, bytes]], settings: EncodeSettings) -> list[Outcome]:
    """Refine images of one size as one batch (on a GPU, one batch costs about what one image
    does); an image that fails alone is reported alone, by ``guarded``. With a region of
    interest, whose mask is resized to each image, and with the overfitted family, they are
    encoded one by one."""
    from .imageio import open_image
    from .learn.refine import refine_images

    if settings.roi is not None or is_overfit(settings.model):
        return [guarded(name, data, settings) for name, data in items]
    t0 = time.perf_counter()
    opened, outcomes = [], [None] * len(items)
    for i, (name, data) in enumerate(items):
        try:
            opened.append((i, open_image(data, name, settings.max_pixels)))
        except LrcodecError as e:
            outcomes[i] = Outcome(None, {"error": str(e)})
    if opened:
        model = model_for(settings)
        try:
            results = refine_images([image for _, image in opened], model, settings.refine_settings(),
                                    **_quantizer(model, settings), drop_alpha=settings.drop_alpha)
        except Exception:  # an image the batch could not take (or the GPU's memory): one by one
            for i, _ in opened:
                outcomes[i] = guarded(items[i][0], items[i][1], settings)
        else:
            seconds = (time.perf_counter() - t0) / len(opened)
            for (i, image), result in zip(opened, results):
                outcomes[i] = _with_metadata(refined_outcome(result, image, model, settings, seconds=seconds,
                                                             batch=len(opened)), image, settings)
    return outcomes


def guarded(source: str, data: bytes, settings: EncodeSettings) -> Outcome:
    """``encode_bytes`` with its failure turned into a row, so that one bad image stops nothing."""
    try:
        return encode_bytes(data, source, settings)
    except Exception as e:
        return failure(e)


def failure(error: Exception) -> Outcome:
    """The row of a failed image: lrcodec's one-line message, or an unforeseen error's first line."""
    if isinstance(error, LrcodecError):
        return Outcome(None, {"error": str(error)})
    first = str(error).splitlines()[0] if str(error) else ""
    return Outcome(None, {"error": f"{type(error).__name__}: {first}"})
