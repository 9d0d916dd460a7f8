"""The coder's parts that families compose, as CompressAI's ``latent_codecs`` compose a codec:
y's coding units and their tables, the rate a model codes at, and the exact entropy model of
a Gaussian y under a hyperprior (z under the factorized prior, h_s as an integer network).
Everything here is built from ``lrcodec.format.exact``'s arithmetic, so it decides the same symbols
on every machine.

A family's exact model is an ``ExactEntropyModel`` whose ``y_units`` and ``unit_params`` say
in which order y is coded and with which (sigma, mu): the hyperprior's here (``ExactHyperprior``,
y as one unit), a context's in its family's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..format.exact import ACT_BITS, FactorizedPrior, IntegerNetwork, gaussian_pmf, quantize_pmf
from ..format.tiling import tiled


@dataclass
class YUnit:
    """One part of y coded after the parts before it: channels [lo, hi), and where a context
    splits the positions (the checkerboard's passes, an autoregressive wavefront), the
    positions of this unit (``mask``, (1, 1, h, w) bool). Its elements are taken channel by
    channel, each channel's positions in raster order."""

    lo: int
    hi: int
    slice_index: int = 0
    second_pass: bool = False
    mask: np.ndarray | None = None

    @cached_property
    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of the unit's positions, raster order."""
        return np.nonzero(self.mask[0, 0])

    def take(self, a: np.ndarray) -> np.ndarray:
        """This unit's elements of a (1, M, h, w) array, flat."""
        return self.pick(a[:, self.lo : self.hi])

    def pick(self, part: np.ndarray) -> np.ndarray:
        """This unit's elements of an array of its channels only, (1, hi - lo, h, w)."""
        if self.mask is None:
            return part.ravel()
        rows, cols = self.positions
        return part[0][:, rows, cols].ravel()

    def put(self, a: np.ndarray, values: np.ndarray) -> None:
        part = a[:, self.lo : self.hi]
        if self.mask is None:
            part[...] = values.reshape(part.shape)
        else:
            rows, cols = self.positions
            part[0][:, rows, cols] = values.reshape(part.shape[1], -1)


class YTables:
    """y's tables of one file (symbols lo..hi), each (sigma index, offset) row computed once:
    the coding units of a context model share them (141 units of a Kodak image for mbt2018).
    A row depends on its own key alone, so a cached row is the row computed afresh."""

    def __init__(self, exact, lo: int, hi: int):
        self.exact, self.lo, self.hi, self.rows = exact, lo, hi, {}

    def __call__(self, index: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``exact.y_tables(index, offsets, lo, hi)``."""
        keys = list(zip(index.tolist(), offsets.tolist()))
        new = {}  # each key not yet cached -> where it first appears
        for i, key in enumerate(keys):
            if key not in self.rows:
                new.setdefault(key, i)
        if new:
            at = list(new.values())
            self.rows.update(zip(new, self.exact.y_tables(index[at], offsets[at], self.lo, self.hi)))
        if not keys:
            return np.zeros((0, self.hi - self.lo + 1))
        return np.stack([self.rows[key] for key in keys])


@dataclass(frozen=True, eq=False)
class Rate:
    """The steps a model quantizes in: z symbols count steps of ``z_step``, y symbols steps of
    1 / ``y_gain`` (sigma is scaled by the gain before its table index is taken), and a decoded
    non-zero y symbol k is restored to k + sign(k) o_i, o_i = ``y_offsets[sigma index]``
    (multiples of 2**-ACT_BITS). The default is a fixed-rate model's: unit steps, no offsets;
    a variable-rate family gives each of its levels its own (``lrcodec.families.vbr``)."""

    z_step: float = 1.0
    y_gain: float = 1.0
    y_offsets: np.ndarray | None = None


def hyper_parts(hyper, prefix: str = "") -> tuple[FactorizedPrior, IntegerNetwork]:
    """(z's prior, the integer h_s) of the module holding a network's entropy_bottleneck and h_s
    (``prefix``: that module's name in the network's state dict)."""
    return FactorizedPrior.of(hyper.entropy_bottleneck), IntegerNetwork.of(hyper.h_s, f"{prefix}h_s")


class ExactEntropyModel:
    """Everything a file's symbols depend on for a Gaussian y under a hyperprior: z tables,
    the integer h_s, y tables from (sigma index, mu). Built once per model from its float
    weights (exact conversions only). y's coding units and their (sigma, mu) are the family's
    (``y_units``, ``unit_params``)."""

    needs_y_hat = False  # whether unit_params reads the y_hat decoded so far
    params_at_positions = False  # whether unit_params gives (1, k, P) at the unit's positions only

    def __init__(self, parts: tuple[FactorizedPrior, IntegerNetwork], sigma_table: np.ndarray, rate: Rate = Rate()):
        """``parts``: z's prior and the integer h_s (``hyper_parts`` of a network's modules)."""
        self.prior, self.h_s = parts
        self.sigma_table = sigma_table
        self.rate = rate

    @property
    def z_step(self) -> float:
        return self.rate.z_step

    @property
    def y_gain(self) -> float:
        return self.rate.y_gain

    def y_units(self, shape: tuple) -> list[YUnit]:
        """y's coding units in coding order: here all of y at once."""
        return [YUnit(0, shape[1])]

    def unit_params(self, unit: YUnit, hyper, y_hat_fixed=None) -> tuple[np.ndarray, np.ndarray]:
        """(sigma, mu) of a unit's channels, each (1, k, h, w) (or (1, k, P) at the unit's
        positions, ``params_at_positions``), from h_s's output ``hyper`` and, for a family with
        a context, the fixed-point y_hat decoded so far (float64 integers, ACT_BITS fraction
        bits)."""
        raise NotImplementedError

    def unit_keys(self, unit: YUnit, shape: tuple, hyper, y_hat_fixed=None) -> tuple[np.ndarray, np.ndarray]:
        """(table index, mu) of each of a unit's elements, flat in the unit's order, for a y
        of ``shape``: what its symbols are coded with (``y_tables``) and centred on."""
        sigma, mu = self.unit_params(unit, hyper, y_hat_fixed)
        if self.params_at_positions:  # already the unit's elements, channel by channel
            return self.sigma_index(sigma).ravel(), mu.ravel()
        return unit.pick(self.sigma_index(sigma)), unit.pick(mu)

    @staticmethod
    def fixed(*arrays: np.ndarray) -> np.ndarray:
        """Arrays of multiples of 2**-ACT_BITS, concatenated along channels, as fixed-point
        integers (exact: a power-of-two scaling)."""
        return np.concatenate(arrays, 1) * 2.0**ACT_BITS

    @property
    def medians(self) -> np.ndarray:
        return self.prior.medians

    def z_tables(self, channels: np.ndarray, offsets: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return quantize_pmf(self.prior.pmf(channels, offsets, lo, hi, self.z_step))

    def z_hat(self, z_symbols: np.ndarray, z_offsets: np.ndarray) -> np.ndarray:
        """The decoded z (float64): k s + m + u s, s the step (in this order, so that a unit
        step gives the same floats as k + m + u)."""
        return z_symbols.astype(np.float64) * self.z_step + self.medians.reshape(1, -1, 1, 1) + z_offsets * self.z_step

    def restore(self, y_symbols: np.ndarray, sigma_index: np.ndarray) -> np.ndarray:
        """A decoded y symbol in latent units, before mu and the dither: (k + sign(k) o_i) / gain
        (float64; k itself for a unit step without offsets)."""
        k = np.asarray(y_symbols, dtype=np.float64)
        if self.rate.y_offsets is not None:
            k = k + np.sign(k) * self.rate.y_offsets[sigma_index]
        return k / self.y_gain

    def y_tables(self, index: np.ndarray, offsets: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return quantize_pmf(gaussian_pmf(self.sigma_table[index], offsets, lo, hi))

    def hyper(self, z_symbols: np.ndarray, z_offsets: np.ndarray, tile: int = 16) -> np.ndarray:
        """h_s's output in real units (float64 multiples of 2**-ACT_BITS), (1, C, 4h, 4w), from
        the z symbols and their dither offsets, shape (1, N, h, w). Tiled with a halo of h_s's
        receptive field (exact: integers do not care)."""
        z_fixed = np.rint(self.z_hat(z_symbols, z_offsets) * 2.0**ACT_BITS)
        return tiled(self.h_s, z_fixed, up=4, tile=tile, halo=self.h_s.radius) * 2.0**-ACT_BITS

    def sigma_index(self, sigma: np.ndarray) -> np.ndarray:
        """The number of table values below each sigma (times the gain), clipped to the table (int32)."""
        idx = np.searchsorted(self.sigma_table, sigma.ravel() * self.y_gain, side="left")
        return np.clip(idx, 0, len(self.sigma_table) - 1).astype(np.int32).reshape(sigma.shape)


class ExactHyperprior(ExactEntropyModel):
    """y as one unit, each element's (sigma, mu) read off h_s's output: sigma then mu for the
    mean-scale model, sigma alone (mu = 0) for the scale model."""

    def __init__(self, parts: tuple, sigma_table: np.ndarray, mean_scale: bool = True, rate: Rate = Rate()):
        super().__init__(parts, sigma_table, rate)
        self.mean_scale = mean_scale

    def unit_params(self, unit: YUnit, hyper: np.ndarray, y_hat_fixed=None) -> tuple[np.ndarray, np.ndarray]:
        if not self.mean_scale:
            return hyper[:, unit.lo : unit.hi], np.zeros_like(hyper[:, unit.lo : unit.hi])
        M = hyper.shape[1] // 2
        return hyper[:, unit.lo : unit.hi], hyper[:, M + unit.lo : M + unit.hi]
