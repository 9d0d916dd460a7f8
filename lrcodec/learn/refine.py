"""Per-image latent refinement (SGA, SGA+): optimise y and z at encode time so that the
unchanged decoder spends fewer bits for the same quality (``docs/algorithms.md`` section 4).

Each iteration relaxes rounding with the chosen soft-rounding sampler at temperature T(t),
scores lambda' * 255^2 * D + bpp on the real (unpadded) pixels, D the distortion it is tuned for
(MSE, 1 - MS-SSIM, either weighted by a region of interest: ``lrcodec.learn.distortion``), and takes an Adam step on
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
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from .. import codec
from ..devices import bf16_native
from ..errors import LrcodecError
from ..imageio import split_alpha
from ..families import ZOO_KODAK_BPP, ZOO_LAMBDAS
from ..metrics import bits_per_pixel, psnr_of, rd_loss
from ..models import LoadedModel
from ..settings import SSL_SHARPNESS, SSL_SHARPNESS_THREE_CLASS, RefineSettings
from ..format.tiling import tile_side, tiles
from ..families.base import Quantized
from .surrogates import ste_round
from ..format.dither import uq_dither
from .distortion import Distortion, roi_weights



# ------------------------------------------------------------------ soft-rounding samplers


def two_class_logits(r: torch.Tensor, method: str, a: float = SSL_SHARPNESS) -> torch.Tensor:
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


def three_class_logits(c: torch.Tensor, method: str, a: float = SSL_SHARPNESS_THREE_CLASS, r: float = 0.98,
                       n: float = 1.4) -> torch.Tensor:
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
    a: float = SSL_SHARPNESS
    tmax: float = 1.0
    decay: float = 1e-3

    @classmethod
    def of(cls, settings: RefineSettings) -> "Sampler":
        return cls(settings.method, settings.three_class, settings.sharpness, settings.tmax, settings.decay)

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


class Evaluation(NamedTuple):
    """The true loss of one image's latents at one iteration (0: the plain encode)."""

    iteration: int
    loss: float  # R-D loss (``metrics.rd_loss`` of the tuned distortion) of the file these latents code to
    bpp: float  # their information content per pixel
    psnr: float
    seconds: float  # since the loop began
    mse: float  # the decoder's own pixels against the original's
    distortion: float  # what the loss weighs: the MSE (weighted by a ROI), or 1 - MS-SSIM


@dataclass
class RefineResult:
    encoded: codec.EncodeResult
    base: codec.EncodeResult
    history: list[Evaluation] = field(default_factory=list)
    kept_base: bool = False
    seconds_per_iteration: float = 0.0
    base_psnr: float = 0.0  # from the real decoded 8-bit pixels
    psnr: float = 0.0
    iterations: int = 0  # run (fewer than asked when early stopping or the time limit ended the loop)
    lmbda: float = 0.0  # the R-D trade-off refined for (``lambda_for``; under ms-ssim the mapped one)
    tune: str = "psnr"  # the distortion it was tuned for (``lrcodec.learn.distortion``)


def _measure(model, q: codec.QuantizedLatents, pixels, distortion: Distortion, index: int) -> tuple[float, float, float]:
    """(distortion, MSE, bpp) of latents quantized as the coder does (symbols and each
    element's (sigma, mu) from the exact CPU path): the bits are their information content,
    the pixels the decoder's own (``codec.synthesise``; ``pixels`` the original's, uint8), so
    the distortion is the file's."""
    H, W = pixels.shape[2:]
    with torch.no_grad():
        d, mse = distortion.measured(codec.synthesise(model, q.y_hat, H, W), pixels, index)
        bits = model.family.hard_bits(model.net, q, model.sigma_min)
    return d, mse, bits_per_pixel(bits.item(), H * W)


def _true_loss(model, q: codec.QuantizedLatents, pixels, distortion: Distortion, index: int, iteration: int,
               seconds: float, measured: tuple | None = None) -> Evaluation:
    """The evaluation of hard-quantized latents (``_measure``, unless already ``measured``)."""
    d, mse, bpp = measured or _measure(model, q, pixels, distortion, index)
    return Evaluation(iteration, distortion.loss(index, d, bpp), bpp, psnr_of(mse), seconds, mse, d)


