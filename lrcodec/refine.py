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

import math
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F

from . import codec
from .devices import bf16_native
from .errors import LrcodecError
from .kernels import stable_forward
from .models import LoadedModel
from .settings import RefineSettings
from .quantization import (
    factorized_interval_likelihood,
    gaussian_interval_likelihood,
    ste_round,
    uq_dither,
    z_medians,
)



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
    u = torch.rand(shape, generator=gen, device=gen.device).clamp(1e-10, 1 - 1e-7)
    return -torch.log(-torch.log(u))


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

    def __call__(self, v: torch.Tensor, t: int, gen: torch.Generator) -> torch.Tensor:
        if self.method == "ste":
            return ste_round(v)
        if self.method == "noise":
            return v + torch.rand(v.shape, generator=gen, device=gen.device) - 0.5
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
        w = torch.softmax((logits / T + _gumbel(logits.shape, gen)) / T, -1)
        return base + (w * offsets).sum(-1)


# ------------------------------------------------------------------ the refinement loop

@dataclass
class RefineResult:
    encoded: codec.EncodeResult
    base: codec.EncodeResult
    history: list = field(default_factory=list)  # (iteration, true loss, bpp estimate, psnr, seconds)
    kept_base: bool = False
    seconds_per_iteration: float = 0.0
    base_psnr: float = 0.0  # from the real decoded 8-bit pixels
    psnr: float = 0.0
    iterations: int = 0  # run (fewer than asked when early stopping ended the loop)


def _true_loss(model, q: codec.QuantizedLatents, x, H, W, lmbda):
    """(R-D loss, bpp, PSNR) of latents quantized as the coder does (symbols and each
    element's (sigma, mu) from the exact CPU path), with the synthesis in float32 on the
    model's device, evaluated as the decoder evaluates it."""
    device = x.device
    with torch.no_grad():
        x_hat = stable_forward(model.net.g_s, q.y_hat.to(device))[:, :, :H, :W].clamp(0, 1)
        mse = F.mse_loss(x_hat, x).item()
        v = q.y_hat - q.mu.float()
        bits = -torch.log2(gaussian_interval_likelihood(v - 0.5, v + 0.5, q.sigma.float())).sum()
        eb = model.net.entropy_bottleneck
        z_hat = q.z_hat.to(device)
        bits = bits - torch.log2(factorized_interval_likelihood(eb, z_hat - 0.5, z_hat + 0.5)).sum().cpu()
    bpp = bits.item() / (H * W)
    return lmbda * 255**2 * mse + bpp, bpp, 10 * math.log10(1 / max(mse, 1e-12))


