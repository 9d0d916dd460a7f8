"""Per-image latent refinement (SGA, SGA+): optimise y and z at encode time so that the
unchanged decoder spends fewer bits for the same quality (``docs/algorithms.md`` section 4).

Each iteration relaxes rounding with the chosen soft-rounding sampler at temperature T(t),
scores lambda' * 255^2 * MSE + bpp on the real (unpadded) pixels and takes an Adam step on
(y, z). Every ``eval_every`` iterations the *true* loss is computed with the coder's own hard
quantization (``codec.quantize_latents``), and the best latents seen are kept. At the end the
refined file is compared with the plain encode by real bytes and real pixels, and the better
one is written: refinement never makes a file worse in R-D loss.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F

from . import codec
from .devices import bf16_native
from .errors import LrcodecError
from .families import ZOO_KODAK_BPP, ZOO_LAMBDAS
from .metrics import psnr_of
from .models import LoadedModel
from .settings import RefineSettings
from .tiling import tile_side, tiles
from .quantization import Quantized, ste_round, uq_dither



# ------------------------------------------------------------------ soft-rounding samplers


def two_class_logits(r: torch.Tensor, method: str, a: float = 2.3) -> torch.Tensor:
    """Logits (floor, ceil), shape (..., 2), for r = v - floor(v) (section 4.2)."""
    r = r.clamp(1e-5, 1 - 1e-5)
    if method == "atanh":
        return torch.stack([-torch.atanh(r), -torch.atanh(1 - r)], -1)
    if method == "linear":
        return torch.stack([torch.log1p(-r), torch.log(r)], -1)
    if method == "cosine":
        eps = 1e-7
        c_floor = torch.cos(math.pi / 2 * r) ** 2
        c_ceil = torch.cos(math.pi / 2 * (1 - r)) ** 2
        return torch.stack([torch.log((1 - eps) * c_floor + eps), torch.log((1 - eps) * c_ceil + eps)], -1)
    if method == "ssl":
        logit = torch.log(r) - torch.log1p(-r)
        return torch.stack([F.logsigmoid(-a * logit), F.logsigmoid(a * logit)], -1)
    raise ValueError(f"no two-class rounding for {method!r}")


def three_class_logits(c: torch.Tensor, method: str, a: float = 1.4, r: float = 0.98, n: float = 1.4) -> torch.Tensor:
    """Logits of (R-1, R, R+1), shape (..., 3), for c = v - round(v) (section 4.3)."""
    d = torch.stack([c + 1, c, c - 1], -1)
    if method == "linear":
        return n * torch.log((1 - r * d.abs()).clamp_min(1e-6))
    if method == "cosine":
        return torch.log(torch.cos(math.pi / 2 * (r * d).clamp(-1, 1)).clamp_min(0) ** n + 1e-7)
    if method == "ssl":
        x = ((r / 1.5) * d).abs().clamp(1e-6, 1 - 1e-6)
        logit = torch.log(x) - torch.log1p(-x)
        return n * torch.log(torch.sigmoid(-a * logit).clamp_min(1e-6))
    raise ValueError(f"no three-class rounding for {method!r}")


def class_probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The categorical that the relaxed sample is drawn from: softmax(logits / T)."""
    return torch.softmax(logits / temperature, -1)


