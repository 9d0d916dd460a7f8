// The exact entropy-parameter path, ported from lrcodec/format/exact.py: everything that decides a
// symbol's probability, bit for bit as the Python decoder computes it. JavaScript numbers are IEEE-754
// doubles and + - * / are correctly rounded, so the same operations in the same order give the same
// bits; exp, log, tanh, sigmoid, softplus and erfc are lrcodec's own (never Math.exp, whose last bits
// differ between engines), and h_s is an integer network whose sums stay below 2**50.

import { matmul } from "./gemm.js";

export const ACT_BITS = 16;
export const ACT_LIMIT = 256;
export const SLOPE_BITS = 24;
const SUM_LIMIT = 2 ** 50;
const WEIGHT_BITS_MAX = 24;
const PROB_BITS = 24;

const LN2_HI = 6.93147180369123816490e-01;
const LN2_LO = 1.90821492927058770002e-10;
const INV_LN2 = 1.44269504088896338700e00;
const EXP_COEFFS = [];
for (let k = 0, f = 1; k < 14; k++) { EXP_COEFFS.push(1 / f); f *= k + 1; }  // 1/k!, as Python's 1.0 / math.factorial(k)
const LOG_COEFFS = [];
for (let k = 1; k < 26; k += 2) LOG_COEFFS.push(1 / k);
const INV_SQRT_PI = 0.56418958354775628695;
const INV_SQRT2 = 0.70710678118654752440;

// 2**n for every exponent a double holds (subnormals included), by exact halving and doubling.
const POW2 = new Float64Array(1074 + 1024);
POW2[1074] = 1;
for (let n = 1; n <= 1023; n++) POW2[1074 + n] = POW2[1074 + n - 1] * 2;
for (let n = -1; n >= -1074; n--) POW2[1074 + n] = POW2[1074 + n + 1] / 2;

/** 2**n, exactly. */
export const pow2 = (n) => POW2[1074 + n];

/** numpy's ldexp: m * 2**n rounded once. */
export function ldexp(m, n) {  // n <= 1023 here: exp clips its argument to 709
  if (n < -1000) return (m * POW2[1074 + n + 1000]) * POW2[1074 - 1000];  // the first product is exact
  return m * POW2[1074 + n];
}