def _relaxed(sampler, t: int, v, u, noise) -> Quantized:
    """The sampler as a quantizer of a centred latent v with dither u: u + relaxed round(v - u),
    scored on the unit interval around it."""
    value = sampler(v - u, t, noise) + u
    return Quantized(value, value - 0.5, value + 0.5)


def file_loss(result: codec.EncodeResult, x: torch.Tensor, lmbda: float, model: LoadedModel) -> tuple[float, float]:
    """(R-D loss from the real file size and the real decoded 8-bit pixels, PSNR)."""
    decoded = codec.synthesise(model, result.latents.y_hat, x.shape[2], x.shape[3]).float() / 255
    mse = F.mse_loss(decoded, x.cpu()).item()
    return rd_loss(lmbda, mse, result.bpp), psnr_of(mse)


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


# ------------------------------------------------------------------ the plan


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


REPLANS = 3  # a time limit's plan is made after iterations 2 to 4, from the median of their times


@dataclass(frozen=True)
class _Budget:
    """The time limit, as what is left of it once the plain encodes are made: whether the loop
    has room for an iteration, after iterations 2 to 4 (timed) for how many, and after each
    later one whether it must end there."""

    deadline: float | None  # perf_counter() by which the loop must be done (None: no limit)
    per_synthesis: float  # the least an iteration costs
    per_evaluation: float  # one true-loss evaluation: quantize, code, synthesise

    def first(self, settings: RefineSettings) -> RefineSettings:
        """The schedule to start with: none when not even one iteration fits (an iteration
        costs at least a synthesis)."""
        if self.deadline is None:
            return settings
        left = self.deadline - time.perf_counter()
        fits = _plan(settings, left, self.per_synthesis, self.per_evaluation) > 0
        return settings if fits else replace(settings, iterations=0)

    def spent(self, more: bool) -> bool:
        """Whether the loop must end now (``more``: iterations are planned after this one) to
        keep to the limit with its last evaluation: a slower stretch than the plan's."""
        return more and self.deadline is not None and time.perf_counter() + self.per_evaluation > self.deadline

    def replanned(self, settings: RefineSettings, done: int, per_iteration: float) -> RefineSettings:
        """The schedule that fits what is left of the limit (at least the ``done`` iterations
        run), each further iteration taking ``per_iteration``: the median of those after the
        first, which carries one-time costs (kernels made, memory first touched) that made a
        fresh process's encode plan half its iterations or fewer."""
        if self.deadline is None:
            return settings
        rest = replace(settings, iterations=settings.iterations - done)
        planned = done + (_plan(rest, self.deadline - time.perf_counter(), per_iteration, self.per_evaluation)
                          if rest.iterations else 0)
        return _rescheduled(settings, planned) if planned < settings.iterations else settings


# ------------------------------------------------------------------ the tiled step


@dataclass
class _Batch:
    """What the loop works on: images of one size, their latents as the optimised leaves, and
    the tiling."""

    model: LoadedModel
    x: torch.Tensor  # uint8 (B, 3, H, W) on the model's device
    y: torch.Tensor
    z: torch.Tensor
    u_y: torch.Tensor | None  # the UQ dithers (None / 0: none)
    u_z: torch.Tensor
    distortion: Distortion  # what the loss weighs against the rate, per image
    grid: list  # ((top, bottom, left, right), (r0, r1, c0, c1)) of each tile: its own and its crop
    g_s: torch.nn.Module  # the loop's own copy, channels-last
    bf16: bool
    gen: torch.Generator

    @property
    def pixels(self) -> int:
        return self.x.shape[2] * self.x.shape[3]


