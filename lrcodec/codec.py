"""Image <-> latents <-> lrcodec bytes: the codec's library API.

    encode_image(image, model) -> EncodeResult (.data is the file's bytes)
    decode_image(data)         -> PIL image (the model is found from the file's model id)

An image's alpha channel is kept losslessly beside the coded colours (format 5,
``lrcodec.format.alpha``) unless dropped.

A file of a shipped model decodes without torch (``lrcodec.runtime``: the exact path in numpy,
g_s on onnxruntime) unless a ``LoadedModel`` is passed, which decodes with torch; a
``RuntimeModel`` (``lrcodec.runtime.runtime_for``) also plain-encodes without torch.

Images are padded (edge replication) on the right and bottom to a multiple of 64 and
cropped back after decoding; only the real pixels count in bpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .format import alpha as alpha_record, bitstream, entropy
from .format.bitstream import FLAG_REFINED, FLAG_SOFT_MEAN, FLAG_UQ, Header
from .errors import LrcodecError, torch_missing
from .metrics import bits_per_pixel
from .format.exact import ACT_BITS, as_f64
from .families.coding import YTables
from .format.format1 import decode_latents_v1
from .format.latents import Dither, QuantizedLatents, channel_index, dithers, latent_shapes
from .models import LoadedModel, to_pixels
from .runtime import RuntimeModel
from .settings import RECONSTRUCTIONS
from .format.tiling import tile_side, tiled

TILE = 512  # pixels per tile side for g_a and g_s (32 latents) of an image larger than WHOLE;
# each tile has a halo of the transform's receptive field (``LoadedModel.halos``)
WHOLE = 1024 * 1024  # pixels up to which an image is transformed in one piece (``tiling.tile_side``)


@dataclass
class EncodeResult:
    data: bytes
    header: Header
    latents: QuantizedLatents
    bits_ideal: float  # -sum log2 P of all coded symbols under the coded model
    bits_coder: float  # the same under the range coder's weights (``entropy.coder_weights``)
    info: dict = field(default_factory=dict)

    @property
    def bpp(self) -> float:
        return bits_per_pixel(8 * len(self.data), self.header.width * self.header.height)


def image_to_tensor(image):
    """(1, 3, H, W) float tensor in [0, 1] from an RGB PIL image."""
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float().div_(255)


def tensor_to_image(x, mode: str = "RGB"):
    """PIL image from a (1, 3, H, W) float tensor or uint8 pixels (a tensor or an array), back
    to ``mode``."""
    from PIL import Image

    if isinstance(x, np.ndarray):
        arr = x[0].transpose(1, 2, 0)
    else:
        arr = (x if not x.is_floating_point() else to_pixels(x))[0].permute(1, 2, 0).numpy()
    image = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    return image.convert(mode) if mode != "RGB" else image


def _stage(progress, stage: str):
    """``progress`` as a tiler's ``on_tile`` for one stage (None stays None)."""
    return None if progress is None else lambda done, total: progress(stage, done, total)


def analyse(model: "LoadedModel | RuntimeModel", x, progress=None):
    """(y, z) of a padded image, float in [0, 1] or uint8 pixels (converted tile by tile, so
    that a large image is never held in float): g_a runs tile by tile (a ``LoadedModel``: on
    its device, where y and z stay; a ``RuntimeModel``: arrays, on onnxruntime).
    ``progress(stage, done, total)`` hears of each tile."""
    y = tiled(model.g_a, x, down=16, tile=tile_side(*x.shape[-2:], TILE, WHOLE), halo=model.halos[0],
              on_tile=_stage(progress, "analysis"))
    return y, model.h_a(y)


