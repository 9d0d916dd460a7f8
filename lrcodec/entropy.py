"""Entropy coding of the integer symbols of z and y with constriction's range coder.

* y: symbols k = round(y - mu) coded with a discretized Gaussian N(-u, sigma'^2) per symbol
  (u = 0 without universal quantization), sigma' = the *table* value at or above sigma.
* z: symbols k = round(z - m - u) coded with each channel's table of the factorized prior,
  p_c(k) = c_c(m_c + k + u + 1/2) - c_c(m_c + k + u - 1/2), over the range [zmin, zmax]
  that the file states (so any symbol the encoder meets fits, however unlikely).

Why decoding cannot drift on float noise: the coder never sees a float computed by a
network directly. sigma is replaced by an index into a fixed table (``SIGMA_TABLE``, built
by repeated IEEE multiplication, hence identical everywhere) and the z probabilities are
rounded to multiples of 2^-24 before constriction sees them. Both are hashed into the file
(``tables_crc``); a decoder whose networks produce a different index or table stops with a
clear error instead of decoding garbage.
"""

from __future__ import annotations

import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .errors import LrcodecError

SIGMA_LEVELS = 256  # 64 levels (CompressAI) cost +0.2% over exact sigma; 256 cost ~0.01%
SIGMA_MAX = 256.0
PROB_SCALE = float(1 << 24)
SYMBOL_LIMIT = 32767  # symbol ranges are stored as int16
Z_ALPHABET_LIMIT = 4096  # z tables are (channels x dither levels x alphabet): bound their memory


def sigma_table(sigma_min: float = 0.11, levels: int = SIGMA_LEVELS, sigma_max: float = SIGMA_MAX) -> np.ndarray:
    """Geometric table sigma_min * r^i, r = (sigma_max/sigma_min)^(1/(levels-1)), by repeated
    multiplication in float64 (correctly rounded, so the same on every IEEE machine)."""
    ratio = float(np.float64(sigma_max / sigma_min) ** (1.0 / (levels - 1)))
    out = np.empty(levels, dtype=np.float64)
    s = float(sigma_min)
    for i in range(levels):
        out[i] = s
        s *= ratio
    return out