def _tile_loss(batch: _Batch, t: int, sampler: Sampler, hyper, noise, tile) -> torch.Tensor:
    """The relaxed loss of one tile: its own positions' bits and its own pixels' weighted
    squared error, from y's crop around it (the halo gives the untiled values)."""
    model, H, W = batch.model, batch.x.shape[2], batch.x.shape[3]
    (top, bottom, left, right), (r0, r1, c0, c1) = tile

    def quantize(v, channels):
        """The sampler on the tile's part of y (centred)."""
        u = 0.0 if batch.u_y is None else batch.u_y[:, channels, r0:r1, c0:c1]
        return _relaxed(sampler, t, v, u, None if noise is None else noise[:, channels, r0:r1, c0:c1])

    crop = (slice(None), slice(None), slice(r0, r1), slice(c0, c1))
    y_tilde, bits = model.family.y_forward(model.net, batch.y[crop], None if hyper is None else hyper[crop],
                                           quantize, model.sigma_min)
    loss = bits_per_pixel(bits[:, :, top - r0 : bottom - r0, left - c0 : right - c0].sum(), batch.pixels)
    rows, cols = (16 * top, min(16 * bottom, H)), (16 * left, min(16 * right, W))
    if rows[1] > rows[0] and cols[1] > cols[0]:  # tiles wholly in the padding have no pixels
        with torch.autocast(batch.x.device.type, dtype=torch.bfloat16, enabled=batch.bf16):
            x_hat = batch.g_s(y_tilde)
        # The sum over the batch: each image's latents get their own loss's gradient.
        if batch.distortion.tune == "psnr":  # its own pixels' errors
            own = x_hat[:, :, rows[0] - 16 * r0 : rows[1] - 16 * r0, cols[0] - 16 * c0 : cols[1] - 16 * c0]
            x = batch.x[:, :, rows[0] : rows[1], cols[0] : cols[1]].float().div_(255)
            return loss + batch.distortion.relaxed(own.float(), x, rows, cols, batch.pixels)
        # MS-SSIM's windows reach past its own pixels: the crop's (in the image) as their context
        around = (16 * r0, min(16 * r1, H)), (16 * c0, min(16 * c1, W))
        x_hat = x_hat[:, :, : around[0][1] - around[0][0], : around[1][1] - around[1][0]]
        x = batch.x[:, :, around[0][0] : around[0][1], around[1][0] : around[1][1]].float().div_(255)
        loss = loss + batch.distortion.relaxed(x_hat.float(), x, *around, batch.pixels, own=(rows, cols))
    return loss


def _step(batch: _Batch, t: int, sampler: Sampler, opt: _Adam) -> None:
    """One Adam step on the relaxed loss, tile by tile. h_s runs once on the whole z; its
    outputs' gradients are gathered from the tiles and sent back through it once."""
    model = batch.model
    z_noise = sampler.noise(batch.z.shape, batch.gen)
    z_tilde, bits_z = model.family.z_forward(model.net, batch.z,
                                             lambda v, channels: _relaxed(sampler, t, v, batch.u_z, z_noise))
    hyper = model.family.hyper_synthesis(model.net, z_tilde)
    hyper_d = None if hyper is None else hyper.detach().float().requires_grad_(hyper.requires_grad)
    noise = sampler.noise(batch.y.shape, batch.gen)
    for tile in batch.grid:
        _tile_loss(batch, t, sampler, hyper_d, noise, tile).backward()
    ends = [] if hyper_d is None or hyper_d.grad is None else [(hyper, hyper_d.grad.to(hyper.dtype))]
    if bits_z.numel():
        torch.autograd.backward([bits_per_pixel(bits_z.sum(), batch.pixels)] + [p for p, _ in ends],
                                [None] + [g for _, g in ends])
    opt.step()


# ------------------------------------------------------------------ the loop and the choice


