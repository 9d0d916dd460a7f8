"""The overfitted family's float graph (Cool-chic, C3): latent grids, the ARM and the
synthesis of one image as torch parameters, for the encoder to learn from scratch. The file
half (profiles, exact ARM, coding, torch-free decoding) is ``lrcodec.format.overfit``; this
graph mirrors it operation for operation, in float.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..format.overfit import LOG_SCALE_RANGE, Decoder, Profile, context_pad, level_shapes
from ..settings import OverfitSettings
from .base import Quantized

_PROBABILITY_FLOOR = 2.0**-16  # the rate's likelihoods are floored here (a bounded gradient)
LATENT_GAIN = 16.0  # the coded latents are GAIN x the parameters: Adam's steps move them 16x faster (Cool-chic's)
LOG_SCALE_START = -4.0  # the ARM's initial log scale: narrow Laplaces, so that latents start costly (Cool-chic's)


class _Shifts(torch.autograd.Function):
    """Windows of a padded tensor stacked on a new axis: forward, copies; backward, each
    window's gradient added in place into one buffer (autograd's slicing would make a
    padded-size tensor per window and sum them)."""

    @staticmethod
    def forward(ctx, padded, starts, h, w, dim):
        ctx.shape, ctx.starts, ctx.hw, ctx.dim = padded.shape, starts, (h, w), dim
        return torch.stack([padded[..., y: y + h, x: x + w] for y, x in starts], dim)

    @staticmethod
    def backward(ctx, grad):
        (h, w), out = ctx.hw, grad.new_zeros(ctx.shape)
        for k, (y, x) in enumerate(ctx.starts):
            out[..., y: y + h, x: x + w] += grad.select(ctx.dim, k)
        return out, None, None, None, None


_NINE = [(i, j) for i in range(3) for j in range(3)]


class OverfitNet(nn.Module):
    """One image's decoder and latents; ``latents`` is one flat parameter, the levels views of it."""

    def __init__(self, profile: Profile, height: int, width: int):
        super().__init__()
        self.profile = profile
        self.shapes = level_shapes(profile, height, width)
        self.sizes = [h * w for h, w in self.shapes]
        self.latents = nn.Parameter(torch.zeros(sum(self.sizes)))
        self.arm = nn.ModuleList(nn.Linear(n, o) for o, n in profile.arm_shapes)
        self.synth = nn.ModuleList([nn.Linear(profile.levels, profile.synth_hidden), nn.Linear(profile.synth_hidden, 3)])
        self.residual = nn.ModuleList(nn.Conv2d(3, 3, 3) for _ in range(profile.synth_residual))
        for conv in self.residual:  # the residual layers start as the identity
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self._pad = context_pad(profile.context)

    def initialise(self, gen: torch.Generator) -> "OverfitNet":
        """Cool-chic's initialisation, drawn from ``gen``: latents zero, hidden layers torch's
        default, the ARM's output small (log scale LOG_SCALE_START), the synthesis's 1x1 layers
        small and its residual layers zero (the identity)."""
        with torch.no_grad():
            for layer in self.arm[:-1]:
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
            out = self.arm[-1]
            out.weight.normal_(0, 0.25, generator=gen)
            out.bias.copy_(torch.tensor([0.0, LOG_SCALE_START]))
            for layer in self.synth:
                bound = 1 / (layer.out_features**2 * math.sqrt(layer.in_features))
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.zero_()
        return self

    def values(self) -> torch.Tensor:
        """The latents before quantization: the parameters times LATENT_GAIN."""
        return self.latents * LATENT_GAIN

    def grids(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [v.view(h, w) for v, (h, w) in zip(flat.split(self.sizes), self.shapes)]

    def contexts(self, flat: torch.Tensor) -> torch.Tensor:
        """(latents, C): every latent's causal neighbours on its level, gathered by slicing."""
        px, py = self._pad
        starts = [(py + dy, px + dx) for dy, dx in self.profile.context]
        return torch.cat([_Shifts.apply(F.pad(grid, (px, px, py, 0)), starts, h, w, -1).view(h * w, -1)
                          for grid, (h, w) in zip(self.grids(flat), self.shapes)])

    def arm_forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log scale) in real units: ``format.overfit.ExactArm`` without its floors."""
        h = context
        for i, layer in enumerate(self.arm):
            out = torch.addmm(layer.bias, h, layer.weight.t())
            if i == len(self.arm) - 1:
                return out[:, 0], out[:, 1]
            h = h + torch.relu_(out) if i > 0 else torch.relu_(out)
        raise AssertionError("an ARM has an output layer")

    def bits(self, q: Quantized, context_values: torch.Tensor) -> torch.Tensor:
        """The latents' bits: P(lower < V < upper) under each latent's Laplace."""
        mu, log_scale = self.arm_forward(self.contexts(context_values))
        inverse_b = torch.exp(-log_scale.clamp(*LOG_SCALE_RANGE))

        def cdf(x):
            tail = 0.5 * torch.exp(-x.abs() * inverse_b)
            return torch.where(x < 0, tail, 1 - tail)

        p = cdf(q.upper - mu) - cdf(q.lower - mu)
        return -torch.log2(p.clamp_min(_PROBABILITY_FLOOR)).sum()

    def synthesise(self, values: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) float image of (quantized) latents: ``format.overfit.synthesise`` in torch."""
        grids = self.grids(values)
        stack = grids[-1][None, None]
        for grid in reversed(grids[:-1]):
            stack = torch.cat([F.interpolate(stack, scale_factor=2, mode="bilinear", align_corners=False),
                               grid[None, None]], 1)
        _, levels, h, w = stack.shape
        first, second = self.synth
        x = torch.relu_(torch.addmm(first.bias[:, None], first.weight, stack.view(levels, h * w)))
        x = torch.addmm(second.bias[:, None], second.weight, x).view(1, 3, h, w)
        for conv in self.residual:  # as one product with the 27 shifted planes (mkldnn is slow at 3 channels)
            shifted = _Shifts.apply(F.pad(x, (1, 1, 1, 1), mode="replicate")[0], _NINE, h, w, 1)
            x = x + torch.addmm(conv.bias[:, None], conv.weight.view(3, 27), shifted.view(27, h * w)).view(1, 3, h, w)
        return x

    def quantized_decoder(self, arm_exponent: int, synth_exponent: int) -> Decoder:
        """The decoder the file carries: every parameter rounded to its network's step."""
        from ..format.overfit import PARAM_LIMIT

        params = {}
        state = {k: v.detach().double().cpu().numpy() for k, v in self.state_dict().items() if k != "latents"}
        for name, shape in self.profile.tensors:
            key = name.replace("synth.res", "residual.")
            step = arm_exponent if name.startswith("arm.") else synth_exponent
            params[name] = np.clip(np.rint(state[key] * 2.0**step), -PARAM_LIMIT, PARAM_LIMIT).astype(np.int32).reshape(shape)
        return Decoder(self.profile, params, arm_exponent, synth_exponent)


class Phase(NamedTuple):
    lr: float
    temperature: float  # soft rounding's 1/alpha
    noise: float  # the soft phase's Gaussian noise (std)
    hard: bool  # the last phase: hard rounding, straight-through


def schedule(t: float, settings: OverfitSettings) -> Phase:
    """The phase at fraction t of the iterations (Cool-chic 4's): a cosine lr and linearly
    annealed temperature and noise over the soft phase, then hard rounding at lr/100."""
    soft = 1 - settings.hard_fraction
    if t >= soft:
        u = (t - soft) / settings.hard_fraction
        return Phase(settings.lr / 100 * (0.5 + 0.5 * math.cos(math.pi * u)), settings.temperature[1],
                     0.0, True)
    u = t / soft
    (t0, t1), (n0, n1) = settings.temperature, settings.noise

    return Phase(settings.lr * (0.5 + 0.5 * math.cos(math.pi * u)) + 1e-5, t0 + (t1 - t0) * u, n0 + (n1 - n0) * u, False)