def synthesise(model: "LoadedModel | RuntimeModel", y_hat, height: int, width: int, progress=None):
    """8-bit pixels (uint8, (1, 3, height, width)) from y_hat; g_s runs tile by tile, on torch
    (a ``LoadedModel``, y_hat a tensor) or onnxruntime (a ``RuntimeModel``, y_hat an array).

    The one float step of decoding: its pixels may differ by a level between machines, kernels,
    thread counts or runtimes (bench/portability.py, bench/threads.py and bench/decode.py
    measure how often), never the latents."""
    pixels = tiled(model.g_s, y_hat, up=16, tile=tile_side(*y_hat.shape[-2:], TILE // 16, WHOLE // 256),
                   halo=model.halos[1], on_tile=_stage(progress, "synthesis"))
    return pixels[:, :, :height, :width]


def soft_mean_alpha(model: "LoadedModel | RuntimeModel", reconstruction: str = "dither", soft_alpha: int | None = None) -> int:
    """The soft-rounding alpha to code with: 0 for plain dither reconstruction; for soft-mean,
    the given alpha or else the final alpha the model was trained with (soft-round models)."""
    if reconstruction not in RECONSTRUCTIONS:
        raise LrcodecError(f"unknown reconstruction {reconstruction!r} (choose from {', '.join(RECONSTRUCTIONS)})")
    if reconstruction == "dither":
        if soft_alpha is not None:
            raise LrcodecError("--soft-alpha applies only to --reconstruction soft-mean")
        return 0
    if soft_alpha is None:
        training = model.card.get("training", {})
        if training.get("surrogate") != "soft-round" or "alpha_max" not in training:
            raise LrcodecError(f"model {model.name} was not trained with soft rounding; "
                               "give soft-mean reconstruction an alpha with --soft-alpha")
        soft_alpha = round(training["alpha_max"])
    if not 1 <= soft_alpha <= 255:
        raise LrcodecError(f"soft-mean alpha must be an integer 1-255, got {soft_alpha}")
    return soft_alpha


def quantizer_options(model: "LoadedModel | RuntimeModel", uq: bool = False, seed: int = 0, reconstruction: str = "dither",
                      soft_alpha: int | None = None) -> dict:
    """The uq/seed/soft_alpha keywords of encode_image and refine_image for user options;
    soft-mean reconstruction implies universal quantization."""
    return {"uq": uq or reconstruction == "soft-mean", "seed": seed,
            "soft_alpha": soft_mean_alpha(model, reconstruction, soft_alpha)}


def quantize_latents(model: "LoadedModel | RuntimeModel", y, z, *, uq: bool = False, seed: int = 0,
                     soft_alpha: int = 0) -> QuantizedLatents:
    """Hard quantization exactly as the coder sends it (docs/algorithms.md section 2): z
    symbols, then (sigma index, mu) from them on the exact path, then y symbols around mu.
    ``soft_alpha`` > 0: UQ with soft-mean reconstruction r_alpha (see ``uq_offsets``)."""
    return _quantize(model, y, z, uq, seed, soft_alpha)[0]


def _walk_y(model: "LoadedModel | RuntimeModel", shape: tuple, hyper, u_y: Dither, symbols_of) -> tuple:
    """y's coding units in order (the model's ``y_units``): each unit's (table index, mu)
    from the hyper tensor and the units before it, then ``symbols_of(unit, index, mu)`` -> the
    unit's symbols (flat): quantized by the encoder, decoded by the decoder. Returns (y
    symbols, table index, mu), each of y's ``shape``."""
    exact = model.exact
    y_symbols, index, mu = np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.zeros(shape)
    y_hat_fixed = np.zeros(shape) if exact.needs_y_hat else None
    for unit in model.y_units(shape):
        index_u, mu_u = exact.unit_keys(unit, shape, hyper, y_hat_fixed)
        unit.put(index, index_u)
        unit.put(mu, mu_u)
        symbols = symbols_of(unit, index_u, mu_u)
        unit.put(y_symbols, symbols)
        if y_hat_fixed is not None:
            y_centred = exact.restore(symbols, index_u) + unit.take(u_y.values) / exact.y_gain
            unit.put(y_hat_fixed, np.rint(y_centred * 2.0**ACT_BITS) + mu_u * 2.0**ACT_BITS)
    return y_symbols, index, mu


def _quantize(model: "LoadedModel | RuntimeModel", y, z, uq: bool, seed: int,
              soft_alpha: int) -> tuple[QuantizedLatents, Dither, Dither]:
    y64, z64 = as_f64(y), as_f64(z)
    if not (np.isfinite(y64).all() and np.isfinite(z64).all()):
        raise LrcodecError("the model produced non-finite latents; cannot code this image")
    u_y, u_z = dithers(y64.shape, z64.shape, uq, seed, soft_alpha)
    exact = model.exact
    z_symbols = np.rint((z64 - exact.medians.reshape(1, -1, 1, 1)) / exact.z_step - u_z.values)
    entropy.check_symbols(z_symbols, "z", entropy.ALPHABET_LIMIT)
    hyper = exact.hyper(z_symbols, u_z.values)

    def quantize(unit, index, mu):
        return np.rint((unit.take(y64) - mu) * exact.y_gain - unit.take(u_y.values)).clip(-2**31, 2**31 - 1)

    y_symbols, index, mu = _walk_y(model, y64.shape, hyper, u_y, quantize)
    entropy.check_symbols(y_symbols, "y", entropy.ALPHABET_LIMIT)
    return _latents(model, y_symbols, z_symbols.astype(np.int32), index, mu, u_y, u_z), u_y, u_z


def _latents(model: "LoadedModel | RuntimeModel", y_symbols, z_symbols, sigma_index, mu, u_y: Dither,
             u_z: Dither) -> QuantizedLatents:
    """The decoder's view of integer symbols: y_hat = k + mu + u (float64, then float32; a
    variable-rate model's steps and offsets in ``ExactEntropyModel.restore``), z_hat. Tensors,
    or arrays for a ``RuntimeModel`` (no torch)."""
    exact = model.exact
    y_hat = exact.restore(y_symbols, sigma_index) + mu + u_y.values / exact.y_gain
    as_latent = model.latent
    return QuantizedLatents(as_latent(y_symbols), as_latent(z_symbols), as_latent(y_hat.astype(np.float32)),
                            as_latent(exact.z_hat(z_symbols, u_z.values).astype(np.float32)), sigma_index,
                            as_latent(mu), as_latent(u_y.values.astype(np.float32)), exact.sigma_table)


def _y_unit_groups(unit, sigma_index: np.ndarray, u_y: Dither) -> tuple:
    """A unit's coding groups (sigma index, dither level) and each present group's index and
    offset; ``sigma_index`` holds the unit's elements (flat)."""
    return Dither(unit.take(u_y.levels), u_y.offsets).groups(sigma_index)


def encode_latents(model: "LoadedModel | RuntimeModel", y, z, width: int, height: int, mode: str = "RGB", *,
                   uq: bool = False, seed: int = 0, soft_alpha: int = 0,
                   refined_method: str | None = None, alpha: bytes | None = None) -> EncodeResult:
    """Quantize and range-code latents of a padded image; returns the complete file, with
    ``alpha`` (an alpha record's data, ``imageio.split_alpha``) where given."""
    if soft_alpha and not uq:
        raise LrcodecError("soft-mean reconstruction needs universal quantization (--uq)")
    q, u_y, u_z = _quantize(model, y, z, uq, seed, soft_alpha)
    z_symbols, y_symbols = np.asarray(q.z_symbols), np.asarray(q.y_symbols)
    zlo, zhi = entropy.symbol_range(z_symbols)
    z_groups, channels, z_offsets = u_z.groups(channel_index(z_symbols.shape))
    z_tables = model.exact.z_tables(channels, z_offsets, zlo, zhi)
    coded_z = entropy.encode(z_symbols, z_groups, z_tables, zlo) if z_symbols.size else entropy.Coded(b"", 0.0, 0.0)
    ylo, yhi = entropy.symbol_range(y_symbols)
    y_coder, y_tables = entropy.PayloadEncoder(), YTables(model.exact, ylo, yhi)
    for unit in model.y_units(y_symbols.shape):
        groups, sigma_levels, offsets = _y_unit_groups(unit, unit.take(q.sigma_index), u_y)
        y_coder.add(unit.take(y_symbols), groups, y_tables(sigma_levels, offsets), ylo)
    coded_y = y_coder.finish()
    flags = (FLAG_UQ if uq else 0) | (FLAG_REFINED if refined_method else 0) | (FLAG_SOFT_MEAN if soft_alpha else 0)
    method = bitstream.REFINE_METHODS.index(refined_method) if refined_method else 0
    header = Header(model.model_id, width, height, mode, flags, method, seed if uq else 0,
                    zlo, zhi, ylo, yhi, entropy.crc(q.sigma_index, z_tables), soft_alpha=soft_alpha)
    data = bitstream.pack(header, coded_z.payload, coded_y.payload, {"alpha": alpha})
    return EncodeResult(data, header, q, coded_z.bits_ideal + coded_y.bits_ideal, coded_z.bits_coder + coded_y.bits_coder,
                        {"bits_z": coded_z.bits_ideal, "bits_y": coded_y.bits_ideal})


prepare_pixels = LoadedModel.pixels  # (padded uint8 pixels as a tensor, mode to decode back to)


def prepare_image(image, drop_alpha: bool = False):
    """(padded float tensor in [0, 1], mode to decode back to) for a PIL image."""
    pixels, mode = prepare_pixels(image, drop_alpha)
    return pixels.float().div_(255), mode


def encode_image(image, model: "LoadedModel | RuntimeModel", *, uq: bool = False, seed: int = 0,
                 soft_alpha: int = 0, drop_alpha: bool = False, progress=None) -> EncodeResult:
    """Encode a PIL image with a model (a ``RuntimeModel``: without torch, its latents arrays);
    ``.data`` holds the complete lrcodec file. ``uq``: universal quantization with a dither
    from ``seed``; ``soft_alpha`` > 0 adds soft-mean reconstruction with that soft-rounding alpha.
    An alpha channel is kept (format 5) unless ``drop_alpha``."""
    from .imageio import split_alpha

    image, alpha = split_alpha(image, drop_alpha)
    pixels, mode = model.pixels(image, drop_alpha)
    y, z = analyse(model, pixels, progress)
    if progress:
        progress("coding", 0, 1)
    return encode_latents(model, y, z, image.width, image.height, mode, uq=uq, seed=seed, soft_alpha=soft_alpha,
                          alpha=alpha)


@dataclass
class Decoded:
    header: Header
    latents: "QuantizedLatents | list[np.ndarray]"  # tensors, or arrays where decoded without torch;
    # an overfitted file's: its integer latent grids
    pixels: "torch.Tensor | np.ndarray"  # uint8, (1, 3, H, W): an array where decoded without torch
    metadata: dict = field(default_factory=dict)  # "icc", "exif", "xmp" -> bytes (format 3)
    alpha: np.ndarray | None = None  # uint8, (H, W): the alpha plane of a format 5 file

    def image(self, drop_alpha: bool = False):
        """The PIL image (RGBA, or LA for grey, where the file has alpha, unless dropped), its
        metadata in ``info`` as Pillow's readers put it (``icc_profile``, ``exif``, ``xmp``), so
        that Pillow writes them back on save."""
        from PIL import Image

        from .imageio import INFO_KEYS

        image = tensor_to_image(self.pixels, self.header.mode)
        if self.alpha is not None and not drop_alpha:
            image.putalpha(Image.fromarray(self.alpha, "L"))
        image.info.update({INFO_KEYS[k]: v for k, v in self.metadata.items()})
        return image


def _model_for(header: Header, model: "LoadedModel | RuntimeModel | None") -> "LoadedModel | RuntimeModel":
    """The model a file names: the given one (checked), else the shipped model's runtime export
    (no torch), else the shipped model itself (torch: a format 1 file, a model without a
    usable export)."""
    from .models import find_model_by_id
    from .runtime import find_runtime_by_id

    if model is not None and not model.needs_torch and model.model_id != header.model_id:
        raise LrcodecError(f"file was made with model {header.model_id.hex()}, not with {model.name} "
                           f"({model.model_id.hex()})")
    if model is None or not model.needs_torch:
        missing = torch_missing(f"decoding a format {header.version} file of model {header.model_id.hex()}")
        if header.version > 1:
            try:
                found = model or find_runtime_by_id(header.model_id)
            except LrcodecError:  # a damaged export: torch decodes where it is installed
                if missing:
                    raise
                found = None
            if found is not None:
                return found
        if missing:
            raise missing
        return find_model_by_id(header.model_id)
    levels = model.family.rate_levels(model.net)
    if levels and model.model_id != header.model_id:  # a variable-rate network: the id names its level
        model = next((m for m in map(model.at_level, range(levels)) if m.model_id == header.model_id), model)
    if model.model_id != header.model_id:
        raise LrcodecError(
            f"file was made with model {header.model_id.hex()}, not with {model.name} ({model.model_id.hex()})")
    return model


def decode_latents(data: bytes, model: "LoadedModel | RuntimeModel | None" = None,
                   max_pixels: int = bitstream.DEFAULT_MAX_PIXELS, progress=None) -> Decoded:
    """Parse, validate and entropy-decode a file; reconstruct with the model it names (without
    torch where it can: module docstring). ``progress(stage, done, total)`` hears of the
    symbols and of each synthesis tile."""
    header = bitstream.parse_header(data, max_pixels)
    metadata = bitstream.records(data, header)  # checked before any decoding, the alpha plane too
    alpha = alpha_record.plane(metadata.pop("alpha"), header.width, header.height) if "alpha" in metadata else None
    if header.version == bitstream.OVERFIT_VERSION:
        if model is not None:
            raise LrcodecError("an overfitted file carries its own decoder: no model applies to it")
        from .format import overfit

        if progress:
            progress("symbols", 0, 1)
        grids, pixels = overfit.decode(data, header, max_pixels)
        return Decoded(header, grids, pixels, metadata)
    model = _model_for(header, model)
    if progress:
        progress("symbols", 0, 1)
    if header.version == 1:
        latents = decode_latents_v1(data, header, model)
    else:
        latents = _decode_symbols(data, header, model)
    return Decoded(header, latents, synthesise(model, latents.y_hat, header.height, header.width, progress), metadata,
                   alpha)


def _decode_symbols(data: bytes, header: Header, model: "LoadedModel | RuntimeModel") -> QuantizedLatents:
    z_payload, y_payload = bitstream.payloads(data, header)
    y_shape, z_shape = latent_shapes(model, header.width, header.height)
    u_y, u_z = dithers(y_shape, z_shape, header.uq, header.seed, header.soft_alpha)
    z_groups, channels, z_offsets = u_z.groups(channel_index(z_shape))
    z_tables = model.exact.z_tables(channels, z_offsets, header.zmin, header.zmax)
    if not np.prod(z_shape):
        if z_payload:
            raise LrcodecError("invalid lrcodec file (a z payload for a model without z)")
        z_symbols = np.zeros(z_shape, np.int32)
    else:
        z_symbols = entropy.decode(z_payload, z_groups, z_tables, header.zmin, "z").reshape(z_shape)
    hyper = model.exact.hyper(z_symbols, u_z.values)
    y_decoder, y_tables = entropy.PayloadDecoder(y_payload, "y"), YTables(model.exact, header.ymin, header.ymax)
    tables_error = LrcodecError("invalid lrcodec file (the probability tables its z payload implies differ from "
                                "the encoder's: a damaged payload, or an incompatible lrcodec build wrote it)")

    one_unit = len(model.y_units(y_shape)) == 1

    def decode(unit, index, mu):
        if one_unit and entropy.crc(index, z_tables) != header.tables_crc:
            raise tables_error  # known before any y symbol: say so rather than fail decoding y
        groups, levels, offsets = _y_unit_groups(unit, index, u_y)
        return y_decoder.take(groups, y_tables(levels, offsets), header.ymin)

    y_symbols, sigma_index, mu = _walk_y(model, y_shape, hyper, u_y, decode)
    y_decoder.finish()
    if entropy.crc(sigma_index, z_tables) != header.tables_crc:
        raise tables_error
    return _latents(model, y_symbols, z_symbols, sigma_index, mu, u_y, u_z)


def decode_image(data: bytes, model: "LoadedModel | RuntimeModel | None" = None,
                 max_pixels: int = bitstream.DEFAULT_MAX_PIXELS, progress=None, drop_alpha: bool = False):
    """The decoded PIL image of an lrcodec file (``Decoded.image``)."""
    return decode_latents(data, model, max_pixels, progress).image(drop_alpha)
