"""Range coding of integer symbols with constriction, given integer frequency tables.

Symbols are coded in groups that share a table (``lrcodec.format.exact`` computes the tables): all
symbols of the smallest group key first, each group in C order. For z a group is a (channel,
dither level), for y a (sigma index, dither level). The decoder re-encodes what it decoded
and requires the very same words, which proves that the range decoder ended exactly where
each payload ends: trailing data, a short payload or other tables are errors, never an image.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import LrcodecError
from ..settings import SIGMA_MIN  # the coder's sigma floor, re-exported

SIGMA_LEVELS = 256  # 64 levels (CompressAI) cost +0.2% over exact sigma; 256 cost ~0.01%
SIGMA_MAX = 256.0
SYMBOL_LIMIT = 32767  # symbol ranges are stored as int16
ALPHABET_LIMIT = 4096  # tables are (groups x alphabet) for z and y: this bounds their memory


def sigma_table(sigma_min: float = SIGMA_MIN, levels: int = SIGMA_LEVELS, sigma_max: float = SIGMA_MAX) -> np.ndarray:
    """Geometric table sigma_min * r^i, r = (sigma_max/sigma_min)^(1/(levels-1)), by repeated
    multiplication in float64 (correctly rounded, so the same on every IEEE machine)."""
    ratio = float(np.float64(sigma_max / sigma_min) ** (1.0 / (levels - 1)))
    out = np.empty(levels, dtype=np.float64)
    s = float(sigma_min)
    for i in range(levels):
        out[i] = s
        s *= ratio
    return out


def crc(*arrays: np.ndarray) -> int:
    value = 0
    for a in arrays:
        value = zlib.crc32(np.ascontiguousarray(a).tobytes(), value)
    return value


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


@dataclass
class Groups:
    """The coding order of a tensor's symbols: ``order[i]`` is the flat index coded i-th."""

    order: np.ndarray
    keys: np.ndarray  # the group keys present, ascending
    counts: np.ndarray  # symbols per present key

    @classmethod
    def of(cls, keys: np.ndarray) -> "Groups":
        keys = keys.ravel()
        # A stable sort's order is unique; numpy radix-sorts 16-bit keys, 10x faster.
        small = keys.size == 0 or keys.max() < 2**15
        order = np.argsort(keys.astype(np.int16) if small else keys, kind="stable")
        counts = np.bincount(keys)
        present = np.flatnonzero(counts)
        return cls(order, present, counts[present])


CODER_PRECISION = 24  # constriction's default range coder: probabilities out of 2**24


@dataclass
class Coded:
    payload: bytes
    bits_ideal: float  # -sum log2 P of the coded symbols under the coded tables
    bits_coder: float  # the same under the range coder's own weights (``coder_weights``)


def coder_weights(tables: np.ndarray) -> np.ndarray:
    """The integer weights out of 2**CODER_PRECISION that the range coder gives each row of
    ``tables`` (groups, K): constriction's fast quantization (``perfect=False``), where a
    symbol's weight is 1 plus the difference of its floored cumulative shares of the rest. It
    favours rare symbols over lrcodec's tables, so a file full of them codes below its ideal
    under the tables, never below this."""
    K = tables.shape[1]
    scale = (2.0**CODER_PRECISION - K) / tables.sum(axis=1, keepdims=True)
    before = np.cumsum(tables, axis=1) - tables  # integers below 2**53: exact in float64
    left = np.floor(before * scale) + np.arange(K)
    return np.diff(left, axis=1, append=2.0**CODER_PRECISION)


def _models(tables: np.ndarray) -> list:
    import constriction

    return [constriction.stream.model.Categorical(row, perfect=False) for row in tables]


def _encode_runs(runs: list[np.ndarray], models: list) -> np.ndarray:
    import constriction

    enc = constriction.stream.queue.RangeEncoder()
    for run, model in zip(runs, models):
        enc.encode(run, model)
    return enc.get_compressed()


class PayloadEncoder:
    """One payload coded in parts (a family's y units), each part with its groups and tables."""

    def __init__(self):
        self.runs: list[np.ndarray] = []
        self.models: list = []
        self.bits_ideal = 0.0
        self.bits_coder = 0.0

    def add(self, symbols: np.ndarray, groups: Groups, tables: np.ndarray, lo: int) -> None:
        """Code symbols (flat, values in lo..lo+K-1) with ``tables[g]``, shape (groups, K)."""
        stream = (symbols.ravel()[groups.order] - lo).astype(np.int32)
        group = np.repeat(np.arange(len(groups.counts)), groups.counts)  # each coded symbol's table
        self.bits_ideal -= float(np.log2(tables[group, stream] / tables.sum(axis=1)[group]).sum())
        self.bits_coder -= float(np.log2(coder_weights(tables)[group, stream] / 2.0**CODER_PRECISION).sum())
        self.runs += np.split(stream, np.cumsum(groups.counts)[:-1])
        self.models += _models(tables)

    def finish(self) -> Coded:
        return Coded(_encode_runs(self.runs, self.models).astype("<u4").tobytes(), self.bits_ideal, self.bits_coder)


class PayloadDecoder:
    """Decodes a payload part by part; ``finish`` re-encodes what was decoded and requires the
    very same words (the module docstring)."""

    def __init__(self, payload: bytes, name: str):
        import constriction

        if len(payload) % 4:
            raise LrcodecError(f"corrupted lrcodec file ({name} payload length is not a multiple of 4)")
        self.words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        self.decoder = constriction.stream.queue.RangeDecoder(self.words)
        self.name = name
        self.runs: list[np.ndarray] = []
        self.models: list = []

    def take(self, groups: Groups, tables: np.ndarray, lo: int) -> np.ndarray:
        """The next part's flat int32 symbols, in the order ``PayloadEncoder.add`` got them."""
        runs = []
        try:
            models = _models(tables)
            for count, model in zip(groups.counts, models):
                runs.append(np.asarray(self.decoder.decode(model, int(count)), dtype=np.int32))
        except (AssertionError, ValueError, RuntimeError):
            raise LrcodecError(f"invalid lrcodec file (its {self.name} payload is not a range-coder stream "
                               "this model wrote)") from None
        self.runs += runs
        self.models += models
        out = np.empty(int(groups.counts.sum()), dtype=np.int32)
        out[groups.order] = np.concatenate(runs) + lo if runs else np.zeros(0, np.int32)
        return out

    def finish(self) -> None:
        if not np.array_equal(_encode_runs(self.runs, self.models), self.words):
            raise LrcodecError(f"invalid lrcodec file (its {self.name} payload does not end where its symbols end)")


def encode(symbols: np.ndarray, groups: Groups, tables: np.ndarray, lo: int) -> Coded:
    """Code symbols (any shape, values in lo..lo+K-1) with ``tables[g]``, shape (groups, K)."""
    encoder = PayloadEncoder()
    encoder.add(symbols, groups, tables, lo)
    return encoder.finish()


def decode(payload: bytes, groups: Groups, tables: np.ndarray, lo: int, name: str) -> np.ndarray:
    """The flat int32 symbols that ``encode`` coded into ``payload`` (verified by re-encoding)."""
    decoder = PayloadDecoder(payload, name)
    out = decoder.take(groups, tables, lo)
    decoder.finish()
    return out