class _Adam:
    """torch.optim.Adam's single-tensor step (defaults: betas 0.9, 0.999, eps 1e-8), the same
    arithmetic in the same order, for the loop's two leaves: constructing torch's optimizer
    imports torch._dynamo, 2.7 s of a default-effort encode's 20 (one run, this CPU)."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1**self.t)
        correction2_sqrt = (1 - beta2**self.t) ** 0.5  # as torch writes it: pow, not sqrt
        for p, (m, v) in zip(self.params, self.moments):
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            p.addcdiv_(m, (v.sqrt() / correction2_sqrt).add_(self.eps), value=-step_size)
            p.grad = None


@dataclass
class _Best:
    """The best latents of one image seen so far (None: the plain encode's)."""

    evaluation: Evaluation
    y: torch.Tensor | None = None
    z: torch.Tensor | None = None
    stale: int = 0  # evaluations since the last better one
    encoded: codec.EncodeResult | None = None  # the file of y and z, where it was made in the loop


def _loop(batch: _Batch, settings: RefineSettings, budget: _Budget, histories: list[list[Evaluation]],
          quantizer: dict, files: list[dict], progress: Callable | None) -> tuple[list[_Best], int, float]:
    """Run the schedule (shortened by the budget, or by patience);
    appends each true-loss evaluation to ``histories``. Returns each image's best latents,
    the iterations run and the seconds per iteration. The last evaluation codes the whole file
    (with ``files``' mode and alpha), which ``_choose`` then keeps rather than coding the latents again."""
    opt = _Adam([batch.y, batch.z], lr=settings.lr)
    best = [_Best(history[0]) for history in histories]
    schedule, sampler, t, t0, steps = settings, Sampler.of(settings), 0, time.perf_counter(), []
    while t < schedule.iterations:
        t += 1
        if t == math.ceil(schedule.lr_drop * schedule.iterations) + 1:
            opt.lr = schedule.lr / 10
        started = time.perf_counter()
        _step(batch, t, sampler, opt)
        if t <= REPLANS + 1:
            steps.append(time.perf_counter() - started)
        if 2 <= t <= REPLANS + 1 and t < schedule.iterations:
            later = sorted(steps[1:])
            schedule = budget.replanned(settings, t, later[len(later) // 2])  # one stray slow one does not decide
            sampler = Sampler.of(schedule)
        elif budget.spent(t < schedule.iterations):
            schedule = _rescheduled(settings, t)  # the limit is (about to be) spent: this one is the last
        if t % schedule.eval_every == 0 or t == schedule.iterations:
            seconds = time.perf_counter() - t0
            for i, (history, b) in enumerate(zip(histories, best)):
                y, z = batch.y[i : i + 1].detach(), batch.z[i : i + 1].detach()
                encoded = None
                if t == schedule.iterations:
                    W, H = batch.x.shape[3], batch.x.shape[2]
                    encoded = codec.encode_latents(batch.model, y, z, W, H, **files[i], **quantizer,
                                                   refined_method=settings.label)
                    q = encoded.latents
                else:
                    q = codec.quantize_latents(batch.model, y, z, **quantizer)
                history.append(_true_loss(batch.model, q, batch.x[i : i + 1], batch.distortion, i, t, seconds))
                if history[-1].loss < b.evaluation.loss:
                    best[i] = _Best(history[-1], y.clone(), z.clone(), encoded=encoded)
                else:
                    b.stale += 1
        if progress:
            e = histories[0][-1]
            progress("refinement", t, schedule.iterations, f"iteration {e.iteration}: {e.bpp:.4f} bpp, {e.psnr:.2f} dB")
        if settings.patience and min(b.stale for b in best) >= settings.patience:
            break
    return best, t, (time.perf_counter() - t0) / max(t, 1)


def _choose(model: LoadedModel, base: codec.EncodeResult, best: _Best, history: list[Evaluation],
            distortion: Distortion, index: int, file: dict, quantizer: dict, label: str, iterations: int,
            per_iteration: float) -> RefineResult:
    """The result of one image: its best latents' file, unless the plain file is as good by
    real bytes and the decoder's pixels (the true loss's distortion is the file's); ties keep it."""
    plain = history[0]
    if best.y is None:
        refined, chosen = base, plain
    else:
        W, H = base.header.width, base.header.height
        refined = best.encoded or codec.encode_latents(model, best.y, best.z, W, H, **file, **quantizer,
                                                       refined_method=label)
        chosen = best.evaluation
    kept_base = (distortion.loss(index, chosen.distortion, refined.bpp)
                 >= distortion.loss(index, plain.distortion, base.bpp))
    return RefineResult(base if kept_base else refined, base, history, kept_base, per_iteration,
                        plain.psnr, (plain if kept_base else chosen).psnr, iterations,
                        float(distortion.lmbdas[index]), distortion.tune)


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
    roi=None,
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
    file refined on a GPU decodes anywhere. With ``time_limit`` the times of iterations 2 to 4
    decide how many iterations fit (``_Budget``). ``roi``: a greyscale mask (uint8 array of the images'
    size) whose values weigh each pixel's distortion (``lrcodec.learn.distortion``)."""
    t_start = time.perf_counter()
    settings = replace(settings or RefineSettings(), **changes)
    settings.check()
    if tile is not None and (tile < 4 or tile % 4):
        raise LrcodecError(f"refinement tiles must be a positive multiple of 4 y positions, got {tile}")
    if len({im.size for im in images}) != 1:
        raise LrcodecError("images refined as one batch must have one size")
    dev = model.device
    quantizer = dict(uq=uq, seed=seed, soft_alpha=soft_alpha)
    W, H = images[0].size

    split = [split_alpha(im, drop_alpha) for im in images]  # an alpha channel is kept beside the latents
    prepared = [codec.prepare_pixels(im, drop_alpha) for im, _ in split]
    files = [dict(mode=mode, alpha=alpha) for (_, mode), (_, alpha) in zip(prepared, split)]  # each file's besides y, z
    latents = [codec.analyse(model, pixels, progress) for pixels, _ in prepared]
    t_code = time.perf_counter()
    bases = [codec.encode_latents(model, y0, z0, W, H, **file, **quantizer) for (y0, z0), file in zip(latents, files)]
    t_code = time.perf_counter() - t_code
    lmbdas = [lambda_for(model, base.bpp, settings.lmbda) for base in bases]
    if roi is not None and roi.shape != (H, W):
        raise LrcodecError(f"a region-of-interest mask of {roi.shape[1]}x{roi.shape[0]} for a {W}x{H} image")
    distortion = Distortion(settings.tune, None if roi is None else roi_weights(roi)).to(dev)
    # uint8 (floats a tile at a time); one image's is a view of its padded pixels
    x = torch.cat([pixels[:, :, :H, :W] for pixels, _ in prepared]) if len(prepared) > 1 else prepared[0][0][:, :, :H, :W]
    y_shape, z_shape = tuple(latents[0][0].shape), tuple(latents[0][1].shape)
    batch = _Batch(
        model, x.to(dev),
        torch.cat([y0 for y0, _ in latents]).detach().clone().requires_grad_(True),
        torch.cat([z0 for _, z0 in latents]).detach().clone().requires_grad_(True),
        uq_dither(seed, y_shape, 0, soft_alpha).to(dev) if uq else None,
        uq_dither(seed, z_shape, 1, soft_alpha).to(dev) if uq else torch.zeros((), device=dev),
        distortion,
        list(tiles(y_shape[2], y_shape[3], tile or tile_side(*y_shape[2:], TILE, ONE_TILE), refine_halo(model))),
        copy.deepcopy(model.net.g_s).to(memory_format=torch.channels_last),  # the coder keeps its own
        settings.precision == "bfloat16" or (settings.precision == "auto" and bf16_native(dev)),
        torch.Generator(dev).manual_seed(seed))
    del latents, x

    # Iteration 0 is the plain encode, whose latents are already quantized.
    t_eval = time.perf_counter()
    plain = [_measure(model, base.latents, batch.x[i : i + 1], distortion, i) for i, base in enumerate(bases)]
    distortion.calibrate(lmbdas, [(d, mse) for d, mse, _ in plain])
    histories = [[_true_loss(model, base.latents, batch.x[i : i + 1], distortion, i, 0, 0.0, measured)]
                 for i, (base, measured) in enumerate(zip(bases, plain))]
    t_eval = time.perf_counter() - t_eval  # a true loss of quantized latents: synthesis and bits
    budget = _Budget(t_start + settings.time_limit - t_code if settings.time_limit else None, t_eval, t_eval + t_code)
    best, iterations, per_iteration = _loop(batch, budget.first(settings), budget, histories, quantizer, files,
                                            progress)
    return [_choose(model, base, b, history, distortion, i, file, quantizer, settings.label, iterations, per_iteration)
            for i, (base, b, history, file) in enumerate(zip(bases, best, histories, files))]


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
