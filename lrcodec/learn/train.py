"""Training hyperprior models with the quantization surrogates of the literature.

Loss (CompressAI's convention): lambda * 255^2 * MSE + bpp, plus the entropy bottleneck's
auxiliary loss on its quantiles (own Adam, lr 1e-3). On the CPU the four transforms run under
bf16 autocast with channels_last; latents, entropy models and likelihoods stay fp32.
Checkpoints hold everything needed to continue exactly (model, optimisers, RNG states, step).
"""

from __future__ import annotations

import json
import math
import pickle
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..devices import bf16_native, resolve_device
from ..format.entropy import SIGMA_MIN
from ..errors import LrcodecError
from ..imageio import find_images
from .. import metrics
from ..metrics import bits_per_pixel, psnr_of
from ..families import family
from ..settings import SURROGATES, TrainConfig
from ..models import build_network, infer_architecture, load_model, save_model, widen_latents
from .surrogates import surrogate_quantize



def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise LrcodecError(f"training data folder not found: {folder}")
    files = find_images(folder)
    if not files:
        raise LrcodecError(f"no images in {folder}")
    return files


def load_images(paths: list[Path], min_side: int) -> list[torch.Tensor]:
    """uint8 CHW tensors, upscaled (bicubic) when a side is shorter than the crop."""
    import numpy as np
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if min(im.size) < min_side:
                s = min_side / min(im.size)
                im = im.resize((math.ceil(im.width * s), math.ceil(im.height * s)), Image.BICUBIC)
            out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous())
    return out


def random_batch(images, batch_size: int, crop: int, gen: torch.Generator) -> torch.Tensor:
    """Random crops with random horizontal and vertical flips, as floats in [0, 1]."""
    idx = torch.randint(len(images), (batch_size,), generator=gen)
    crops = []
    for i in idx.tolist():
        im = images[i]
        top = torch.randint(im.shape[1] - crop + 1, (1,), generator=gen).item()
        left = torch.randint(im.shape[2] - crop + 1, (1,), generator=gen).item()
        c = im[:, top : top + crop, left : left + crop]
        flips = torch.randint(2, (2,), generator=gen).tolist()
        if flips[0]:
            c = c.flip(2)
        if flips[1]:
            c = c.flip(1)
        crops.append(c)
    return torch.stack(crops).float().div_(255)


def schedule(cfg: TrainConfig, step: int) -> dict:
    """Learning rate, SUA temperature and soft-round alpha at a step."""
    t = step / max(cfg.steps, 1)
    lr = cfg.lr
    if t > cfg.decay_start:
        frac = (t - cfg.decay_start) / max(1 - cfg.decay_start, 1e-9)
        lr = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
    tau = 1.0 if t < 0.5 else max(cfg.tau_end, 1 - (1 - cfg.tau_end) * (t - 0.5) / 0.4)
    alpha = 1.0 + (cfg.alpha_max - 1.0) * min(t, 1.0)
    return {"lr": lr, "temperature": tau, "alpha": alpha}


def rd_forward(net, arch: str, x, surrogate: str, *, sigma_min: float = SIGMA_MIN, step: int = 0,
               temperature: float = 1.0, alpha: float = 16.0, autocast: bool = False,
               stop_gradient: bool = True) -> dict:
    """One pass of an ``arch`` network with a surrogate quantizer: reconstruction and bits of y
    and z (fp32)."""
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext()
    kw = dict(temperature=temperature, alpha=alpha, seed=step, stop_gradient=stop_gradient)
    graph = family(arch)
    with amp:
        y = net.g_a(x)
    y = y.float()
    with amp:
        z = graph.hyper_analysis(net, y)
    z = z.float()
    z_hat, bits_z = graph.z_forward(net, z, lambda v, channels: surrogate_quantize(v, surrogate, stream=1, **kw))
    with amp:
        # The hyper-synthesis and a context's convolutions run in bf16 too; their outputs meet
        # fp32 latents, so the parameters and likelihoods stay fp32.
        hyper = graph.hyper_synthesis(net, z_hat)
        y_hat, bits_y = graph.y_forward(net, y, None if hyper is None else hyper.float(),
                                        lambda v, channels: surrogate_quantize(v, surrogate, stream=0, **kw), sigma_min)
    with amp:
        x_hat = net.g_s(y_hat)
    return {"x_hat": x_hat.float(), "bits_y": bits_y.sum(), "bits_z": bits_z.sum()}


def loss_of(out: dict, x: torch.Tensor, lmbda: float) -> dict:
    """The batch's R-D loss, MSE and bpp from ``rd_forward``'s outputs."""
    B, _, H, W = x.shape
    mse = torch.mean((out["x_hat"] - x) ** 2)
    bpp = bits_per_pixel(out["bits_y"] + out["bits_z"], B * H * W)
    return {"loss": metrics.rd_loss(lmbda, mse, bpp), "mse": mse, "bpp": bpp}


