"""The overfitted encode: one image's latents and decoder learned from scratch
(``lrcodec.families.overfit``), the decoder's parameters quantized at the steps that cost the
least rate-distortion, and the file written (``lrcodec.format.overfit``).

    result = encode_overfit(image, OverfitSettings(iterations=1000, lmbda=0.0067))
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import LrcodecError
from ..families.base import Quantized
from ..families.overfit import OverfitNet, Phase, schedule
from ..format import bitstream
from ..format import overfit as fmt
from ..metrics import bits_per_pixel, psnr_of, rd_loss
from ..settings import MAX_PIXELS, OverfitSettings
from .surrogates import ste_round, surrogate_quantize

_PLAN_AFTER = 5  # iterations timed before a time limit plans the rest


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed blocks of up to 1 GiB instead of returning them to the
    kernel: every iteration allocates the same tensors of tens of MB, and mapping them afresh
    (page faults on first touch) took most of an iteration's time (3-4x on the CPUs here).
    A process-wide allocator setting: the CLI and the benchmarks call it, the library never
    does (a program that encodes many images may call it too)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: its allocator's defaults
        pass


@dataclass
class OverfitResult:
    data: bytes
    profile: str
    psnr: float
    iterations: int
    lmbda: float
    bits: dict = field(default_factory=dict)  # "decoder": its payload's bits; "latents": ideal bits under the
    # tables, "latents_coder": under the range coder's weights (``entropy.coder_weights``)
    seconds: dict = field(default_factory=dict)  # "optimization", "quantization"

    @property
    def bpp(self) -> float:
        header = bitstream.parse_header(self.data, max_pixels=2**64)
        return bits_per_pixel(8 * len(self.data), header.width * header.height)


def _quantize(v: torch.Tensor, settings: OverfitSettings, phase: Phase, t: float, gen: torch.Generator) -> Quantized:
    """The surrogate of round(v) at this phase: hard rounding (straight-through) in the last,
    else ``settings.surrogate`` (soft-round-noise: Gaussian noise of the phase's std; the
    others: their own uniform noise; SUA's temperature falls from 1 to 0 over the soft phase)."""
    if phase.hard:
        value = ste_round(v)
        return Quantized(value, value - 0.5, value + 0.5)
    if settings.surrogate == "soft-round-noise":
        noise = torch.randn(v.shape, generator=gen, device=v.device) * phase.noise
    else:
        noise = torch.rand(v.shape, generator=gen, device=v.device) - 0.5
    sua_temperature = max(0.0, 1 - t / (1 - settings.hard_fraction))
    return surrogate_quantize(v, settings.surrogate, alpha=1 / phase.temperature, temperature=sua_temperature,
                              noise=noise, seed=int(t * 1e9))


def _step(net: OverfitNet, x: torch.Tensor, settings: OverfitSettings, t: float, gen: torch.Generator,
          opt: torch.optim.Optimizer) -> float:
    """One iteration at fraction t of the budget; returns its loss."""
    height, width = x.shape[-2:]
    phase = schedule(t, settings)
    for group in opt.param_groups:
        group["lr"] = phase.lr
    q = _quantize(net.values(), settings, phase, t, gen)
    bits = net.bits(q, q.value)
    x_hat = net.synthesise(q.value)[:, :, :height, :width]
    loss = rd_loss(settings.lmbda, torch.mean((x_hat - x) ** 2), bits / (height * width))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), settings.clip)
    opt.step()
    return float(loss.detach())


def optimise(net: OverfitNet, x: torch.Tensor, settings: OverfitSettings, progress=None) -> int:
    """Learn the latents and decoder for x (1, 3, height, width) in [0, 1] from scratch;
    returns the iterations run (fewer than asked where the time limit plans fewer: the same
    schedule over them)."""
    gen = torch.Generator(x.device).manual_seed(settings.seed)
    net.initialise(torch.Generator().manual_seed(settings.seed))
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    total, started, times = settings.iterations, time.perf_counter(), []
    i = 0
    while i < total:
        t0 = time.perf_counter()
        _step(net, x, settings, i / total, gen, opt)
        times.append(time.perf_counter() - t0)
        i += 1
        if settings.time_limit and i == _PLAN_AFTER and total > i:
            per = float(np.median(times[1:]))
            left = settings.time_limit - (time.perf_counter() - started)
            total = max(i, min(total, i + int(left / per)))
        if progress:
            progress("overfit", i, total)
    return total