def sigma_indices(sigma: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of the smallest table value >= sigma (CompressAI rounds scales up the same way)."""
    if not np.all(np.isfinite(sigma)):
        raise LrcodecError("the model produced non-finite scales; cannot code this image")
    return np.clip(np.searchsorted(table, sigma, side="left"), 0, len(table) - 1).astype(np.int32)


def _crc(*arrays: np.ndarray) -> int:
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).tobytes(), crc)
    return crc


def check_symbols(symbols: np.ndarray, what: str, alphabet_limit: int = 2 * SYMBOL_LIMIT + 1) -> None:
    """Refuse latents the format cannot hold (absurd values from a broken model or input)."""
    if symbols.size and (symbols.min() < -SYMBOL_LIMIT or symbols.max() > SYMBOL_LIMIT
                         or int(symbols.max()) - int(symbols.min()) + 1 > alphabet_limit):
        raise LrcodecError(f"{what} latents exceed the format's range; the image cannot be coded")


def symbol_range(symbols: np.ndarray) -> tuple[int, int]:
    """[lo, hi] covering all symbols and always containing -1..1 (a non-degenerate alphabet)."""
    if symbols.size == 0:
        return -1, 1
    return min(int(symbols.min()), -1), max(int(symbols.max()), 1)


def gaussian_probabilities(symbols: np.ndarray, stds: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Exact discretized Gaussian mass of each symbol (for the ideal information content)."""
    from scipy.special import ndtr

    v = np.abs(symbols - means)
    return np.maximum(ndtr((0.5 - v) / stds) - ndtr((-0.5 - v) / stds), 1e-300)


# --------------------------------------------------------------------------- y


@dataclass
class CodedTensor:
    payload: bytes
    lo: int
    hi: int
    crc: int  # hash of the probability tables used, checked by the decoder
    bits_ideal: float  # -sum log2 P of the coded symbols under the coded model


def encode_gaussian(symbols: np.ndarray, stds: np.ndarray, means: np.ndarray) -> CodedTensor:
    """Range-code int symbols with per-symbol discretized Gaussians N(means, stds^2)."""
    import constriction

    symbols = symbols.astype(np.int32).ravel()
    check_symbols(symbols, "y")
    lo, hi = symbol_range(symbols)
    stds, means = stds.astype(np.float64).ravel(), means.astype(np.float64).ravel()
    enc = constriction.stream.queue.RangeEncoder()
    if symbols.size:
        family = constriction.stream.model.QuantizedGaussian(lo, hi)
        enc.encode(symbols, family, means, stds)
    bits = float(-np.log2(gaussian_probabilities(symbols, stds, means)).sum()) if symbols.size else 0.0
    return CodedTensor(enc.get_compressed().tobytes(), lo, hi, 0, bits)


def decode_gaussian(payload: bytes, lo: int, hi: int, stds: np.ndarray, means: np.ndarray) -> np.ndarray:
    import constriction

    stds, means = stds.astype(np.float64).ravel(), means.astype(np.float64).ravel()
    if stds.size == 0:
        return np.zeros(0, dtype=np.int32)
    dec = constriction.stream.queue.RangeDecoder(_words(payload))
    family = constriction.stream.model.QuantizedGaussian(lo, hi)
    with _invalid_payload_is_an_error("y"):
        return np.asarray(dec.decode(family, means, stds), dtype=np.int32)


@contextmanager
def _invalid_payload_is_an_error(name: str):
    """constriction's range decoder raises AssertionError on data no encoder could have written
    (reachable when a forged file carries a valid checksum): report it as a corrupted file."""
    try:
        yield
    except (AssertionError, ValueError, RuntimeError) as e:
        raise LrcodecError(f"corrupted bitstream: invalid {name} payload ({e})") from None


def _words(payload: bytes) -> np.ndarray:
    if len(payload) % 4:
        raise LrcodecError("corrupted bitstream: payload length is not a multiple of 4")
    return np.frombuffer(payload, dtype=np.uint32).copy()


# --------------------------------------------------------------------------- z


def factorized_tables(entropy_bottleneck, lo: int, hi: int, offsets: np.ndarray) -> np.ndarray:
    """Probability tables, shape (C, L, hi-lo+1), for each channel c and dither level l:
    p(k) = c_c(m_c + k + o_l + 1/2) - c_c(m_c + k + o_l - 1/2), rounded to 2^-24 steps."""
    import torch

    from .quantization import factorized_interval_likelihood, z_medians

    C = entropy_bottleneck.channels
    ks = torch.arange(lo, hi + 1, dtype=torch.float32)
    off = torch.as_tensor(offsets, dtype=torch.float32)
    with torch.no_grad():
        m = z_medians(entropy_bottleneck).reshape(C, 1, 1)
        centre = (m + off.reshape(1, -1, 1) + ks.reshape(1, 1, -1))  # (C, L, K)
        centre = centre.reshape(1, C, -1, 1)
        p = factorized_interval_likelihood(entropy_bottleneck, centre - 0.5, centre + 0.5)
    p = p.reshape(C, len(offsets), -1).double().numpy()
    return np.maximum(np.round(p * PROB_SCALE), 1.0) / PROB_SCALE


def encode_factorized(symbols: np.ndarray, tables: np.ndarray, lo: int, levels: np.ndarray | None = None) -> CodedTensor:
    """Code z symbols of shape (C, n) channel by channel (and dither level by level)."""
    import constriction

    C, n = symbols.shape
    enc = constriction.stream.queue.RangeEncoder()
    bits = 0.0
    for c in range(C):
        for lvl in range(tables.shape[1]):
            sel = symbols[c] if levels is None else symbols[c][levels[c] == lvl]
            if sel.size == 0:
                continue
            table = tables[c, lvl]
            enc.encode((sel - lo).astype(np.int32), constriction.stream.model.Categorical(table, perfect=False))
            bits += float(-np.log2(table[sel - lo] / table.sum()).sum())
    return CodedTensor(enc.get_compressed().tobytes(), lo, lo + tables.shape[2] - 1, _crc(tables), bits)


def decode_factorized(payload: bytes, tables: np.ndarray, lo: int, n: int, levels: np.ndarray | None = None) -> np.ndarray:
    import constriction

    C = tables.shape[0]
    out = np.zeros((C, n), dtype=np.int32)
    dec = constriction.stream.queue.RangeDecoder(_words(payload))
    for c in range(C):
        for lvl in range(tables.shape[1]):
            mask = np.ones(n, dtype=bool) if levels is None else levels[c] == lvl
            count = int(mask.sum())
            if count == 0:
                continue
            model = constriction.stream.model.Categorical(tables[c, lvl], perfect=False)
            with _invalid_payload_is_an_error("z"):
                out[c, mask] = np.asarray(dec.decode(model, count), dtype=np.int32) + lo
    return out


def tables_crc(sigma_idx: np.ndarray, z_tables: np.ndarray) -> int:
    return _crc(sigma_idx.astype(np.int32), z_tables)
