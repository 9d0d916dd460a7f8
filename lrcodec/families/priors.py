"""The entropy models' float parts, with CompressAI 1.2.8's tensor names: the learned
factorized density of its ``EntropyBottleneck`` (Ballé et al. 2018, appendix 6.1) in both of
its namings, the buffers of its ``GaussianConditional``, and the base of every network
(``CompressionNet``: the quantiles' auxiliary loss).

lrcodec codes with its own exact path (``lrcodec.format.exact``), so nothing here builds CDF
tables or codes: the coder-table buffers (``_quantized_cdf``, ``_offset``, ``_cdf_length``,
``scale_table``) are kept, empty, only because CompressAI's state dicts and its loader have
them.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import LowerBound


class _CoderBuffers(nn.Module):
    """What every CompressAI entropy model registers: the likelihood floor and the (empty
    until CompressAI's ``update()``) coder tables."""

    def __init__(self, likelihood_bound: float = 1e-9):
        super().__init__()
        self.use_likelihood_bound = likelihood_bound > 0
        if self.use_likelihood_bound:
            self.likelihood_lower_bound = LowerBound(likelihood_bound)
        self.register_buffer("_offset", torch.IntTensor())
        self.register_buffer("_quantized_cdf", torch.IntTensor())
        self.register_buffer("_cdf_length", torch.IntTensor())


class _FactorizedDensity(_CoderBuffers):
    """The learned per-channel CDF c(t) = sigmoid(logit(t)), logit a small monotone network of
    t (``filters`` hidden widths), and the quantiles that bracket its mass. Subclasses say
    where the network's tensors are stored (``layers``)."""

    def __init__(self, channels: int, tail_mass: float = 1e-9, init_scale: float = 10,
                 filters: tuple[int, ...] = (3, 3, 3, 3)):
        super().__init__()
        self._init_storage()
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        self.init_scale = float(init_scale)
        self.tail_mass = float(tail_mass)
        widths = (1, *self.filters, 1)
        scale = self.init_scale ** (1 / (len(self.filters) + 1))
        for i in range(len(self.filters) + 1):  # CompressAI's initialisation and its order of draws
            matrix = torch.Tensor(self.channels, widths[i + 1], widths[i])
            matrix.data.fill_(math.log(math.expm1(1 / scale / widths[i + 1])))
            bias = torch.Tensor(self.channels, widths[i + 1], 1)
            nn.init.uniform_(bias, -0.5, 0.5)
            factor = None
            if i < len(self.filters):
                factor = torch.Tensor(self.channels, widths[i + 1], 1)
                nn.init.zeros_(factor)
            self._register_layer(i, nn.Parameter(matrix), nn.Parameter(bias),
                                 None if factor is None else nn.Parameter(factor))
        self.quantiles = nn.Parameter(torch.Tensor(self.channels, 1, 3))
        self.quantiles.data = torch.Tensor([-self.init_scale, 0, self.init_scale]).repeat(self.channels, 1, 1)
        target = math.log(2 / self.tail_mass - 1)
        self.register_buffer("target", torch.Tensor([-target, 0, target]))

    def _init_storage(self) -> None:
        """Make what ``_register_layer`` stores the network's tensors in (nothing by default)."""

    def _register_layer(self, i: int, matrix: nn.Parameter, bias: nn.Parameter, factor: nn.Parameter | None) -> None:
        raise NotImplementedError

    def layers(self) -> list[tuple[Tensor, Tensor, Tensor | None]]:
        """(matrix (C, out, in), bias (C, out, 1), factor (C, out, 1) or None for the last)
        of each layer of the density's network, the raw parameters (before softplus / tanh)."""
        raise NotImplementedError

    def _get_medians(self) -> Tensor:
        """Each channel's median, (C, 1, 1)."""
        return self.quantiles[:, :, 1:2]

    def logits_cumulative(self, inputs: Tensor, stop_gradient: bool = False) -> Tensor:
        """The logit of the CDF at inputs (C, 1, n), channel by channel; ``stop_gradient``:
        none reaches the density's parameters."""
        logits = inputs
        for matrix, bias, factor in self.layers():
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if factor is not None:
                logits = logits + torch.tanh(factor.detach() if stop_gradient else factor) * torch.tanh(logits)
        return logits

    def _logits_cumulative(self, inputs: Tensor, stop_gradient: bool) -> Tensor:
        """CompressAI's name of ``logits_cumulative``."""
        return self.logits_cumulative(inputs, stop_gradient)

    def loss(self) -> Tensor:
        """The quantiles' loss (CompressAI's aux loss): the CDF at the three quantiles should be
        tail_mass / 2, 1/2 and 1 - tail_mass / 2 (in logits: target)."""
        return torch.abs(self.logits_cumulative(self.quantiles, stop_gradient=True) - self.target).sum()


class EntropyBottleneck(_FactorizedDensity):
    """CompressAI's ``EntropyBottleneck``: the network's tensors in the ParameterLists
    ``matrices``, ``biases`` and ``factors``."""

    def _init_storage(self) -> None:
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A checkpoint of CompressAI before 1.2 (its zoo files) names the tensors ``_matrix0``,
        ``_bias0``, ...: renamed here as CompressAI's own loader renames them
        (``compressai.models.utils.remap_old_keys``)."""
        for key in [k for k in state_dict if k.startswith(prefix)]:
            old = re.fullmatch(r"_(matrix|bias|factor)(\d+)", key[len(prefix):])
            if old:
                kind = {"matrix": "matrices", "bias": "biases", "factor": "factors"}[old.group(1)]
                state_dict[f"{prefix}{kind}.{old.group(2)}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _register_layer(self, i, matrix, bias, factor) -> None:
        self.matrices.append(matrix)
        self.biases.append(bias)
        if factor is not None:
            self.factors.append(factor)

    def layers(self) -> list[tuple[Tensor, Tensor, Tensor | None]]:
        n = len(self.filters) + 1
        return [(self.matrices[i], self.biases[i], self.factors[i] if i < n - 1 else None) for i in range(n)]


class EntropyBottleneckVbr(_FactorizedDensity):
    """CompressAI's ``EntropyBottleneckVbr`` (its variable-rate models' z prior, whose step
    the network sets): the same density, its tensors named ``_matrix{i}``, ``_bias{i}`` and
    ``_factor{i}``."""

    def _register_layer(self, i, matrix, bias, factor) -> None:
        self.register_parameter(f"_matrix{i:d}", matrix)
        self.register_parameter(f"_bias{i:d}", bias)
        if factor is not None:
            self.register_parameter(f"_factor{i:d}", factor)

    def layers(self) -> list[tuple[Tensor, Tensor, Tensor | None]]:
        n = len(self.filters) + 1
        return [(getattr(self, f"_matrix{i}"), getattr(self, f"_bias{i}"),
                 getattr(self, f"_factor{i}") if i < n - 1 else None) for i in range(n)]


class GaussianConditional(_CoderBuffers):
    """CompressAI's ``GaussianConditional`` as its state dict has it: the scale floor
    (``lower_bound_scale``, ``scale_bound``) and the (empty) scale table. lrcodec's y path
    (``lrcodec.format.likelihoods``, ``lrcodec.format.exact``) has its own floor and table."""

    def __init__(self, scale_table=None, scale_bound: float = 0.11, tail_mass: float = 1e-9):
        super().__init__()
        self.tail_mass = float(tail_mass)
        self.lower_bound_scale = LowerBound(scale_bound)
        self.register_buffer("scale_table", torch.Tensor(tuple(float(s) for s in scale_table)) if scale_table
                             else torch.Tensor())
        self.register_buffer("scale_bound", torch.Tensor([float(scale_bound)]))


class CompressionNet(nn.Module):
    """The base of the families' networks (CompressAI's ``CompressionModel``, float part)."""

    def entropy_bottlenecks(self) -> list[_FactorizedDensity]:
        return [m for m in self.modules() if isinstance(m, _FactorizedDensity)]

    def aux_loss(self) -> Tensor:
        """The summed quantile loss of every entropy bottleneck, the variable-rate models' too
        (CompressAI's ``aux_loss`` leaves out its ``EntropyBottleneckVbr``)."""
        return sum(m.loss() for m in self.entropy_bottlenecks())