def file_loss(result: codec.EncodeResult, x: torch.Tensor, lmbda: float, model: LoadedModel) -> tuple[float, float]:
    """(R-D loss from the real file size and the real decoded 8-bit pixels, PSNR)."""
    decoded = codec.synthesise(model, result.latents.y_hat, x.shape[2], x.shape[3]).float() / 255
    mse = F.mse_loss(decoded, x.cpu()).item()
    return lmbda * 255**2 * mse + result.bpp, 10 * math.log10(1 / max(mse, 1e-12))


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
    progress: Callable[[dict], None] | None = None,
    **changes,
) -> list[RefineResult]:
    """Refine images of one size together, as one batch (what a GPU wants); each image's result
    is what refining it alone would give, up to the random draws of the sampler.

    The loop and the transforms run on the model's device (``model.to(device)``); the files'
    symbols are decided on the CPU's exact path, so a file refined on a GPU decodes anywhere."""
    settings = replace(settings or RefineSettings(), **changes)
    settings.check()
    lmbda = settings.lmbda if settings.lmbda is not None else model.card.get("lmbda")
    if lmbda is None:
        raise LrcodecError(f"model {model.name} has no lambda in its card; pass --lmbda")
    if len({im.size for im in images}) != 1:
        raise LrcodecError("images refined as one batch must have one size")
    sampler = Sampler.of(settings)
    dev = model.device
    use_bf16 = settings.precision == "bfloat16" or (settings.precision == "auto" and bf16_native(dev))
    gen = torch.Generator(dev).manual_seed(seed)
    quantizer = dict(uq=uq, seed=seed, soft_alpha=soft_alpha)
    W, H = images[0].size

    prepared = [codec.prepare_pixels(im, drop_alpha) for im in images]
    latents = [codec.analyse(model, pixels) for pixels, _ in prepared]
    bases = [codec.encode_latents(model, y0, z0, W, H, mode, **quantizer)
             for (y0, z0), (_, mode) in zip(latents, prepared)]
    x = torch.cat([pixels[:, :, :H, :W] for pixels, _ in prepared]).to(dev).float().div_(255)

    net = model.net.to(memory_format=torch.channels_last)
    eb = net.entropy_bottleneck
    m = z_medians(eb)
    y_shape, z_shape = tuple(latents[0][0].shape), tuple(latents[0][1].shape)
    u_y = uq_dither(seed, y_shape, 0, soft_alpha).to(dev) if uq else torch.zeros((), device=dev)
    u_z = uq_dither(seed, z_shape, 1, soft_alpha).to(dev) if uq else torch.zeros((), device=dev)
    y = torch.cat([y0 for y0, _ in latents]).detach().clone().requires_grad_(True)
    z = torch.cat([z0 for _, z0 in latents]).detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y, z], lr=settings.lr)
    drop_at = math.ceil(settings.lr_drop * settings.iterations)

    def relaxed(t: int):
        """The sampler as the family's y quantizer: y~ = mu + u + relaxed round(y - mu - u).
        The dither is taken at the elements' positions, so per-slice calls see the same u."""

        def quantize(y_part, sigma, mu, channels):
            u = u_y if u_y.dim() == 0 else u_y[:, channels]
            v = sampler(y_part - mu - u, t, gen) + u
            return mu + v, -torch.log2(gaussian_interval_likelihood(v - 0.5, v + 0.5, sigma))

        return quantize

    def true_losses(t: int, elapsed: float) -> list[tuple]:
        return [(t, *_true_loss(model, codec.quantize_latents(model, y[i : i + 1].detach(), z[i : i + 1].detach(),
                                                              **quantizer), x[i : i + 1], H, W, lmbda), elapsed)
                for i in range(len(images))]

    # Iteration 0 is the plain encode, whose latents are already quantized.
    histories = [[(0, *_true_loss(model, base.latents, x[i : i + 1], H, W, lmbda), 0.0)]
                 for i, base in enumerate(bases)]
    best = [(h[0][1], y0, z0) for h, (y0, z0) in zip(histories, latents)]
    stale, t = [0] * len(images), 0
    t0 = time.perf_counter()
    try:
        for t in range(1, settings.iterations + 1):
            if t == drop_at + 1:
                for group in opt.param_groups:
                    group["lr"] = settings.lr / 10
            z_tilde = m + u_z + sampler(z - m - u_z, t, gen)
            bits_z = -torch.log2(factorized_interval_likelihood(eb, z_tilde - 0.5, z_tilde + 0.5)).sum()
            _, _, y_tilde, bits_y = model.family.forward(net, y, z_tilde, relaxed(t))
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
                x_hat = net.g_s(y_tilde)
            # The sum of the images' losses: each image's latents get their own loss's gradient.
            mse = F.mse_loss(x_hat[:, :, :H, :W].float(), x) * len(images)
            loss = lmbda * 255**2 * mse + (bits_y.sum() + bits_z) / (H * W)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if t % settings.eval_every and t != settings.iterations:
                continue
            elapsed = time.perf_counter() - t0
            for i, entry in enumerate(true_losses(t, elapsed)):
                histories[i].append(entry)
                stale[i] = stale[i] + 1 if entry[1] >= best[i][0] else 0
                if entry[1] < best[i][0]:
                    best[i] = (entry[1], y[i : i + 1].detach().clone(), z[i : i + 1].detach().clone())
            if progress:
                _, true, bpp, psnr, _ = histories[0][-1]
                progress({"iteration": t, "iterations": settings.iterations, "loss": true, "bpp": bpp,
                          "psnr": psnr, "best": best[0][0], "seconds_left": elapsed / t * (settings.iterations - t)})
            if settings.patience and min(stale) >= settings.patience:
                break
    finally:
        model.net.to(memory_format=torch.contiguous_format)
    seconds_per_iteration = (time.perf_counter() - t0) / max(t, 1)
    results = []
    for i, ((_, y_best, z_best), base, (_, mode)) in enumerate(zip(best, bases, prepared)):
        refined = codec.encode_latents(model, y_best, z_best, W, H, mode, **quantizer, refined_method=settings.label)
        x_i = x[i : i + 1].cpu()
        (refined_loss, refined_psnr), (base_loss, base_psnr) = (
            file_loss(refined, x_i, lmbda, model), file_loss(base, x_i, lmbda, model))
        kept_base = refined_loss >= base_loss  # ties (e.g. latents that never improved) keep the plain file
        results.append(RefineResult(base if kept_base else refined, base, histories[i], kept_base,
                                    seconds_per_iteration, base_psnr, base_psnr if kept_base else refined_psnr, t))
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


def stderr_progress(quiet: bool = False) -> Callable[[dict], None] | None:
    """A progress printer for terminals (None when quiet or stderr is not a terminal)."""
    if quiet or not sys.stderr.isatty():
        return None

    def show(p: dict) -> None:
        end = "\n" if p["iteration"] == p["iterations"] else ""
        print(f"\riter {p['iteration']}/{p['iterations']}  bpp {p['bpp']:.4f}  PSNR {p['psnr']:.2f}  "
              f"loss {p['loss']:.4f}  best {p['best']:.4f}  {p['seconds_left']:.0f} s left ",
              end=end, file=sys.stderr, flush=True)

    return show