def _pixels_mse(decoder: fmt.Decoder, grids, original: np.ndarray) -> float:
    h, w = original.shape[-2:]
    decoded = fmt.synthesise(decoder, grids, h, w)
    return float(np.mean((decoded.astype(np.float64) - original) ** 2)) / 255**2


def _param_bits(decoder: fmt.Decoder, prefix: str) -> float:
    return sum(fmt.param_coding(decoder.params[name])[2] for name, _ in decoder.profile.tensors if name.startswith(prefix))


def _best(candidates, cost) -> int | None:
    """The candidate of least finite cost, searched upward from the first until two in a row
    are worse (None if every cost is infinite)."""
    best, best_cost, worse = None, math.inf, 0
    for c in candidates:
        value = cost(c)
        if value < best_cost:
            best, best_cost, worse = c, value, 0
        elif (worse := worse + 1) == 2:
            break
    return best


def quantized_decoder(net: OverfitNet, grids: list[np.ndarray], original: np.ndarray, lmbda: float) -> fmt.Decoder:
    """The decoder at the parameter steps of least R-D cost: the ARM's by the exact rate of
    latents and parameters, the synthesis's by its parameters' rate and the pixels' error."""
    pixels = original.shape[-2] * original.shape[-1]

    def arm_cost(e):
        decoder = net.quantized_decoder(e, 8)
        return fmt.latent_bits(decoder, grids) + _param_bits(decoder, "arm.")

    arm = _best(fmt.EXPONENTS, arm_cost)
    if arm is None:
        raise LrcodecError("the latents' residuals exceed the format's alphabet at every parameter step; "
                           "the image cannot be coded")

    def synth_cost(e):
        decoder = net.quantized_decoder(arm, e)
        return rd_loss(lmbda, _pixels_mse(decoder, grids, original), _param_bits(decoder, "synth.") / pixels)

    return net.quantized_decoder(arm, _best(fmt.EXPONENTS, synth_cost))


def encode_overfit(image, settings: OverfitSettings, *, drop_alpha: bool = False, device: str = "cpu",
                   progress=None, max_pixels: int = MAX_PIXELS) -> OverfitResult:
    """The overfitted file of a PIL image (format 4, which has no alpha record: an image with
    alpha is refused unless ``drop_alpha``)."""
    from ..imageio import has_alpha, padded_pixels

    if has_alpha(image) and not drop_alpha:
        raise LrcodecError("the overfitted family does not code alpha: pass --drop-alpha to code the colours only")
    settings.check()
    profile = fmt.profile(settings.profile)
    fmt.checked_shapes(profile, image.height, image.width, max_pixels)  # what the decoder will accept
    padded, mode = padded_pixels(image, drop_alpha, profile.stride)
    original = padded[:, :, : image.height, : image.width].astype(np.float64)
    dev = torch.device(device)
    x = torch.from_numpy(original).float().div_(255).to(dev)
    net = OverfitNet(profile, *padded.shape[-2:]).to(dev)
    t0 = time.perf_counter()
    iterations = optimise(net, x, settings, progress)
    t1 = time.perf_counter()
    net = net.cpu()
    grids = [g.detach().round().to(torch.int64).numpy() for g in net.grids(net.values())]
    decoder = quantized_decoder(net, grids, original, settings.lmbda)
    coded, nonzero = fmt.encode_latents(decoder, grids)
    params, param_bits = fmt.pack_decoder(decoder, nonzero)
    header = bitstream.Header(profile.model_id, image.width, image.height, mode, bitstream.FLAG_REFINED, 0, 0,
                              coded.lo, coded.hi, -1, 1, fmt.grids_crc(grids), version=bitstream.OVERFIT_VERSION)
    data = bitstream.pack(header, params, coded.payload)
    mse = _pixels_mse(decoder, grids, original)
    return OverfitResult(data, profile.name, psnr_of(mse), iterations, settings.lmbda,
                         {"decoder": param_bits, "latents": coded.bits_ideal, "latents_coder": coded.bits_coder},
                         {"optimization": t1 - t0, "quantization": time.perf_counter() - t1})