/** numpy's rint: round half to even. */
export function rint(x) {
  const f = Math.floor(x), d = x - f;  // exact for every double
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

export function exp(x) {
  x = Math.min(Math.max(x, -745.0), 709.0);
  const n = rint(x * INV_LN2);
  const r = (x - n * LN2_HI) - n * LN2_LO;
  let p = EXP_COEFFS[13];
  for (let i = 12; i >= 0; i--) p = p * r + EXP_COEFFS[i];
  return ldexp(p, n);
}

const F64 = new Float64Array(1), U32 = new Uint32Array(F64.buffer);  // little-endian: U32[1] holds the exponent

/** numpy's frexp for a positive normal double: [m in [0.5, 1), e]. */
function frexp(x) {
  F64[0] = x;
  const e = ((U32[1] >>> 20) & 0x7ff) - 1022;
  U32[1] = (U32[1] & 0x800fffff) | (1022 << 20);
  return [F64[0], e];
}

export function log(x) {
  let [m, e] = frexp(x);
  if (m < INV_SQRT2) { m = m * 2.0; e -= 1; }
  const s = (m - 1.0) / (m + 1.0), s2 = s * s;
  let p = LOG_COEFFS[12];
  for (let i = 11; i >= 0; i--) p = p * s2 + LOG_COEFFS[i];
  return e * LN2_HI + (e * LN2_LO + 2.0 * s * p);
}

export function tanh(x) {
  const e = exp(-2.0 * Math.abs(x));
  return Math.sign(x) * ((1.0 - e) / (1.0 + e));
}

export function sigmoid(x) {
  const e = exp(-Math.abs(x));
  return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

export function softplus(x) {
  return Math.max(x, 0.0) + log(1.0 + exp(-Math.abs(x)));
}

export function erfc(x) {
  const a = Math.abs(x);
  let result;
  if (a < 3.0) {
    let term = a, total = a;
    const twoX2 = 2.0 * a * a;
    for (let n = 1; n < 90; n++) {
      term = term * twoX2 / (2 * n + 1);
      total = total + term;
    }
    result = 1.0 - 2.0 * INV_SQRT_PI * exp(-a * a) * total;
  } else {
    let f = a;
    for (let k = 100; k > 0; k--) f = a + (0.5 * k) / f;
    result = exp(-a * a) * INV_SQRT_PI / f;
  }
  return x < 0 ? 2.0 - result : result;
}

export function upperTail(t) {
  return 0.5 * erfc(t * INV_SQRT2);
}

/** Integer frequencies out of 2**24, at least 1. */
export function quantizePmf(p) {
  return Math.max(rint(p * 2 ** PROB_BITS), 1.0);
}

/** Frequencies of k in lo..hi under N(-offset, sigma**2) on unit bins (exact.gaussian_pmf, quantized). */
export function gaussianTable(sigma, offset, lo, hi) {
  const out = new Float64Array(hi - lo + 1);
  for (let k = lo; k <= hi; k++) {
    const a = (k - 0.5 + offset) / sigma, b = (k + 0.5 + offset) / sigma;
    const p = (a + b) > 0 ? upperTail(a) - upperTail(b) : upperTail(-b) - upperTail(-a);
    out[k - lo] = quantizePmf(p);
  }
  return out;
}

/** CompressAI's EntropyBottleneck CDF in float64 (exact.FactorizedPrior). */
export class FactorizedPrior {
  /** layers: [[matrix, bias, factor|null]] as {data: Float64Array, shape}; quantiles likewise. */
  constructor(layers, quantiles) {
    this.layers = layers.map(([matrix, bias, factor]) => ({
      matrix: matrix.data.map(softplus), shape: matrix.shape,  // (C, out, in)
      bias: bias.data,  // (C, out, 1)
      factor: factor ? factor.data.map(tanh) : null,
    }));
    const C = quantiles.shape[0];
    this.medians = new Float64Array(C);
    for (let c = 0; c < C; c++) this.medians[c] = quantiles.data[c * 3 + 1];
  }

  /** The quantized table of channel c at offset o for k in lo..hi (exact.FactorizedPrior.pmf, step 1). */
  table(c, o, lo, hi) {
    const n = hi - lo + 2;
    let x = [new Float64Array(n)];
    const m = this.medians[c] + o;
    for (let i = 0; i < n; i++) x[0][i] = m + (lo + i - 0.5);
    for (const { matrix, shape, bias, factor } of this.layers) {
      const [, outs, ins] = shape;
      const next = [];
      for (let r = 0; r < outs; r++) {
        const row = (c * outs + r) * ins, v = new Float64Array(n);
        for (let i = 0; i < n; i++) v[i] = matrix[row] * x[0][i];
        for (let j = 1; j < ins; j++) {
          const w = matrix[row + j], xj = x[j];
          for (let i = 0; i < n; i++) v[i] = v[i] + w * xj[i];
        }
        const b = bias[c * outs + r];
        for (let i = 0; i < n; i++) v[i] = v[i] + b;
        if (factor) {
          const f = factor[c * outs + r];
          for (let i = 0; i < n; i++) v[i] = v[i] + f * tanh(v[i]);
        }
        next.push(v);
      }
      x = next;
    }
    const logits = x[0], out = new Float64Array(n - 1);
    for (let i = 0; i < n - 1; i++) {
      const lower = logits[i], upper = logits[i + 1];
      const flip = lower + upper > 0 ? -1.0 : 1.0;
      out[i] = quantizePmf(Math.abs(sigmoid(flip * upper) - sigmoid(flip * lower)));
    }
    return out;
  }
}

// ---------------------------------------------------------------- h_s in integers

/** A convolution's integer layer (exact.integer_layer): weights rounded at the most fraction bits that
 * keep every partial sum below 2**50. weight {data: Float64Array, shape}; mask as weight or null. */
export function integerLayer(spec, weight, bias, mask = null) {
  const w = mask ? weight.data.map((v, i) => v * mask.data[i]) : weight.data;
  const [d0, d1, k] = weight.shape;
  const outs = spec.kind === "conv" ? d0 : d1;
  const inLimit = ACT_LIMIT * 2 ** ACT_BITS;
  // Each output's sum of |w|, to skip (without rounding anything) the precisions that cannot hold:
  // sum |rint(w 2**b)| >= 2**b sum |w| - (terms)/2, so where that bound is past the limit, so is the sum.
  const l1f = new Float64Array(outs), terms = (d0 * d1 * k * k) / outs;
  for (let a = 0; a < d0; a++) for (let b = 0; b < d1; b++) for (let t = 0; t < k * k; t++) {
    l1f[spec.kind === "conv" ? a : b] += Math.abs(w[(a * d1 + b) * k * k + t]);
  }
  const l1fMax = Math.max(...l1f) * (1 - 1e-9);  // below the float sum's rounding error
  let bits, wi, bi;
  for (bits = WEIGHT_BITS_MAX; bits >= 0; bits--) {
    if (inLimit * (pow2(bits) * l1fMax - terms / 2) >= SUM_LIMIT) continue;
    const ws = pow2(bits), bs = pow2(bits + ACT_BITS);
    wi = w.map((v) => rint(v * ws));
    bi = bias.data.map((v) => rint(v * bs));
    const l1 = new Float64Array(outs);
    for (let a = 0; a < d0; a++) for (let b = 0; b < d1; b++) for (let t = 0; t < k * k; t++) {
      l1[spec.kind === "conv" ? a : b] += Math.abs(wi[(a * d1 + b) * k * k + t]);
    }
    let maxL1 = 0, maxB = 0;
    for (const v of l1) maxL1 = Math.max(maxL1, v);
    for (const v of bi) maxB = Math.max(maxB, Math.abs(v));
    if (inLimit * maxL1 + maxB + pow2(bits) < SUM_LIMIT) break;
  }
  if (bits < 0) throw new Error("weights too large for an integer network");
  const half = bits ? pow2(bits - 1) : 0;
  return { ...spec, weight: wi, shape: weight.shape, bias: bi.map((v) => v + half), bits };
}

/** The integer network of a spec (exact.IntegerNetwork.of_spec), weights by name. */
export function integerNetwork(spec, tensors) {
  return spec.map((s) => s.kind === "shuffle" ? { ...s } :
    integerLayer(s, tensors[`${s.name}.weight`], tensors[`${s.name}.bias`], tensors[`${s.name}.mask`] || null));
}

const saturate = (v) => Math.min(Math.max(v, -ACT_LIMIT * 2 ** ACT_BITS), ACT_LIMIT * 2 ** ACT_BITS);

/** The network of a fixed-point input {data, C, H, W} -> fixed-point output, exact integers in doubles. */
export async function runNetwork(layers, x) {
  x = { ...x, data: x.data.map(saturate) };
  for (const layer of layers) {
    if (layer.kind === "shuffle") x = pixelShuffle(x, layer.stride);
    else x = requantize(layer, await (layer.kind === "deconv" ? convTranspose2d(x, layer) : conv2d(x, layer)));
  }
  return x;
}

// Each convolution is matrix products (``matmul``) over bands of rows, so that memory stays bounded:
// the sums are of integers below 2**50, exact in whatever order the product takes them.
const BAND = 1 << 22;  // elements of the largest matrix a band builds

async function conv2d(x, layer) {
  const { C, H, W, data } = x;
  const [O, , k] = layer.shape, s = layer.stride, p = layer.padding, K = C * k * k;
  const Ho = Math.floor((H + 2 * p - k) / s) + 1, Wo = Math.floor((W + 2 * p - k) / s) + 1;
  const out = new Float64Array(O * Ho * Wo), band = Math.max(1, Math.floor(BAND / (K * Wo)));
  for (let y0 = 0; y0 < Ho; y0 += band) {
    const rows = Math.min(band, Ho - y0), n = rows * Wo, cols = new Float64Array(K * n);  // im2col, zero padded
    for (let c = 0; c < C; c++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
      const dst = ((c * k + i) * k + j) * n;
      for (let y = 0; y < rows; y++) {
        const iy = (y0 + y) * s + i - p;
        if (iy < 0 || iy >= H) continue;
        const src = (c * H + iy) * W;
        for (let xo = 0; xo < Wo; xo++) {
          const ix = xo * s + j - p;
          if (ix >= 0 && ix < W) cols[dst + y * Wo + xo] = data[src + ix];
        }
      }
    }
    const acc = await matmul(layer.weight, cols, O, K, n);
    for (let o = 0; o < O; o++) {
      const b = layer.bias[o];
      for (let t = 0; t < n; t++) out[o * Ho * Wo + y0 * Wo + t] = acc[o * n + t] + b;
    }
  }
  return { C: O, H: Ho, W: Wo, data: out };
}

async function convTranspose2d(x, layer) {
  const { C, H, W, data } = x;
  const [, O, k] = layer.shape, s = layer.stride, p = layer.padding;
  const Ho = (H - 1) * s + k + layer.output_padding - 2 * p, Wo = (W - 1) * s + k + layer.output_padding - 2 * p;
  const out = new Float64Array(O * Ho * Wo);
  for (let o = 0; o < O; o++) out.fill(layer.bias[o], o * Ho * Wo, (o + 1) * Ho * Wo);
  layer.transposed ??= (() => {  // (O k k, C): each tap's weights as rows
    const t = new Float64Array(O * k * k * C);
    for (let c = 0; c < C; c++) for (let r = 0; r < O * k * k; r++) t[r * C + c] = layer.weight[c * O * k * k + r];
    return t;
  })();
  const band = Math.max(1, Math.floor(BAND / (O * k * k * W)));
  for (let y0 = 0; y0 < H; y0 += band) {
    const rows = Math.min(band, H - y0), n = rows * W, part = new Float64Array(C * n);
    for (let c = 0; c < C; c++) part.set(data.subarray((c * H + y0) * W, (c * H + y0 + rows) * W), c * n);
    const cols = await matmul(layer.transposed, part, O * k * k, C, n);  // every tap's products, scattered below
    for (let o = 0; o < O; o++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
      const src = ((o * k + i) * k + j) * n;
      for (let y = 0; y < rows; y++) {
        const oy = (y0 + y) * s + i - p;
        if (oy < 0 || oy >= Ho) continue;
        const dst = (o * Ho + oy) * Wo;
        for (let xi = 0; xi < W; xi++) {
          const ox = xi * s + j - p;
          if (ox >= 0 && ox < Wo) out[dst + ox] += cols[src + y * W + xi];
        }
      }
    }
  }
  return { C: O, H: Ho, W: Wo, data: out };
}

function pixelShuffle(x, r) {
  const { C, H, W, data } = x, Co = C / (r * r), out = new Float64Array(data.length);
  for (let c = 0; c < Co; c++) for (let a = 0; a < r; a++) for (let b = 0; b < r; b++) {
    const src = ((c * r + a) * r + b) * H * W;
    for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) {
      out[(c * H * r + y * r + a) * W * r + xx * r + b] = data[src + y * W + xx];
    }
  }
  return { C: Co, H: H * r, W: W * r, data: out };
}

function requantize(layer, acc) {
  const scale = pow2(-layer.bits), slope = layer.slope * pow2(-SLOPE_BITS), d = acc.data;
  for (let i = 0; i < d.length; i++) {
    let v = saturate(Math.floor(d[i] * scale));
    if (layer.activation === "leaky") v = Math.max(v, Math.floor(v * slope));
    else if (layer.activation === "relu") v = Math.max(v, 0);
    d[i] = v;
  }
  return acc;
}
