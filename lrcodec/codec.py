"""Image <-> latents <-> lrcodec bytes: the codec's library API.

    encode_image(image, model) -> EncodeResult (.data is the file's bytes)
    decode_image(data)         -> PIL image (the model is found from the file's model id)

Images are padded (edge replication) on the right and bottom to a multiple of 64 and
cropped back after decoding; only the real pixels count in bpp.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import bitstream, entropy
from .bitstream import FLAG_REFINED, FLAG_SOFT_MEAN, FLAG_UQ, Header
from .errors import LrcodecError
from .models import LoadedModel, hyper_analysis, hyper_synthesis
from .quantization import uq_dither, uq_levels, uq_offsets, z_medians

STRIDE = 64


@contextmanager
def exact_backend():
    """Run convolutions on PyTorch's native kernels instead of oneDNN: measured here, oneDNN's
    results change with the thread count (sigma, mu and pixels differ in the last bits), the
    native ones do not. Everything the decoder must reproduce runs inside this context."""
    import torch

    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


@dataclass
class QuantizedLatents:
    """What the coder sends (integer symbols) and what the decoder rebuilds from them."""

    y_symbols: "torch.Tensor"  # int, (1, M, h, w): round(y - mu - u)
    z_symbols: "torch.Tensor"  # int, (1, N, hz, wz): round(z - m - u')
    y_hat: "torch.Tensor"
    z_hat: "torch.Tensor"
    sigma: "torch.Tensor"
    mu: "torch.Tensor"
    y_offset: "torch.Tensor"  # u (or r_alpha(u)) added back to y; zeros without UQ


@dataclass
class EncodeResult:
    data: bytes
    header: Header
    latents: QuantizedLatents
    bits_ideal: float  # -sum log2 P of all coded symbols under the coded model
    info: dict = field(default_factory=dict)

    @property
    def bpp(self) -> float:
        return 8 * len(self.data) / (self.header.width * self.header.height)


def image_to_tensor(image):
    """(1, 3, H, W) float tensor in [0, 1] from an RGB PIL image."""
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float().div_(255)


def tensor_to_image(x, mode: str = "RGB"):
    """PIL image from a (1, 3, H, W) tensor: clamp, round to 8 bits, back to ``mode``."""
    from PIL import Image

    arr = (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    return image.convert(mode) if mode != "RGB" else image


def pad(x, multiple: int = STRIDE):
    import torch.nn.functional as F

    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def analyse(model: LoadedModel, x):
    """(y, z) of a padded image tensor."""
    import torch

    with torch.no_grad():
        y = model.net.g_a(x)
        return y, hyper_analysis(model.net, y)


RECONSTRUCTIONS = ("dither", "soft-mean")


def soft_mean_alpha(model: LoadedModel, reconstruction: str = "dither", soft_alpha: int | None = None) -> int:
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


def quantizer_options(model: LoadedModel, uq: bool = False, seed: int = 0, reconstruction: str = "dither",
                      soft_alpha: int | None = None) -> dict:
    """The uq/seed/soft_alpha keywords of encode_image and refine_image for user options;
    soft-mean reconstruction implies universal quantization."""
    return {"uq": uq or reconstruction == "soft-mean", "seed": seed,
            "soft_alpha": soft_mean_alpha(model, reconstruction, soft_alpha)}


def _dithers(y_shape, z_shape, uq: bool, seed: int, soft_alpha: int = 0):
    import torch

    if not uq:
        return torch.zeros(y_shape), torch.zeros(z_shape)
    return uq_dither(seed, tuple(y_shape), 0, soft_alpha), uq_dither(seed, tuple(z_shape), 1, soft_alpha)


def _z_offsets(uq: bool, soft_alpha: int = 0) -> np.ndarray:
    return uq_offsets(soft_alpha) if uq else np.zeros(1)


def _z_levels(z_shape, uq: bool, seed: int):
    """Dither level index of each z element, shape (C, n), or None without UQ."""
    return uq_levels(seed, tuple(z_shape), 1).reshape(z_shape[1], -1) if uq else None


def quantize_latents(model: LoadedModel, y, z, *, uq: bool = False, seed: int = 0,
                     soft_alpha: int = 0) -> QuantizedLatents:
    """Hard quantization exactly as the coder sends it (docs/algorithms.md section 2).
    ``soft_alpha`` > 0: UQ with soft-mean reconstruction r_alpha (see ``uq_offsets``)."""
    import torch

    with torch.no_grad(), exact_backend():
        u_y, u_z = _dithers(y.shape, z.shape, uq, seed, soft_alpha)
        m = z_medians(model.net.entropy_bottleneck)
        z_symbols = torch.round(z - m - u_z)
        z_hat = z_symbols + m + u_z
        sigma, mu = hyper_synthesis(model.net, z_hat)
        y_symbols = torch.round(y - mu - u_y)
        y_hat = y_symbols + mu + u_y
    return QuantizedLatents(y_symbols.to(torch.int32), z_symbols.to(torch.int32), y_hat, z_hat, sigma, mu, u_y)


def _sigma_idx(model: LoadedModel, sigma) -> np.ndarray:
    table = entropy.sigma_table(model.card.get("sigma_min", 0.11))
    return entropy.sigma_indices(sigma.double().numpy().ravel(), table), table


def encode_latents(model: LoadedModel, y, z, width: int, height: int, mode: str = "RGB", *,
                   uq: bool = False, seed: int = 0, soft_alpha: int = 0,
                   refined_method: str | None = None) -> EncodeResult:
    """Quantize and range-code latents of a padded image; returns the complete file."""
    if soft_alpha and not uq:
        raise LrcodecError("soft-mean reconstruction needs universal quantization (--uq)")
    q = quantize_latents(model, y, z, uq=uq, seed=seed, soft_alpha=soft_alpha)
    if not (np.isfinite(q.y_hat.numpy()).all() and np.isfinite(q.z_hat.numpy()).all()):
        raise LrcodecError("the model produced non-finite latents; cannot code this image")
    z_sym = q.z_symbols.numpy()
    C = z_sym.shape[1]
    z_flat = z_sym.reshape(C, -1)
    entropy.check_symbols(z_flat, "z", entropy.Z_ALPHABET_LIMIT)
    zlo, zhi = entropy.symbol_range(z_flat)
    tables = entropy.factorized_tables(model.net.entropy_bottleneck, zlo, zhi, _z_offsets(uq, soft_alpha))
    coded_z = entropy.encode_factorized(z_flat, tables, zlo, _z_levels(z.shape, uq, seed))
    idx, table = _sigma_idx(model, q.sigma)
    coded_y = entropy.encode_gaussian(q.y_symbols.numpy(), table[idx], -q.y_offset.double().numpy())
    flags = (FLAG_UQ if uq else 0) | (FLAG_REFINED if refined_method else 0) | (FLAG_SOFT_MEAN if soft_alpha else 0)
    method = bitstream.REFINE_METHODS.index(refined_method) if refined_method else 0
    header = Header(model.model_id, width, height, mode, flags, method, seed if uq else 0,
                    zlo, zhi, coded_y.lo, coded_y.hi, entropy.tables_crc(idx, tables), soft_alpha=soft_alpha)
    data = bitstream.pack(header, coded_z.payload, coded_y.payload)
    return EncodeResult(data, header, q, coded_z.bits_ideal + coded_y.bits_ideal,
                        {"bits_z": coded_z.bits_ideal, "bits_y": coded_y.bits_ideal})


def prepare_image(image, drop_alpha: bool = False):
    """(padded tensor, mode to decode back to) for a PIL image; refuses alpha unless dropped."""
    from .imageio import normalise_mode

    image, mode = normalise_mode(image, drop_alpha)
    x = image_to_tensor(image)
    return pad(x), mode


def encode_image(image, model: LoadedModel, *, uq: bool = False, seed: int = 0, soft_alpha: int = 0,
                 drop_alpha: bool = False) -> EncodeResult:
    """Encode a PIL image with a model; ``.data`` holds the complete lrcodec file.
    ``uq``: universal quantization with a dither from ``seed``; ``soft_alpha`` > 0 adds soft-mean
    reconstruction with that soft-rounding alpha."""
    x, mode = prepare_image(image, drop_alpha)
    y, z = analyse(model, x)
    return encode_latents(model, y, z, image.width, image.height, mode, uq=uq, seed=seed, soft_alpha=soft_alpha)


@dataclass
class Decoded:
    header: Header
    latents: QuantizedLatents
    x_hat: "torch.Tensor"  # (1, 3, H, W), cropped, unclamped

    def image(self):
        return tensor_to_image(self.x_hat, self.header.mode)


def decode_latents(data: bytes, model: LoadedModel | None = None,
                   max_pixels: int = bitstream.DEFAULT_MAX_PIXELS) -> Decoded:
    """Parse, validate and entropy-decode a file; reconstruct with the model it names."""
    import torch

    from .models import find_model_by_id

    header = bitstream.parse_header(data, max_pixels)
    if model is None:
        model = find_model_by_id(header.model_id)
    elif model.model_id != header.model_id:
        raise LrcodecError(
            f"file was made with model {header.model_id.hex()}, not with {model.name} ({model.model_id.hex()})")
    z_payload, y_payload = bitstream.payloads(data, header)
    Hp, Wp = header.height + (-header.height) % STRIDE, header.width + (-header.width) % STRIDE
    net = model.net
    N = net.entropy_bottleneck.channels
    z_shape = (1, N, Hp // STRIDE, Wp // STRIDE)
    u_z = uq_dither(header.seed, z_shape, 1, header.soft_alpha) if header.uq else torch.zeros(z_shape)
    tables = entropy.factorized_tables(net.entropy_bottleneck, header.zmin, header.zmax,
                                       _z_offsets(header.uq, header.soft_alpha))
    z_flat = entropy.decode_factorized(z_payload, tables, header.zmin, z_shape[2] * z_shape[3],
                                       _z_levels(z_shape, header.uq, header.seed))
    with torch.no_grad(), exact_backend():
        z_symbols = torch.from_numpy(z_flat).reshape(z_shape)
        z_hat = z_symbols.float() + z_medians(net.entropy_bottleneck) + u_z
        sigma, mu = hyper_synthesis(net, z_hat)
    idx, table = _sigma_idx(model, sigma)
    if entropy.tables_crc(idx, tables) != header.tables_crc:
        raise LrcodecError(
            "decoder's probability tables differ from the encoder's (different model weights or "
            "floating-point results on this machine); refusing to decode garbage")
    y_shape = tuple(sigma.shape)
    u_y = uq_dither(header.seed, y_shape, 0, header.soft_alpha) if header.uq else torch.zeros(y_shape)
    y_flat = entropy.decode_gaussian(y_payload, header.ymin, header.ymax, table[idx], -u_y.double().numpy())
    with torch.no_grad(), exact_backend():
        y_symbols = torch.from_numpy(y_flat).reshape(y_shape)
        y_hat = y_symbols.float() + mu + u_y
        x_hat = net.g_s(y_hat)[:, :, : header.height, : header.width]
    return Decoded(header, QuantizedLatents(y_symbols, z_symbols, y_hat, z_hat, sigma, mu, u_y), x_hat)


def decode_image(data: bytes, model: LoadedModel | None = None,
                 max_pixels: int = bitstream.DEFAULT_MAX_PIXELS):
    """The decoded PIL image of an lrcodec file."""
    return decode_latents(data, model, max_pixels).image()
