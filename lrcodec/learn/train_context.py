"""Training a channel-conditional context on a trained mean-scale model's frozen transforms
(``docs/training.md``, "The context models").

Stage 1 is rate-only: y = g_a(x) and the hyperprior's exact (sigma, mu) are computed once
per training image and cached, and only the slice networks are trained, on random crops of
those latents, to minimise the bits of y. There is no synthesis pass, so a step costs a
small fraction of a full training step. Held-out images are scored with hard rounding, as
the coder quantizes, against the hyperprior alone.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..format.entropy import SIGMA_MIN
from ..families.channel_context import CHANNEL_CONTEXT, DEFAULT_SHAPE, ChannelContext, ContextShape
from ..format.likelihoods import gaussian_interval_likelihood
from .surrogates import ste_round

PIXELS_PER_LATENT = 256


@dataclass
class ContextConfig:
    model: str = "lrc-mshp-q3"  # the mean-scale model whose transforms stay frozen
    data: str = "../shared/data/train"
    out: str = "runs/context"
    slices: int = DEFAULT_SHAPE["slices"]
    hidden: tuple[int, int] = tuple(DEFAULT_SHAPE["hidden"])
    checkerboard: bool = DEFAULT_SHAPE["checkerboard"]
    steps: int = 3000
    batch_size: int = 16
    crop: int = 16  # latent positions per side (256 pixels)
    lr: float = 1e-3
    seed: int = 0
    val_images: int = 8
    eval_every: int = 250
    threads: int | None = None
    history: list = field(default_factory=list)


def latent_cache(model, paths: list[Path], cache: Path) -> list[dict]:
    """y, sigma and mu (float16, CPU) of every image as the coder computes them; cached in
    ``cache`` (keyed by the model id) because g_a is the expensive part."""
    from PIL import Image

    from ..codec import analyse, prepare_pixels, quantize_latents

    cache = Path(cache)
    if cache.exists():
        stored = torch.load(cache, weights_only=True)
        if stored["model_id"] == model.model_id.hex() and stored["files"] == [p.name for p in paths]:
            return stored["latents"]
    latents = []
    for p in paths:
        with Image.open(p) as im:
            pixels, _ = prepare_pixels(im.convert("RGB"))
        y, z = analyse(model, pixels)
        q = quantize_latents(model, y, z)
        sigma, mu = model.family.split(torch.from_numpy(model.exact.hyper(q.z_symbols.numpy(),
                                                                          np.zeros(q.z_symbols.shape))))
        latents.append({"y": y[0].half(), "sigma": sigma[0].half(), "mu": mu[0].half()})
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_id": model.model_id.hex(), "files": [p.name for p in paths], "latents": latents}, cache)
    return latents


def random_crops(latents: list[dict], batch: int, crop: int, gen: torch.Generator) -> tuple:
    ys, sigmas, mus = [], [], []
    for i in torch.randint(len(latents), (batch,), generator=gen).tolist():
        t = latents[i]
        H, W = t["y"].shape[1:]
        top = torch.randint(H - crop + 1, (1,), generator=gen).item()
        left = torch.randint(W - crop + 1, (1,), generator=gen).item()
        window = (slice(None), slice(top, top + crop), slice(left, left + crop))
        ys.append(t["y"][window])
        sigmas.append(t["sigma"][window])
        mus.append(t["mu"][window])
    return tuple(torch.stack(x).float() for x in (ys, sigmas, mus))


def mixed_quantizer(sigma_min: float):
    """y_hat = round(y - mu) + mu forward (identity gradient to y, none to mu); the rate of
    the noisy v + u, as the `mixed` surrogate (docs/algorithms.md section 3)."""

    def quantize(y, sigma, mu, channels=slice(None)):
        v = y - mu
        u = torch.rand_like(v) - 0.5
        p = gaussian_interval_likelihood(v + u - 0.5, v + u + 0.5, sigma, sigma_min)
        return ste_round(v) + mu, -torch.log2(p)

    return quantize


def hard_quantizer(sigma_min: float):
    """The coder's quantization: k = round(y - mu), its bin's mass under N(mu, sigma)."""

    def quantize(y, sigma, mu, channels=slice(None)):
        k = torch.round(y - mu)
        p = gaussian_interval_likelihood(k - 0.5, k + 0.5, sigma, sigma_min)
        return k + mu, -torch.log2(p)

    return quantize


@torch.no_grad()
def held_out_bits(context: ChannelContext, latents: list[dict], sigma_min: float) -> tuple[float, float]:
    """(bits of y with the context, with the hyperprior alone) over the held-out images, hard rounding."""
    quantize = hard_quantizer(sigma_min)
    with_context = hyper_only = 0.0
    for t in latents:
        y, sigma, mu = (t[k][None].float() for k in ("y", "sigma", "mu"))
        with_context += context(y, sigma, mu, quantize)[3].sum().item()
        hyper_only += quantize(y, sigma, mu)[1].sum().item()
    return with_context, hyper_only


def train_context(cfg: ContextConfig, log=print) -> ChannelContext:
    from ..models import load_model
    from .train import list_images

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model)
    sigma_min = model.card.get("sigma_min", SIGMA_MIN)
    files = list_images(cfg.data)
    train_files, val_files = files[: -cfg.val_images], files[-cfg.val_images:]
    out = Path(cfg.out)
    start = time.time()
    train = latent_cache(model, train_files, out / f"latents-{model.name}-train.pt")
    val = latent_cache(model, val_files, out / f"latents-{model.name}-val.pt")
    log(f"latents of {len(train)} + {len(val)} images in {time.time() - start:.0f} s")
    M = train[0]["y"].shape[0]
    context = ChannelContext(ContextShape(M, cfg.slices, tuple(cfg.hidden), cfg.checkerboard))
    opt = torch.optim.Adam(context.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    quantize = mixed_quantizer(sigma_min)
    start = time.time()
    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            bits, base = held_out_bits(context, val, sigma_min)
            record = {"step": step, "seconds": round(time.time() - start, 1),
                      "val_y_bits_vs_hyperprior_pct": round(100 * (bits / base - 1), 3)}
            cfg.history.append(record)
            log(json.dumps(record))
        if step == cfg.steps:
            break
        frac = step / cfg.steps
        lr = cfg.lr * (1.0 if frac < 0.8 else 0.5 * (1 + math.cos(math.pi * (frac - 0.8) / 0.2)) * 0.95 + 0.05)
        for g in opt.param_groups:
            g["lr"] = lr
        y, sigma, mu = random_crops(train, cfg.batch_size, cfg.crop, gen)
        bits = context(y, sigma, mu, quantize)[3].sum()
        loss = bits / (y.shape[0] * cfg.crop**2 * PIXELS_PER_LATENT)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(context.parameters(), 1.0)
        opt.step()
    torch.save({"config": asdict(cfg), "state": context.state_dict()}, out / f"context-{model.name}.pt")
    assemble(model, context, out / f"{model.name.replace('mshp', 'ctx')}.safetensors", cfg, time.time() - start)
    return context


def assemble(model, context: ChannelContext, path: Path, cfg: ContextConfig, seconds: float) -> Path:
    """A channel-context model file: the mean-scale model's weights plus the trained context."""
    from ..models import save_model, weights_of

    shape = {"slices": context.shape.slices, "hidden": list(context.shape.hidden),
             "checkerboard": context.shape.checkerboard}
    N, M = model.net.entropy_bottleneck.channels, context.shape.M
    net = CHANNEL_CONTEXT.build("channel-context", N, M, shape)
    torch.nn.Module.load_state_dict(net, {**weights_of(model.net), **{f"context.{k}": v for k, v in
                                                                     context.state_dict().items()}}, strict=False)
    card = {k: v for k, v in model.card.items() if k not in ("name", "model_id", "kodak", "training", "validation")}
    card.update(arch="channel-context", context=shape, training={
        "stage": "context, rate-only on frozen transforms (lrcodec/learn/train_context.py)",
        "base": model.name, "base_model_id": model.model_id.hex(), "steps": cfg.steps,
        "batch_size": cfg.batch_size, "crop_latents": cfg.crop, "lr": cfg.lr, "data": cfg.data,
        "hours": round(seconds / 3600, 3), "history": cfg.history,
        "init_training": {k: v for k, v in model.card.get("training", {}).items() if k != "history"}})
    save_model(net, path, card, fp16=True)
    return path


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    for name, value in asdict(ContextConfig()).items():
        if name == "history":
            continue
        if isinstance(value, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value)
        elif isinstance(value, tuple):
            parser.add_argument(f"--{name.replace('_', '-')}", type=int, nargs=2, default=value)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value) if value is not None else int,
                                default=value)
    train_context(ContextConfig(**vars(parser.parse_args())))