@torch.no_grad()
def validate(net, images: list[torch.Tensor], cfg: TrainConfig) -> dict:
    """Hard-rounding loss on centre crops of the held-out images (eval mode)."""
    if not images:
        return {}
    net.eval()
    device = next(net.parameters()).device
    totals = {"loss": 0.0, "bpp": 0.0, "psnr": 0.0}
    for im in images:
        c = min(cfg.crop * 2, im.shape[1], im.shape[2]) // 64 * 64
        top, left = (im.shape[1] - c) // 2, (im.shape[2] - c) // 2
        x = im[None, :, top : top + c, left : left + c].to(device).float() / 255
        out = rd_forward(net, cfg.arch, x, "round", sigma_min=cfg.sigma_min)
        out["x_hat"] = out["x_hat"].clamp(0, 1)
        r = loss_of(out, x, cfg.lmbda)
        totals["loss"] += r["loss"].item()
        totals["bpp"] += r["bpp"].item()
        totals["psnr"] += psnr_of(r["mse"].item())
    net.train()
    return {k: v / len(images) for k, v in totals.items()}


class _Progress:
    """One status line on stderr: redrawn in place on a terminal, every 100 steps otherwise."""

    def __init__(self, total: int, start: int):
        self.total, self.tty = total, sys.stderr.isatty()
        self.t0, self.s0 = time.monotonic(), start

    def update(self, step: int, stats: dict) -> None:
        if not self.tty and step % 100 and step != self.total:
            return
        rate = (step - self.s0) / max(time.monotonic() - self.t0, 1e-9)
        line = (f"step {step}/{self.total} loss {stats['loss']:.4f} bpp {stats['bpp']:.4f} "
                f"psnr {stats['psnr']:.2f} {rate:.2f} steps/s")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        print(("\n" if self.tty else "") + text, file=sys.stderr, flush=True)


def _checkpoint_path(cfg: TrainConfig) -> Path:
    return Path(cfg.checkpoint_dir) / Path(cfg.out).name / "checkpoint.pt"


