"""The overfitted family's file half, in numpy only: its profiles, the exact autoregressive
entropy model (ARM) of its latents, the coding of its latents and decoder parameters, and the
torch-free decoder (docs/overfit.md).

An overfitted file carries no model id to look up: it carries the decoder. Latents live on
``levels`` grids, level i at 1/2**i of the padded image's size, each coded symbol by symbol
under a discretized Laplace whose centre and scale the ARM computes from causal neighbours on
the same grid. The ARM runs in fixed point (``ARM_BITS`` fraction bits, integer weights), its
sums held in float64 below 2**53, so that every symbol's probability is the same integer table
on every machine (the argument of ``lrcodec.format.exact``). The decoder decodes a level's
anti-diagonal wavefronts (``x + slope * y`` constant) at once: every causal neighbour of a
wavefront's latents lies on an earlier one. The synthesis (fixed bilinear upsampling, two
1x1 layers, 3x3 residual layers) is float, like the other families' g_s: its pixels may
differ by a level between machines, never its symbols.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import LrcodecError
from . import exact

ARM_BITS = 8  # fraction bits of the ARM's activations (its input latents are integers)
ARM_INPUT_LIMIT = 2**12  # context latents saturate here before the ARM sees them
ARM_ACT_LIMIT = 2.0 ** (12 + ARM_BITS)  # activations saturate at +-2**12 real units
PARAM_LIMIT = 2**15 - 1  # quantized decoder parameters are int16
MU_BITS = 3  # the Laplace centre is kept to 1/8 of a level
LOG_SCALE_MIN, LOG_SCALE_STEP, SCALES = -1178, 26, 96  # log b in 1/256: b = e**-4.6 .. e**5.15 in 96 steps
LOG_SCALE_RANGE = (LOG_SCALE_MIN / 2.0**ARM_BITS, (LOG_SCALE_MIN + LOG_SCALE_STEP * SCALES) / 2.0**ARM_BITS)  # real units
EXPONENTS = range(4, 15)  # a parameter step is 2**-e (the encoder chooses e by rate-distortion)
PARAM_SCALE_STEPS = 8  # a parameter tensor's Laplace scale is 2**(j / 8), j = 0..127
_LN2 = 0.6931471805599453  # the float64 nearest ln 2
RESIDUAL_ALPHABET = 512  # residuals k - k0 span at most this many values (each symbol costs O(alphabet) to code)


def _context(rows: dict[int, range]) -> tuple[tuple[int, int], ...]:
    return tuple((dy, dx) for dy, dxs in sorted(rows.items(), reverse=True) for dx in dxs)


CONTEXT_8 = _context({0: range(-2, 0), -1: range(-2, 3), -2: range(0, 1)})
CONTEXT_16 = _context({0: range(-3, 0), -1: range(-3, 4), -2: range(-2, 3), -3: range(0, 1)})


@dataclass(frozen=True)
class Profile:
    """One decoder size: named by its multiplications per pixel (``macs_per_pixel``)."""

    name: str
    id: str  # the file header's model id (hex): fixed once released, whatever else changes here
    levels: int
    context: tuple[tuple[int, int], ...]  # the ARM's causal neighbours (dy, dx), dy <= 0
    arm_hidden: int
    arm_layers: int  # hidden layers: the first maps the context, the others are residual
    synth_hidden: int
    synth_residual: int  # 3x3 residual layers on the three colour planes

    @property
    def stride(self) -> int:
        """The padded image's sides are multiples of this (the coarsest level's cell)."""
        return 2 ** (self.levels - 1)

    @property
    def slope(self) -> int:
        """Wavefronts are x + slope * y: the smallest slope after which every neighbour's is earlier."""
        return 1 + max(dx // -dy for dy, dx in self.context if dy < 0)

    @property
    def arm_shapes(self) -> list[tuple[int, int]]:
        c, h = len(self.context), self.arm_hidden
        return [(h, c)] + [(h, h)] * (self.arm_layers - 1) + [(2, h)]

    @property
    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """Every decoder parameter, in the order the file codes them."""
        out = []
        for i, (o, n) in enumerate(self.arm_shapes):
            out += [(f"arm.{i}.weight", (o, n)), (f"arm.{i}.bias", (o,))]
        out += [("synth.0.weight", (self.synth_hidden, self.levels)), ("synth.0.bias", (self.synth_hidden,)),
                ("synth.1.weight", (3, self.synth_hidden)), ("synth.1.bias", (3,))]
        for i in range(self.synth_residual):
            out += [(f"synth.res{i}.weight", (3, 3, 3, 3)), (f"synth.res{i}.bias", (3,))]
        return out

    @property
    def macs_per_pixel(self) -> float:
        """Multiplications per pixel of decoding: the ARM on every latent (4/3 of a latent a
        pixel on a full pyramid), the upsampling (2 per output sample and axis), the synthesis."""
        latents = sum(4.0**-i for i in range(self.levels))
        arm = sum(o * n for o, n in self.arm_shapes) * latents
        upsampling = sum(4 * (self.levels - i) * 4.0**-i for i in range(self.levels - 1))
        synth = self.synth_hidden * (self.levels + 3) + 81 * self.synth_residual
        return arm + upsampling + synth

    @property
    def model_id(self) -> bytes:
        return bytes.fromhex(self.id)


PROFILES = {p.name: p for p in (
    Profile("overfit-500", "54f2102137ac4f01", 7, CONTEXT_8, 8, 2, 16, 1),
    Profile("overfit-2000", "f75c585864226f02", 7, CONTEXT_16, 24, 2, 40, 2),
)}
DEFAULT_PROFILE = "overfit-2000"


def profile(name: str) -> Profile:
    if name == "overfit":
        name = DEFAULT_PROFILE
    if name not in PROFILES:
        raise LrcodecError(f"unknown overfitted profile {name!r} (choose from overfit, {', '.join(PROFILES)})")
    return PROFILES[name]


def profile_of_id(model_id: bytes) -> Profile | None:
    return next((p for p in PROFILES.values() if p.model_id == model_id), None)


def is_overfit(name: str | None) -> bool:
    """Whether ``--model`` names this family: "overfit" or "overfit-..." that is not a path
    (a checkpoint file may start with "overfit-" too)."""
    return name is not None and (name == "overfit" or name.startswith("overfit-") and not any(c in name for c in "/\\."))


def level_shapes(profile: Profile, height: int, width: int) -> list[tuple[int, int]]:
    """Each level's grid for an image of this size (padded to the profile's stride)."""
    s = profile.stride
    h, w = -(-height // s) * s, -(-width // s) * s
    return [(h >> i, w >> i) for i in range(profile.levels)]


def checked_shapes(profile: Profile, height: int, width: int, max_pixels: int) -> list[tuple[int, int]]:
    """``level_shapes``, refused where the padding makes the grids more than twice the pixel
    limit (a strip a pixel high pads to 64): the decoder's memory and steps follow the grids."""
    shapes = level_shapes(profile, height, width)
    if shapes[0][0] * shapes[0][1] > 2 * max_pixels:
        raise LrcodecError(f"a {width}x{height} image pads to {shapes[0][1]}x{shapes[0][0]} latents for "
                           f"{profile.name}, more than twice the limit of {max_pixels:,} pixels")
    return shapes


# ---------------------------------------------------------------- the exact ARM


@dataclass
class ExactArm:
    """The ARM with integer weights (step 2**-exponent) as float64 matrices, evaluated in
    fixed point: every product and partial sum an integer below 2**53 in magnitude."""

    weights: list[np.ndarray]  # (out, in) integers
    biases: list[np.ndarray]  # (out,) integers, in the weights' step
    exponent: int

    def __post_init__(self) -> None:
        # The steps folded into the matrices: scaling by a power of two is exact, so every
        # product and partial sum is the integer one times 2**-exponent, exact in any order.
        scale = 2.0**-self.exponent
        self._layers = [((w * (scale * 2.0**ARM_BITS if i == 0 else scale)).T.copy(), b * (scale * 2.0**ARM_BITS))
                        for i, (w, b) in enumerate(zip(self.weights, self.biases))]

    def __call__(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, log scale), each in 1/2**ARM_BITS, of integer contexts (n, C)."""
        h = np.minimum(np.maximum(context, -ARM_INPUT_LIMIT), ARM_INPUT_LIMIT).astype(np.float64)
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            acc = h @ w  # |sum| <= 24 * 2**20 * 2**15 + 2**23 < 2**53 steps
            acc += b
            out = np.floor(acc, out=acc)
            if i == last:
                _saturate(out)
                return out[:, 0], out[:, 1]
            np.minimum(out, ARM_ACT_LIMIT, out=out)
            np.maximum(out, 0.0, out=out)  # ReLU; the lower limit is below 0
            if i > 0:
                out += h
                _saturate(out)
            h = out
        raise AssertionError("an ARM has an output layer")


def _saturate(x: np.ndarray) -> None:
    """x clipped to the activations' limits in place (two ufuncs: np.clip's wrapper costs more
    than the work on a wavefront)."""
    np.minimum(x, ARM_ACT_LIMIT, out=x)
    np.maximum(x, -ARM_ACT_LIMIT, out=x)


def keys(mu: np.ndarray, log_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k0, table index) of each latent: the residual k - k0 is coded with table index
    f * SCALES + j, f the centre's eighth above k0, j the scale's level."""
    m = np.floor(mu / 2.0 ** (ARM_BITS - MU_BITS))
    k0 = np.floor(m / 2.0**MU_BITS)
    f = m - k0 * 2.0**MU_BITS
    j = np.clip(np.floor((log_scale - LOG_SCALE_MIN) / LOG_SCALE_STEP), 0, SCALES - 1)
    return k0.astype(np.int64), (f * SCALES + j).astype(np.int64)


def laplace_pmf(centres: np.ndarray, scales: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """P(k) for k in lo..hi under Laplace(centre, scale) discretized to unit bins, the tails
    folded into the end symbols; exact.exp only, so the same on every machine."""
    k = np.arange(lo, hi + 1, dtype=np.float64)[None, :]
    c, b = np.asarray(centres, np.float64)[:, None], np.asarray(scales, np.float64)[:, None]

    def cdf(x):  # each branch's exp argument is <= 0
        return np.where(x < 0, 0.5 * exact.exp(np.minimum(x, 0.0) / b), 1.0 - 0.5 * exact.exp(-np.maximum(x, 0.0) / b))

    upper = np.where(k == hi, 1.0, cdf(k + 0.5 - c))
    lower = np.where(k == lo, 0.0, cdf(k - 0.5 - c))
    below = (k + 0.5 - c) <= 0  # below the centre: the difference of the small left-tail values
    return np.where(below, upper - lower, (1.0 - lower) - (1.0 - upper))


def latent_tables(lo: int, hi: int) -> np.ndarray:
    """Integer frequencies (float64) of residuals lo..hi for every table index."""
    f, j = np.divmod(np.arange(2**MU_BITS * SCALES), SCALES)
    centres = (f + 0.5) / 2.0**MU_BITS
    scales = exact.exp((LOG_SCALE_MIN + LOG_SCALE_STEP * (j + 0.5)) / 2.0**ARM_BITS)
    return exact.quantize_pmf(laplace_pmf(centres, scales, lo, hi))


def context_pad(context) -> tuple[int, int]:
    """(columns each side, rows above) that a grid is zero-padded with for its contexts."""
    return max(abs(dx) for _, dx in context), max(-dy for dy, _ in context)


def contexts(grid: np.ndarray, context) -> np.ndarray:
    """(h*w, C) causal neighbours of every latent of a grid (zero outside it)."""
    h, w = grid.shape
    pad = context_pad(context)
    padded = np.zeros((h + pad[1], w + 2 * pad[0]), grid.dtype)
    padded[pad[1]:, pad[0]:pad[0] + w] = grid
    return np.stack([padded[pad[1] + dy: pad[1] + dy + h, pad[0] + dx: pad[0] + dx + w].ravel()
                     for dy, dx in context], axis=1)


def wavefronts(h: int, w: int, slope: int):
    """(rows, columns) of a grid's latents, wavefront by wavefront (each in row order), made one
    front at a time: front t holds the latents with x + slope * y = t."""
    for t in range((w - 1) + slope * (h - 1) + 1):
        y = np.arange(max(0, -(-(t - w + 1) // slope)), min(h - 1, t // slope) + 1)
        yield y, t - slope * y


def coding_order(shapes: list[tuple[int, int]], slope: int):
    """The coded levels' latents in coding order: for t = 0, 1, ..., front t of every level
    that has one, level by level; yields (level, rows, columns)."""
    fronts = {n: wavefronts(h, w, slope) for n, (h, w) in shapes}
    while fronts:
        for n in list(fronts):
            front = next(fronts[n], None)
            if front is None:
                del fronts[n]
            else:
                yield n, *front


# ---------------------------------------------------------------- decoder parameters


def param_scales() -> np.ndarray:
    """2**(j/8), j = 0..127, from exact.exp (numpy's power may differ in its last bit between machines)."""
    return exact.exp(np.arange(128) * (_LN2 / PARAM_SCALE_STEPS))


def param_table(scale_index: int, limit: int) -> np.ndarray:
    """Integer frequencies of a parameter's values -limit..limit."""
    return exact.quantize_pmf(laplace_pmf(np.zeros(1), param_scales()[[scale_index]], -limit, limit))[0]


def param_coding(values: np.ndarray) -> tuple[int, int, float]:
    """(scale index, limit, ideal bits) that code a tensor's integers in the fewest bits."""
    values = values.ravel().astype(np.int64)
    limit = max(int(np.abs(values).max()), 1)
    guess = int(np.clip(np.rint(PARAM_SCALE_STEPS * np.log2(max(np.abs(values).mean(), 1.0))), 0, 127))

    def bits(j: int) -> float:
        table = param_table(j, limit)
        return float(-np.log2(table[values + limit] / table.sum()).sum())

    best = min(range(max(guess - 4, 0), min(guess + 5, 128)), key=bits)
    return best, limit, bits(best)


# ---------------------------------------------------------------- the coded decoder and latents

_SIDE = struct.Struct("<BBB")  # nonzero-level mask, ARM exponent, synthesis exponent
_TENSOR = struct.Struct("<BH")  # scale index, limit


@dataclass
class Decoder:
    """What the file carries of the decoder: integer parameters and their steps."""

    profile: Profile
    params: dict[str, np.ndarray]  # name -> integers (int32), the profile's shapes
    arm_exponent: int
    synth_exponent: int

    def arm(self) -> ExactArm:
        n = self.profile.arm_layers + 1
        return ExactArm([self.params[f"arm.{i}.weight"].astype(np.float64) for i in range(n)],
                        [self.params[f"arm.{i}.bias"].astype(np.float64) for i in range(n)], self.arm_exponent)

    def synthesis(self) -> dict[str, np.ndarray]:
        """The synthesis's float32 parameters."""
        step = 2.0**-self.synth_exponent
        return {k[6:]: (v * step).astype(np.float32) for k, v in self.params.items() if k.startswith("synth.")}


def pack_decoder(decoder: Decoder, nonzero: int) -> tuple[bytes, float]:
    """(the parameter payload, its bits): side information, then the range-coded integers."""
    import constriction

    side = _SIDE.pack(nonzero, decoder.arm_exponent, decoder.synth_exponent)
    encoder = constriction.stream.queue.RangeEncoder()
    for name, _ in decoder.profile.tensors:
        values = decoder.params[name].ravel()
        j, limit, _ = param_coding(values)
        side += _TENSOR.pack(j, limit)
        encoder.encode((values + limit).astype(np.int32), constriction.stream.model.Categorical(
            param_table(j, limit), perfect=False))
    payload = side + encoder.get_compressed().astype("<u4").tobytes()
    return payload, 8.0 * len(payload)


def unpack_decoder(payload: bytes, profile: Profile) -> tuple[Decoder, int]:
    """(the decoder, the nonzero-level mask) of a parameter payload; damage is an LrcodecError."""
    import constriction

    bad = LrcodecError("invalid lrcodec file (its decoder parameters are damaged)")
    tensors = profile.tensors
    size = _SIDE.size + _TENSOR.size * len(tensors)
    if len(payload) < size or (len(payload) - size) % 4:
        raise bad
    nonzero, arm_exponent, synth_exponent = _SIDE.unpack_from(payload)
    if nonzero >> profile.levels or arm_exponent not in EXPONENTS or synth_exponent not in EXPONENTS:
        raise bad
    words = np.frombuffer(payload, "<u4", offset=size).astype(np.uint32)
    decoder, again = constriction.stream.queue.RangeDecoder(words), constriction.stream.queue.RangeEncoder()
    params = {}
    for i, (name, shape) in enumerate(tensors):
        j, limit = _TENSOR.unpack_from(payload, _SIDE.size + _TENSOR.size * i)
        if j >= 128 or not 1 <= limit <= PARAM_LIMIT:
            raise bad
        model = constriction.stream.model.Categorical(param_table(j, limit), perfect=False)
        try:
            values = np.asarray(decoder.decode(model, int(np.prod(shape))), np.int32)
        except (AssertionError, ValueError, RuntimeError):
            raise bad from None
        again.encode(values, model)
        params[name] = (values - limit).reshape(shape)
    if not np.array_equal(again.get_compressed(), words):  # the payload ends where its symbols end
        raise bad
    return Decoder(profile, params, arm_exponent, synth_exponent), nonzero


@dataclass
class CodedLatents:
    payload: bytes
    bits_ideal: float  # -sum log2 P under the tables
    bits_coder: float  # the same under the range coder's weights (``entropy.coder_weights``)
    lo: int
    hi: int


def residuals(decoder: Decoder, grids: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each level's (residual symbols, table index), flat, from its integer grid."""
    arm, out = decoder.arm(), []
    for grid in grids:
        mu, log_scale = arm(contexts(grid, decoder.profile.context))
        k0, index = keys(mu, log_scale)
        out.append((grid.ravel().astype(np.int64) - k0, index))
    return out


def latent_bits(decoder: Decoder, grids: list[np.ndarray]) -> float:
    """The ideal bits of the latents (levels with a nonzero latent) under the exact ARM."""
    coded = [(r, i) for (r, i), g in zip(residuals(decoder, grids), grids) if g.any()]
    if not coded:
        return 0.0
    lo, hi = _range(coded)
    if hi - lo + 1 > RESIDUAL_ALPHABET:
        return np.inf  # the format cannot code these latents
    tables = latent_tables(lo, hi)
    return sum(_bits_rows(tables, i, r - lo) for r, i in coded)


def _bits_rows(tables: np.ndarray, index: np.ndarray, stream: np.ndarray) -> float:
    return float(-np.log2(tables[index, stream] / tables.sum(axis=1)[index]).sum())


def _range(coded) -> tuple[int, int]:
    lo = min(int(r.min()) for r, _ in coded)
    hi = max(int(r.max()) for r, _ in coded)
    return min(lo, -1), max(hi, 1)


def encode_latents(decoder: Decoder, grids: list[np.ndarray]) -> tuple[CodedLatents, int]:
    """(the latents' payload, the nonzero-level mask): each nonzero level's residuals in
    wavefront order, one range-coded stream."""
    import constriction

    from .entropy import coder_weights

    coded = {n: (r, i) for n, ((r, i), g) in enumerate(zip(residuals(decoder, grids), grids)) if g.any()}
    nonzero = sum(1 << n for n in coded)
    if not coded:
        return CodedLatents(b"", 0.0, 0.0, -1, 1), 0
    lo, hi = _range(list(coded.values()))
    if hi - lo + 1 > RESIDUAL_ALPHABET:
        raise LrcodecError("the latents exceed the format's range; the image cannot be coded")
    tables = latent_tables(lo, hi)
    weights = coder_weights(tables)
    order = [(n, y * grids[n].shape[1] + x) for n, y, x in
             coding_order([(n, grids[n].shape) for n in coded], decoder.profile.slope)]
    stream = np.concatenate([coded[n][0][i] for n, i in order]) - lo
    rows = np.concatenate([coded[n][1][i] for n, i in order])
    encoder, model = constriction.stream.queue.RangeEncoder(), constriction.stream.model.Categorical(perfect=False)
    for start in range(0, len(stream), 65536):  # the rows' probabilities in bounded memory
        part = slice(start, start + 65536)
        encoder.encode(stream[part].astype(np.int32), model, tables[rows[part]])
    return CodedLatents(encoder.get_compressed().astype("<u4").tobytes(), _bits_rows(tables, rows, stream),
                        _bits_rows(weights, rows, stream), lo, hi), nonzero


def decode_latents(payload: bytes, decoder: Decoder, shapes: list[tuple[int, int]], nonzero: int,
                   lo: int, hi: int) -> list[np.ndarray]:
    """The integer grids of a latents payload, decoded in coding order (``coding_order``):
    each step one ARM evaluation and one range-decoder call for a front of every level."""
    import constriction

    bad = LrcodecError("invalid lrcodec file (its latents payload is not a range-coder stream this decoder wrote)")
    if len(payload) % 4:
        raise bad
    words = np.frombuffer(payload, "<u4").astype(np.uint32)
    coder, model = constriction.stream.queue.RangeDecoder(words), constriction.stream.model.Categorical(perfect=False)
    again = constriction.stream.queue.RangeEncoder()  # re-encodes each step: the payload must be these words
    arm, context = decoder.arm(), decoder.profile.context
    pad_x, pad_y = context_pad(context)
    coded = [(n, shape) for n, shape in enumerate(shapes) if nonzero >> n & 1]
    padded = [np.zeros((h + pad_y, w + 2 * pad_x), np.int32) for h, w in shapes]  # |k| < 2**13: k0 and the residual are bounded
    flat = [p.reshape(-1) for p in padded]
    offsets = {n: np.array([dy * (w + 2 * pad_x) + dx for dy, dx in context]) for n, (_, w) in coded}

    def decode_step(step: list[tuple[int, np.ndarray]]) -> None:
        """Decode one step's fronts (level, flat positions in its padded grid) and write them in."""
        k0, index = keys(*arm(np.concatenate([flat[n][at[:, None] + offsets[n]] for n, at in step])))
        rows = tables[index]
        try:
            symbols = np.asarray(coder.decode(model, rows), np.int32)
        except (AssertionError, ValueError, RuntimeError):
            raise bad from None
        again.encode(symbols, model, rows)
        if again.num_words() > len(words):  # the symbols so far need more than the payload: stop now
            raise bad
        values, start = symbols + (k0 + lo), 0
        for n, at in step:
            flat[n][at] = values[start:start + len(at)]
            start += len(at)

    if coded:
        tables = latent_tables(lo, hi)
        step: list = []
        for n, y, x in coding_order(coded, decoder.profile.slope):
            if step and n <= step[-1][0]:
                decode_step(step)
                step = []
            step.append((n, (y + pad_y) * (shapes[n][1] + 2 * pad_x) + x + pad_x))
        decode_step(step)
    if not np.array_equal(again.get_compressed(), words):
        raise bad
    return [p[pad_y:, pad_x:pad_x + w] for p, (_, w) in zip(padded, shapes)]


# ---------------------------------------------------------------- synthesis (float, numpy)


def upsample2(x: np.ndarray) -> np.ndarray:
    """Bilinear x2 (half-pixel centres, edges replicated) of (C, H, W): torch's
    ``interpolate(scale_factor=2, mode="bilinear", align_corners=False)``."""
    for axis in (1, 2):
        n = x.shape[axis]
        out = np.empty((*x.shape[:axis], 2 * n, *x.shape[axis + 1:]), x.dtype)
        o, v = np.moveaxis(out, axis, 0), np.moveaxis(x, axis, 0)
        even, odd = o[0::2], o[1::2]
        np.multiply(v, 0.75, out=even)
        np.multiply(v, 0.75, out=odd)
        even[1:] += 0.25 * v[:-1]  # the neighbour before, the edge replicated
        even[:1] += 0.25 * v[:1]
        odd[:-1] += 0.25 * v[1:]  # the neighbour after
        odd[-1:] += 0.25 * v[-1:]
        x = out
    return x


def upsampled(grids: list[np.ndarray]) -> np.ndarray:
    """(levels, H, W) float32: the coarsest level upsampled step by step, each finer level
    joining the stack at its resolution (channel order: coarsest first)."""
    stack = grids[-1][None].astype(np.float32)
    for grid in reversed(grids[:-1]):
        stack = np.concatenate([upsample2(stack), grid[None].astype(np.float32)], 0)
    return stack


def conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """3x3 convolution of (C, H, W), edges replicated: per band of rows, one product with its
    9 shifted planes (the band keeps them in cache)."""
    c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    matrix = weight.reshape(weight.shape[0], c * 9)
    out = np.empty((weight.shape[0], h, w), x.dtype)
    band = max(1, CHUNK // w)
    for r in range(0, h, band):
        n = min(band, h - r)
        planes = np.stack([padded[:, r + i:r + i + n, j:j + w] for i in range(3) for j in range(3)], 1)
        out[:, r:r + n] = (matrix @ planes.reshape(c * 9, n * w) + bias[:, None]).reshape(-1, n, w)
    return out


TILE = 1024  # pixels per side synthesised at once: memory bounded whatever the image's size
CHUNK = 1 << 16  # pixels through the 1x1 layers, or in a band of the 3x3 layers, at once: they stay in cache
HALO = 2  # coarsest-level cells of context around a tile: 128 pixels, more than the upsampling's
# edge effects (below 64 pixels: one row a level, doubled at each finer one) and the 3x3 layers' reach


def synthesise(decoder: Decoder, grids: list[np.ndarray], height: int, width: int, tile: int = TILE) -> np.ndarray:
    """uint8 pixels (1, 3, height, width) from the latent grids, tile by tile (``tile`` a
    multiple of the profile's stride): each tile's pixels are the whole image's."""
    p, stride = decoder.synthesis(), decoder.profile.stride
    coarse_h, coarse_w = grids[-1].shape
    step = tile // stride
    out = np.empty((3, height, width), np.uint8)
    for r0 in range(0, -(-height // stride), step):
        for c0 in range(0, -(-width // stride), step):
            r1, c1 = min(r0 + step, coarse_h), min(c0 + step, coarse_w)
            a, b = max(r0 - HALO, 0), min(r1 + HALO, coarse_h)
            c, d = max(c0 - HALO, 0), min(c1 + HALO, coarse_w)
            crops = [g[a * (stride >> i): b * (stride >> i), c * (stride >> i): d * (stride >> i)]
                     for i, g in enumerate(grids)]
            x = _synthesis(p, crops, decoder.profile.synth_residual)
            rows = slice((r0 - a) * stride, (r0 - a) * stride + min(r1 * stride, height) - r0 * stride)
            cols = slice((c0 - c) * stride, (c0 - c) * stride + min(c1 * stride, width) - c0 * stride)
            out[:, r0 * stride: min(r1 * stride, height), c0 * stride: min(c1 * stride, width)] = \
                np.clip(np.rint(x[:, rows, cols] * 255), 0, 255)
    return out[None]


def _synthesis(p: dict[str, np.ndarray], grids: list[np.ndarray], residual: int) -> np.ndarray:
    """(3, H, W) float32 of (cropped) latent grids."""
    stack = upsampled(grids)
    levels, h, w = stack.shape
    flat, x = stack.reshape(levels, -1), np.empty((3, h * w), np.float32)
    for a in range(0, h * w, CHUNK):
        hidden = np.maximum(p["0.weight"] @ flat[:, a:a + CHUNK] + p["0.bias"][:, None], 0)
        x[:, a:a + CHUNK] = p["1.weight"] @ hidden + p["1.bias"][:, None]
    x = x.reshape(3, h, w)
    for i in range(residual):
        x = x + conv3x3(x, p[f"res{i}.weight"], p[f"res{i}.bias"])
    return x


def grids_crc(grids: list[np.ndarray]) -> int:
    """The header's CRC of the latents: int64 little-endian, level 0 first, C order."""
    from .entropy import crc

    return crc(*[np.asarray(g, "<i8") for g in grids])


def decode(data: bytes, header, max_pixels: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(latent grids, uint8 pixels (1, 3, H, W)) of a validated overfitted file."""
    from .bitstream import FLAG_REFINED, payloads

    found = profile_of_id(header.model_id)
    if found is None:
        raise LrcodecError(f"file was made with overfitted profile {header.model_id.hex()}, which this build of "
                           f"lrcodec does not know (it knows {', '.join(PROFILES)}); upgrade lrcodec")
    if (header.flags != FLAG_REFINED or header.method or header.soft_alpha or header.seed or
            (header.ymin, header.ymax) != (-1, 1) or not header.zmin <= -1 < 1 <= header.zmax):
        raise LrcodecError("corrupted lrcodec file (invalid header fields)")
    if header.zmax - header.zmin + 1 > RESIDUAL_ALPHABET:
        raise LrcodecError("corrupted lrcodec file (symbol alphabet larger than the format allows)")
    shapes = checked_shapes(found, header.height, header.width, max_pixels)
    params, latents = payloads(data, header)
    decoder, nonzero = unpack_decoder(params, found)
    grids = decode_latents(latents, decoder, shapes, nonzero, header.zmin, header.zmax)
    if grids_crc(grids) != header.tables_crc:
        raise LrcodecError("invalid lrcodec file (its latents decode to other values than the encoder's: "
                           "a damaged payload, or an incompatible lrcodec build wrote it)")
    return grids, synthesise(decoder, grids, header.height, header.width)
