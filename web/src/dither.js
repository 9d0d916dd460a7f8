// Universal quantization's shared dither (lrcodec/format/dither.py): each element's level from a
// SplitMix64 hash of (seed, stream, shape), in 64-bit integer arithmetic on 32-bit halves.

import { rint } from "./exact.js";

export const UQ_LEVELS = 15;

/** (a * b) for 32-bit a, b as [hi, lo] 32-bit halves, exactly. */
function mul32(a, b) {
  const a1 = a >>> 16, a0 = a & 0xffff, b1 = b >>> 16, b0 = b & 0xffff;
  const mid = a0 * b1 + a1 * b0;  // < 2**33
  const midHi = Math.floor(mid / 65536);
  let lo = a0 * b0 + (mid - midHi * 65536) * 65536;  // < 2**33
  const carry = Math.floor(lo / 2 ** 32);
  lo -= carry * 2 ** 32;
  return [(a1 * b1 + midHi + carry) >>> 0, lo >>> 0];
}

/** (hi, lo) * (bh, bl) mod 2**64. */
function mul64(h, l, bh, bl) {
  const [ph, pl] = mul32(l, bl);
  return [(ph + Math.imul(h, bl) + Math.imul(l, bh)) >>> 0, pl];
}

/** SplitMix64's finaliser of (h, l), as [h, l]. */
function splitmix64(h, l) {
  // x += 0x9E3779B97F4A7C15
  let nl = l + 0x7f4a7c15;
  h = (h + 0x9e3779b9 + (nl >= 2 ** 32 ? 1 : 0)) >>> 0;
  l = nl >>> 0;
  // x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
  l = (l ^ ((l >>> 30) | (h << 2))) >>> 0; h = (h ^ (h >>> 30)) >>> 0;
  [h, l] = mul64(h, l, 0xbf58476d, 0x1ce4e5b9);
  // x = (x ^ (x >> 27)) * 0x94D049BB133111EB
  l = (l ^ ((l >>> 27) | (h << 5))) >>> 0; h = (h ^ (h >>> 27)) >>> 0;
  [h, l] = mul64(h, l, 0x94d049bb, 0x133111eb);
  // x ^ (x >> 31)
  return [(h ^ (h >>> 31)) >>> 0, (l ^ ((l >>> 31) | (h << 1))) >>> 0];
}

/** Dither level (0..14) of every element in C order (dither.uq_levels), Uint8Array. */
export function uqLevels(seed, shape, stream = 0) {
  let kh = 0, kl = 0;
  for (const part of [seed >>> 0, stream, ...shape]) [kh, kl] = splitmix64(kh, (kl ^ part) >>> 0);
  const n = shape.reduce((a, b) => a * b, 1), out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const [h] = splitmix64(kh, (kl ^ i) >>> 0);  // n < 2**32: the index has no high half
    out[i] = h % UQ_LEVELS;
  }
  return out;
}

/** The value each level adds (dither.uq_offsets): (l+1)/16 - 1/2, or r_alpha of it, on a 2**-20 grid. */
export function uqOffsets(alpha = 0) {
  const out = new Float64Array(UQ_LEVELS);
  for (let l = 0; l < UQ_LEVELS; l++) {
    let u = (l + 1) / (UQ_LEVELS + 1) - 0.5;
    // Math's atanh and tanh stand in for numpy's and libm's here: the grid rounding below absorbs their
    // last-bit differences (for every alpha 1-255 the value lies at least 5.8e-4 of a grid step from a tie).
    if (alpha) u = Math.atanh(2 * Math.tanh(alpha / 2) * u) / alpha;
    out[l] = rint(u * 2 ** 20) / 2 ** 20;
  }
  return out;
}