def _save_checkpoint(path: Path, net, opt, aux_opt, step: int, gen, cfg: TrainConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({
        "model": net.state_dict(), "optimizer": opt.state_dict(), "aux_optimizer": aux_opt.state_dict(),
        "step": step, "config": asdict(cfg), "data_rng": gen.get_state(),
        "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
    }, tmp)
    tmp.replace(path)


def _model_card(cfg: TrainConfig, step: int, seconds: float, val: dict) -> dict:
    return {
        "arch": cfg.arch, "N": cfg.N, "M": cfg.M, "lmbda": cfg.lmbda, "sigma_min": cfg.sigma_min,
        **({"context": cfg.context} if cfg.context else {}),
        "training": {
            "data": str(cfg.data), "steps": step, "batch_size": cfg.batch_size, "crop": cfg.crop,
            "lr": cfg.lr, "surrogate": cfg.surrogate, "init": cfg.init, "init_training": cfg.init_training,
            "hours": round(seconds / 3600, 3), "device": resolve_device(cfg.device).type,
            "history": cfg.history,
            **({"alpha_max": cfg.alpha_max} if cfg.surrogate == "soft-round" else {}),
            **({"tau_end": cfg.tau_end, "sua_stop_gradient": cfg.sua_stop_gradient} if cfg.surrogate == "sua" else {}),
        },
        "validation": val,
    }


def _resumed(cfg: TrainConfig, resume: str | None) -> tuple[TrainConfig, dict | None]:
    """The run's configuration and checkpoint state: a resumed run's identity comes from its
    checkpoint; only its length, wall budget and checkpoint folder may change."""
    if not resume:
        return cfg, None
    try:
        # Tensors, numbers and strings only: a checkpoint cannot run code when it is loaded.
        state = torch.load(resume, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as e:
        raise LrcodecError(f"cannot resume from {resume}: {str(e).splitlines()[0]}") from None
    saved = TrainConfig(**state["config"])
    saved.steps, saved.max_minutes, saved.checkpoint_dir = cfg.steps, cfg.max_minutes, cfg.checkpoint_dir
    return saved, state


def _network(cfg: TrainConfig, fresh: bool):
    """The network to train: the --init model's (widened to a larger M) for a fresh run that
    has one, else a new one; fills in the config's architecture and sizes."""
    if not (cfg.init and fresh):
        cfg.arch, cfg.N, cfg.M = cfg.arch or "mean-scale", cfg.N or 64, cfg.M or 96
        return build_network(cfg.arch, cfg.N, cfg.M, cfg.context)
    init = load_model(cfg.init)
    net = init.net
    _, N, M = infer_architecture(net.state_dict())
    if cfg.arch not in (None, init.arch):
        raise LrcodecError(f"--init {cfg.init} is a {init.arch} model: --arch {cfg.arch} does not match")
    cfg.arch, cfg.N, cfg.M = init.arch, cfg.N or N, cfg.M or M
    cfg.context = family(init.arch).shape_of(net.state_dict(), M)
    if cfg.N != N or cfg.M < M:
        raise LrcodecError(f"--init {cfg.init} has N={N} M={M}: --N must match and --M may only grow")
    if cfg.M > M:
        net = widen_latents(net, init.arch, cfg.M)
    net.requires_grad_(True)
    cfg.init_training = {k: v for k, v in init.card.get("training", {}).items() if k != "history"}
    return net


@dataclass
class _Optimisers:
    """Adam on the networks (the slice networks at their own lr) and on the bottlenecks' quantiles."""

    main: torch.optim.Optimizer
    aux: torch.optim.Optimizer
    params: list  # what the gradient norm is clipped over

    @classmethod
    def of(cls, net, cfg: TrainConfig) -> "_Optimisers":
        main = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
        aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
        context = [p for n, p in net.named_parameters() if n.startswith("context.")]
        ids = {id(p) for p in context}
        # Each group's lr is the schedule's times its "scale".
        groups = [{"params": [p for p in main if id(p) not in ids], "scale": 1.0}]
        if context:
            groups.append({"params": context, "scale": (cfg.context_lr or cfg.lr) / cfg.lr})
        return cls(torch.optim.Adam(groups, lr=cfg.lr), torch.optim.Adam(aux, lr=1e-3), main)

    def step(self, net, loss: torch.Tensor, lr: float) -> None:
        for g in self.main.param_groups:
            g["lr"] = lr * g.get("scale", 1.0)
        self.main.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.main.step()
        self.aux.zero_grad(set_to_none=True)
        net.aux_loss().backward()  # every entropy bottleneck's quantiles
        self.aux.step()


def _restore(state: dict, net, opts: _Optimisers, gen: torch.Generator) -> int:
    """A checkpoint's weights, optimiser and RNG states; returns its step."""
    net.load_state_dict(state["model"])
    opts.main.load_state_dict(state["optimizer"])
    opts.aux.load_state_dict(state["aux_optimizer"])
    gen.set_state(state["data_rng"])
    torch.set_rng_state(state["torch_rng"])
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    return state["step"]


def train(cfg: TrainConfig, resume: str | None = None, stop_at: int | None = None) -> Path:
    """Train (or continue) a model; returns the path of the written safetensors file.

    ``stop_at`` ends this invocation early (with a checkpoint) without changing the schedule,
    which is set by ``cfg.steps``: a long run can be done in pieces."""
    if cfg.surrogate not in SURROGATES:
        raise LrcodecError(f"unknown surrogate {cfg.surrogate!r} (choose from {', '.join(SURROGATES)})")
    cfg, state = _resumed(cfg, resume)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = cuda  # fixed crop size: let cuDNN pick the fastest kernels
    net = _network(cfg, state is None)
    files = list_images(cfg.data)  # after the model: a bad --init/--N/--M fails before the loading
    n_val = min(cfg.val_images, max(len(files) - 1, 0))
    images = load_images(files[: len(files) - n_val], cfg.crop)
    val_images = load_images(files[len(files) - n_val :], 64)
    net = net.to(device).train()
    if not cuda:
        net = net.to(memory_format=torch.channels_last)
    opts, gen = _Optimisers.of(net, cfg), torch.Generator().manual_seed(cfg.seed)
    step = _restore(state, net, opts, gen) if state else 0
    use_bf16 = not cuda and (bf16_native(device) if cfg.bf16 is None else cfg.bf16)
    ckpt, progress, t_start = _checkpoint_path(cfg), _Progress(cfg.steps, step), time.monotonic()
    prior_seconds = cfg.history[-1]["seconds"] if cfg.history else 0.0
    while step < cfg.steps:
        sched = schedule(cfg, step)
        x = random_batch(images, cfg.batch_size, cfg.crop, gen).to(device)
        if not cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        out = rd_forward(net, cfg.arch, x, cfg.surrogate, sigma_min=cfg.sigma_min, step=step,
                         temperature=sched["temperature"], alpha=sched["alpha"], autocast=use_bf16,
                         stop_gradient=cfg.sua_stop_gradient)
        r = loss_of(out, x, cfg.lmbda)
        opts.step(net, r["loss"], sched["lr"])
        step += 1
        progress.update(step, {"loss": r["loss"].item(), "bpp": r["bpp"].item(), "psnr": psnr_of(r["mse"].item())})
        out_of_time = (cfg.max_minutes and time.monotonic() - t_start > cfg.max_minutes * 60) or step == stop_at
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
            val = validate(net, val_images, cfg)
            seconds = prior_seconds + time.monotonic() - t_start
            cfg.history.append({"step": step, "seconds": round(seconds, 1), **val})
            _save_checkpoint(ckpt, net, opts.main, opts.aux, step, gen, cfg)
            save_model(net, Path(cfg.out), _model_card(cfg, step, seconds, val))
            progress.message(f"checkpoint {ckpt} at step {step}: validation "
                             + json.dumps({k: round(v, 4) for k, v in val.items()}))
        if out_of_time:
            break
    return Path(cfg.out).with_suffix(".safetensors")