def _gumbel(shape, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(shape, generator=gen, device=gen.device).clamp_(1e-10, 1 - 1e-7)
    return u.log_().neg_().log_().neg_()  # -log(-log(u)) in place: a 12 MP image's draw is 37 MB


@dataclass
class Sampler:
    """Relaxed rounding of a centred latent for one method (section 4)."""

    method: str = "ssl"
    three_class: bool = False
    a: float = 2.3
    tmax: float = 1.0
    decay: float = 1e-3

    @classmethod
    def of(cls, settings: RefineSettings) -> "Sampler":
        a = settings.a if settings.a is not None else (1.4 if settings.three_class else 2.3)
        return cls(settings.method, settings.three_class, a, settings.tmax, settings.decay)

    def temperature(self, t: int) -> float:
        if self.method == "atanh":  # SGA's "exp0" schedule
            return float(min(max(0.5 * math.exp(-self.decay * (t - 700)), 1e-8), 0.5))
        return float(min(self.tmax, math.exp(-self.decay * t)))

    def noise(self, shape, gen: torch.Generator) -> torch.Tensor | None:
        """The random draw one call consumes for a tensor of ``shape`` (None for STE): drawn
        for the whole latent once per iteration, so that tiles take slices of one draw."""
        if self.method == "ste":
            return None
        if self.method == "noise":
            return torch.rand(shape, generator=gen, device=gen.device) - 0.5
        return _gumbel((*shape, 3 if self.three_class else 2), gen)

    def __call__(self, v: torch.Tensor, t: int, noise: torch.Tensor | None) -> torch.Tensor:
        if self.method == "ste":
            return ste_round(v)
        if self.method == "noise":
            return v + noise
        T = self.temperature(t)
        if self.three_class:
            base = torch.round(v).detach()
            logits = three_class_logits(v - base, self.method, a=self.a)
            offsets = torch.tensor([-1.0, 0.0, 1.0], device=v.device)
        else:
            base = torch.floor(v).detach()
            logits = two_class_logits(v - base, self.method, a=self.a)
            offsets = torch.tensor([0.0, 1.0], device=v.device)
        # Gumbel-softmax on logits / T with temperature T: T enters twice (section 4.2).
        w = torch.softmax((logits / T + noise) / T, -1)
        return base + (w * offsets).sum(-1)


# ------------------------------------------------------------------ the refinement loop

TILE = 24  # y positions per tile side in the loop (384 pixels): memory stays bounded at any size
# (a 12 MP image's float32 loop: 200 MB less than at 32, for about 8 % more time per iteration)
ONE_TILE = 48 * 48  # y positions refined untiled (Kodak's 768x512 is 48 x 32): no halo to recompute


@dataclass
class RefineResult:
    encoded: codec.EncodeResult
    base: codec.EncodeResult
    history: list = field(default_factory=list)  # (iteration, true loss, bpp estimate, psnr, seconds)
    kept_base: bool = False
    seconds_per_iteration: float = 0.0
    base_psnr: float = 0.0  # from the real decoded 8-bit pixels
    psnr: float = 0.0
    iterations: int = 0  # run (fewer than asked when early stopping or the time limit ended the loop)
    lmbda: float = 0.0  # the R-D trade-off refined for (``lambda_for``)


def _squared_error(a: torch.Tensor, b: torch.Tensor, rows: int = 256) -> int:
    """The exact sum of squared differences of two uint8 images, a band of rows at a time (a
    12 MP image in float would cost 150 MB a copy)."""
    return sum(int((a[..., r : r + rows, :].int() - b[..., r : r + rows, :].int()).square().sum())
               for r in range(0, a.shape[-2], rows))


def _true_loss(model, q: codec.QuantizedLatents, pixels, H, W, lmbda) -> tuple[float, float, float, float]:
    """(R-D loss, bpp, PSNR, MSE) of latents quantized as the coder does (symbols and each
    element's (sigma, mu) from the exact CPU path): the bits are their information content,
    the pixels the decoder's own (``codec.synthesise``; ``pixels`` the original's, uint8), so
    the MSE is the file's."""
    with torch.no_grad():
        mse = _squared_error(codec.synthesise(model, q.y_hat, H, W), pixels.cpu()) / (pixels.numel() * 255**2)
        bits = model.family.hard_bits(model.net, q, model.sigma_min)
    bpp = bits.item() / (H * W)
    return lmbda * 255**2 * mse + bpp, bpp, psnr_of(mse), mse


def _relaxed(sampler, t: int, v, u, noise) -> Quantized:
    """The sampler as a quantizer of a centred latent v with dither u: u + relaxed round(v - u),
    scored on the unit interval around it."""
    value = sampler(v - u, t, noise) + u
    return Quantized(value, value - 0.5, value + 0.5)


def file_loss(result: codec.EncodeResult, x: torch.Tensor, lmbda: float, model: LoadedModel) -> tuple[float, float]:
    """(R-D loss from the real file size and the real decoded 8-bit pixels, PSNR)."""
    decoded = codec.synthesise(model, result.latents.y_hat, x.shape[2], x.shape[3]).float() / 255
    mse = F.mse_loss(decoded, x.cpu()).item()
    return lmbda * 255**2 * mse + result.bpp, psnr_of(mse)


def lambda_for(model: LoadedModel, base_bpp: float, lmbda: float | None = None) -> float:
    """The R-D trade-off to refine an image for: ``lmbda``, else the model card's, else (a bare
    checkpoint) the lambda of CompressAI's zoo quality whose published Kodak rate is nearest, in
    log rate, the image's plain encode (``ZOO_LAMBDAS``, ``ZOO_KODAK_BPP``)."""
    if lmbda is None:
        lmbda = model.card.get("lmbda")
    if lmbda is None:
        return min(zip(ZOO_LAMBDAS, ZOO_KODAK_BPP), key=lambda q: abs(math.log(q[1] / max(base_bpp, 1e-9))))[0]
    if not lmbda > 0:
        raise LrcodecError(f"lambda must be positive, got {lmbda}")
    return float(lmbda)


def refine_halo(model: LoadedModel) -> int:
    """y positions of context a tile needs so that its own pixels and bits are the untiled
    ones: g_s's receptive field plus the family's y context, in whole z cells."""
    return -(-(model.halos[1] + model.family.y_context_radius(model.net)) // 4) * 4


def _plan(settings: RefineSettings, seconds_left: float, per_iteration: float, per_evaluation: float) -> int:
    """The most iterations (at least 1, at most the settings') whose loop and true-loss
    evaluations fit in ``seconds_left``; 0 when even one does not."""
    def cost(n: int) -> float:
        evaluations = n // settings.eval_every + (n % settings.eval_every != 0)
        return n * per_iteration + evaluations * per_evaluation
    return max((n for n in range(1, settings.iterations + 1) if cost(n) <= seconds_left), default=0)


def _rescheduled(settings: RefineSettings, iterations: int) -> RefineSettings:
    """The same schedule over fewer iterations: the temperature anneals to the same end."""
    return replace(settings, iterations=iterations, decay=settings.decay * settings.iterations / iterations)


def refine_image(image, model: LoadedModel, settings: RefineSettings | None = None, **options) -> RefineResult:
    """Refine an image's latents and return the encoded file (never worse than plain encode).

    ``settings`` (or keyword changes to its fields) steer the loop; ``uq``/``seed``/``soft_alpha``
    choose the quantizer the file uses, which the loop optimizes for (see ``refine_images``)."""
    return refine_images([image], model, settings, **options)[0]


def refine_images(
    images: list,
    model: LoadedModel,
    settings: RefineSettings | None = None,
    *,
    uq: bool = False,
    seed: int = 0,
    soft_alpha: int = 0,
    drop_alpha: bool = False,
    progress: Callable | None = None,
    tile: int | None = None,
    **changes,
) -> list[RefineResult]:
    """Refine images of one size together, as one batch (what a GPU wants); each image's result
    is what refining it alone would give, up to the random draws of the sampler.

    Each iteration runs g_s tile by tile (``tile`` y positions a side, with ``refine_halo``
    around), each tile's loss on its own pixels and bits; the gradients add up to the untiled
    ones, and memory is bounded by a tile's (None: one tile up to ``ONE_TILE`` positions, else
    ``TILE``). The loop and the transforms run on the model's
    device (``model.to(device)``); the files' symbols are decided on the CPU's exact path, so a
    file refined on a GPU decodes anywhere. With ``time_limit`` the first iteration's time
    decides how many iterations fit."""
    t_start = time.perf_counter()
    settings = replace(settings or RefineSettings(), **changes)
    settings.check()
    if tile is not None and (tile < 4 or tile % 4):
        raise LrcodecError(f"refinement tiles must be a positive multiple of 4 y positions, got {tile}")
    if len({im.size for im in images}) != 1:
        raise LrcodecError("images refined as one batch must have one size")
    dev = model.device
    use_bf16 = settings.precision == "bfloat16" or (settings.precision == "auto" and bf16_native(dev))
    gen = torch.Generator(dev).manual_seed(seed)
    quantizer = dict(uq=uq, seed=seed, soft_alpha=soft_alpha)
    W, H = images[0].size

    prepared = [codec.prepare_pixels(im, drop_alpha) for im in images]
    latents = [codec.analyse(model, pixels, progress) for pixels, _ in prepared]
    t_code = time.perf_counter()
    bases = [codec.encode_latents(model, y0, z0, W, H, mode, **quantizer)
             for (y0, z0), (_, mode) in zip(latents, prepared)]
    t_code = time.perf_counter() - t_code
    lmbdas = [lambda_for(model, base.bpp, settings.lmbda) for base in bases]
    weights = torch.tensor(lmbdas, device=dev) * 255**2 / (3 * H * W)  # each image's distortion weight
    # uint8 (floats a tile at a time); one image's is a view of its padded pixels
    x = torch.cat([pixels[:, :, :H, :W] for pixels, _ in prepared]) if len(prepared) > 1 else prepared[0][0][:, :, :H, :W]
    x = x.to(dev)

    net, family = model.net, model.family
    g_s = copy.deepcopy(net.g_s).to(memory_format=torch.channels_last)  # the loop's; the coder keeps its own
    y_shape, z_shape = tuple(latents[0][0].shape), tuple(latents[0][1].shape)
    u_y = uq_dither(seed, y_shape, 0, soft_alpha).to(dev) if uq else None
    u_z = uq_dither(seed, z_shape, 1, soft_alpha).to(dev) if uq else torch.zeros((), device=dev)
    y = torch.cat([y0 for y0, _ in latents]).detach().clone().requires_grad_(True)
    z = torch.cat([z0 for _, z0 in latents]).detach().clone().requires_grad_(True)
    del latents  # iteration 0's file is the base's
    opt = torch.optim.Adam([y, z], lr=settings.lr)
    if tile is None:
        tile = tile_side(*y_shape[2:], TILE, ONE_TILE)
    grid = list(tiles(y_shape[2], y_shape[3], tile, refine_halo(model)))  # crops start on even positions

    def iteration(t: int, sampler: Sampler) -> None:
        """One Adam step on the relaxed loss. h_s runs once on the whole z;
        its outputs' gradients are gathered from the tiles and sent back through it once."""
        z_noise = sampler.noise(z.shape, gen)
        z_tilde, bits_z = family.z_forward(net, z, lambda v, channels: _relaxed(sampler, t, v, u_z, z_noise))
        hyper = family.hyper_synthesis(net, z_tilde)
        hyper_d = None if hyper is None else hyper.detach().float().requires_grad_(hyper.requires_grad)
        noise = sampler.noise(y.shape, gen)
        for (top, bottom, left, right), (r0, r1, c0, c1) in grid:

            def quantize(v, channels):
                """The sampler on a tile's part of y (centred)."""
                u = 0.0 if u_y is None else u_y[:, channels, r0:r1, c0:c1]
                return _relaxed(sampler, t, v, u, None if noise is None else noise[:, channels, r0:r1, c0:c1])

            crop = (slice(None), slice(None), slice(r0, r1), slice(c0, c1))
            y_tilde, bits = family.y_forward(net, y[crop], None if hyper_d is None else hyper_d[crop], quantize,
                                             model.sigma_min)
            loss = bits[:, :, top - r0 : bottom - r0, left - c0 : right - c0].sum() / (H * W)
            rows, cols = (16 * top, min(16 * bottom, H)), (16 * left, min(16 * right, W))
            if rows[1] > rows[0] and cols[1] > cols[0]:  # tiles wholly in the padding have no pixels
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
                    x_hat = g_s(y_tilde)
                own = x_hat[:, :, rows[0] - 16 * r0 : rows[1] - 16 * r0, cols[0] - 16 * c0 : cols[1] - 16 * c0]
                # The sum over the batch: each image's latents get their own loss's gradient.
                error = own.float() - x[:, :, rows[0] : rows[1], cols[0] : cols[1]].float().div_(255)
                loss = loss + (error.square().sum((1, 2, 3)) * weights).sum()
            loss.backward()
        ends = [] if hyper_d is None or hyper_d.grad is None else [(hyper, hyper_d.grad.to(hyper.dtype))]
        if bits_z.numel():
            torch.autograd.backward([bits_z.sum() / (H * W)] + [p for p, _ in ends], [None] + [g for _, g in ends])
        opt.step()
        opt.zero_grad(set_to_none=True)

    def true_losses(t: int, elapsed: float) -> list[tuple]:
        return [(t, *_true_loss(model, codec.quantize_latents(model, y[i : i + 1].detach(), z[i : i + 1].detach(),
                                                              **quantizer), x[i : i + 1], H, W, lmbdas[i]), elapsed)
                for i in range(len(images))]

    # Iteration 0 is the plain encode, whose latents are already quantized.
    t_eval = time.perf_counter()
    histories = [[(0, *_true_loss(model, base.latents, x[i : i + 1], H, W, lmbdas[i]), 0.0)]
                 for i, base in enumerate(bases)]
    t_eval = time.perf_counter() - t_eval + t_code  # one true-loss evaluation: quantize and synthesise
    if settings.time_limit:  # an iteration costs at least a synthesis: is there room for one?
        left = settings.time_limit - (time.perf_counter() - t_start) - t_code
        if _plan(settings, left, t_eval - t_code, t_eval) == 0:
            settings = replace(settings, iterations=0)
    best = [(h[0][1], None, None, 0) for h in histories]  # (loss, y, z, index in the history)
    sampler, stale, t, t0 = Sampler.of(settings), [0] * len(images), 0, time.perf_counter()
    while t < settings.iterations:  # the time limit may shorten it after the first iteration
        t += 1
        if t == math.ceil(settings.lr_drop * settings.iterations) + 1:
            for group in opt.param_groups:
                group["lr"] = settings.lr / 10
        iteration(t, sampler)
        elapsed = time.perf_counter() - t0
        if t == 1 and settings.time_limit:
            left = settings.time_limit - (time.perf_counter() - t_start) - t_code + elapsed
            planned = _plan(settings, left, elapsed, t_eval)
            if planned == 0:
                break
            if planned < settings.iterations:
                settings = _rescheduled(settings, planned)
                sampler = Sampler.of(settings)
        if t % settings.eval_every == 0 or t == settings.iterations:
            for i, entry in enumerate(true_losses(t, time.perf_counter() - t0)):
                histories[i].append(entry)
                stale[i] = stale[i] + 1 if entry[1] >= best[i][0] else 0
                if entry[1] < best[i][0]:
                    best[i] = (entry[1], y[i : i + 1].detach().clone(), z[i : i + 1].detach().clone(), len(histories[i]) - 1)
        if progress:
            at, _, bpp, psnr, _, _ = histories[0][-1]
            progress("refinement", t, settings.iterations, f"iteration {at}: {bpp:.4f} bpp, {psnr:.2f} dB")
        if settings.patience and min(stale) >= settings.patience:
            break
    seconds_per_iteration = (time.perf_counter() - t0) / max(t, 1)
    results = []
    for i, ((_, y_best, z_best, at), base, (_, mode)) in enumerate(zip(best, bases, prepared)):
        # The true loss's MSE is the file's (the same symbols and the decoder's pixels).
        base_mse = histories[i][0][4]
        refined = base if at == 0 else codec.encode_latents(model, y_best, z_best, W, H, mode, **quantizer,
                                                            refined_method=settings.label)
        refined_mse = histories[i][at][4]
        kept_base = lmbdas[i] * 255**2 * refined_mse + refined.bpp >= lmbdas[i] * 255**2 * base_mse + base.bpp
        # ties (e.g. latents that never improved) keep the plain file
        results.append(RefineResult(base if kept_base else refined, base,
                                    [(h[0], h[1], h[2], h[3], h[5]) for h in histories[i]], kept_base,
                                    seconds_per_iteration, psnr_of(base_mse), psnr_of(base_mse if kept_base else refined_mse), t,
                                    lmbdas[i]))
    return results


def find_lambda_for_bpp(image, model: LoadedModel, target_bpp: float, *, searches: int = 6,
                        **kwargs) -> tuple[RefineResult, float]:
    """Bisection on log(lambda') for the refined file whose real bpp is closest to the target."""
    lo, hi = math.log(1e-4), math.log(0.5)
    best: tuple[float, RefineResult, float] | None = None
    for _ in range(searches):
        lmbda = math.exp((lo + hi) / 2)
        result = refine_image(image, model, lmbda=lmbda, **kwargs)
        gap = abs(result.encoded.bpp - target_bpp)
        if best is None or gap < best[0]:
            best = (gap, result, lmbda)
        if result.encoded.bpp > target_bpp:
            hi = math.log(lmbda)
        else:
            lo = math.log(lmbda)
    return best[1], best[2]
