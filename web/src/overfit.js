// The overfitted family's decoder (format 4), ported from lrcodec/format/overfit.py: the file carries
// its decoder's integer parameters; the latents are decoded wavefront by wavefront under an ARM
// evaluated in fixed point (integer sums below 2**53 in doubles, so every machine decodes the same
// symbols), then a small float synthesis makes the pixels.

import { LrcodecError } from "./errors.js";
import { exp, quantizePmf, rint } from "./exact.js";
import { categoricalCdf, crc32, SymbolReader, wordsOf } from "./entropy.js";

const ARM_BITS = 8, ARM_INPUT_LIMIT = 2 ** 12, ARM_ACT_LIMIT = 2 ** 20;
const PARAM_LIMIT = 2 ** 15 - 1, MU_BITS = 3;
const LOG_SCALE_MIN = -1178, LOG_SCALE_STEP = 26, SCALES = 96;
const PARAM_SCALE_STEPS = 8, LN2 = 0.6931471805599453, RESIDUAL_ALPHABET = 512;
const TILE = 1024, HALO = 2;

const context = (rows) => rows.flatMap(([dy, from, to]) => Array.from({ length: to - from }, (_, i) => [dy, from + i]));
const CONTEXT_8 = context([[0, -2, 0], [-1, -2, 3], [-2, 0, 1]]);
const CONTEXT_16 = context([[0, -3, 0], [-1, -3, 4], [-2, -2, 3], [-3, 0, 1]]);

function profile(name, id, levels, ctx, armHidden, armLayers, synthHidden, synthResidual) {
  const arm = [[armHidden, ctx.length], ...Array(armLayers - 1).fill([armHidden, armHidden]), [2, armHidden]];
  const tensors = arm.flatMap(([o, n], i) => [[`arm.${i}.weight`, [o, n]], [`arm.${i}.bias`, [o]]]).concat(
    [["synth.0.weight", [synthHidden, levels]], ["synth.0.bias", [synthHidden]], ["synth.1.weight", [3, synthHidden]],
      ["synth.1.bias", [3]]],
    Array.from({ length: synthResidual }, (_, i) => [[`synth.res${i}.weight`, [3, 3, 3, 3]], [`synth.res${i}.bias`, [3]]]).flat());
  const slope = 1 + Math.max(...ctx.filter(([dy]) => dy < 0).map(([dy, dx]) => Math.floor(dx / -dy)));
  return { name, id, levels, context: ctx, armLayers, synthResidual, stride: 2 ** (levels - 1), slope, tensors };
}

export const PROFILES = [
  profile("overfit-500", "54f2102137ac4f01", 7, CONTEXT_8, 8, 2, 16, 1),
  profile("overfit-2000", "f75c585864226f02", 7, CONTEXT_16, 24, 2, 40, 2),
];

/** Each level's grid, refused past twice the pixel limit (overfit.checked_shapes). */
function checkedShapes(p, height, width, maxPixels) {
  const s = p.stride, h = Math.ceil(height / s) * s, w = Math.ceil(width / s) * s;
  if (h * w > 2 * maxPixels) {
    throw new LrcodecError(`a ${width}x${height} image pads to ${w}x${h} latents for ${p.name}, more than twice the ` +
      `limit of ${maxPixels.toLocaleString("en-US")} pixels`);
  }
  return Array.from({ length: p.levels }, (_, i) => [h >> i, w >> i]);
}

/** P(k) for k in lo..hi under Laplace(c, b) on unit bins, the tails folded into the end symbols, quantized. */
function laplaceTable(c, b, lo, hi) {
  const cdf = (x) => (x < 0 ? 0.5 * exp(Math.min(x, 0.0) / b) : 1.0 - 0.5 * exp(-Math.max(x, 0.0) / b));
  const out = new Float64Array(hi - lo + 1);
  for (let k = lo; k <= hi; k++) {
    const upper = k === hi ? 1.0 : cdf(k + 0.5 - c), lower = k === lo ? 0.0 : cdf(k - 0.5 - c);
    out[k - lo] = quantizePmf((k + 0.5 - c) <= 0 ? upper - lower : (1.0 - lower) - (1.0 - upper));
  }
  return out;
}

/** The latents' CDFs, one per table index f * SCALES + j (overfit.latent_tables). */
function latentCdfs(lo, hi) {
  return Array.from({ length: 2 ** MU_BITS * SCALES }, (_, i) => {
    const f = Math.floor(i / SCALES), j = i % SCALES;
    return categoricalCdf(laplaceTable((f + 0.5) / 2 ** MU_BITS, exp((LOG_SCALE_MIN + LOG_SCALE_STEP * (j + 0.5)) / 2 ** ARM_BITS), lo, hi));
  });
}

/** (parameters by name, nonzero-level mask, exponents) of the decoder payload (overfit.unpack_decoder). */
function unpackDecoder(payload, p) {
  const bad = () => new LrcodecError("invalid lrcodec file (its decoder parameters are damaged)");
  const size = 3 + 3 * p.tensors.length;
  if (payload.length < size || (payload.length - size) % 4) throw bad();
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const [nonzero, armExponent, synthExponent] = payload.subarray(0, 3);
  const exponentOk = (e) => e >= 4 && e <= 14;
  if (nonzero >> p.levels || !exponentOk(armExponent) || !exponentOk(synthExponent)) throw bad();
  const reader = new SymbolReader(wordsOf(payload.subarray(size)), bad), params = {};
  p.tensors.forEach(([name, shape], i) => {
    const j = payload[3 + 3 * i], limit = view.getUint16(4 + 3 * i, true);
    if (j >= 128 || limit < 1 || limit > PARAM_LIMIT) throw bad();
    const cdf = categoricalCdf(laplaceTable(0, exp(j * (LN2 / PARAM_SCALE_STEPS)), -limit, limit));
    const n = shape.reduce((a, b) => a * b, 1), values = new Float64Array(n);
    for (let v = 0; v < n; v++) values[v] = reader.next(cdf) - limit;
    params[name] = { data: values, shape };
  });
  if (!reader.ends()) throw bad();
  return { params, nonzero, armExponent, synthExponent };
}

/** The ARM's layers with their steps folded in (overfit.ExactArm): (out, in) matrices and biases. */
function armLayers(d, p) {
  const scale = 2 ** -d.armExponent;
  return Array.from({ length: p.armLayers + 1 }, (_, i) => {
    const { data: w, shape: [o, n] } = d.params[`arm.${i}.weight`], b = d.params[`arm.${i}.bias`].data;
    const s = i === 0 ? scale * 2 ** ARM_BITS : scale;
    return { matrix: w.map((v) => v * s), bias: b.map((v) => v * (scale * 2 ** ARM_BITS)), n, o };
  });
}

const saturate = (v) => Math.min(Math.max(v, -ARM_ACT_LIMIT), ARM_ACT_LIMIT);

/** The integer grids, decoded wavefront by wavefront (overfit.decode_latents). */
function decodeLatents(payload, d, p, shapes, lo, hi) {
  const bad = () => new LrcodecError("invalid lrcodec file (its latents payload is not a range-coder stream this decoder wrote)");
  if (payload.length % 4) throw bad();
  const reader = new SymbolReader(wordsOf(payload), bad);
  const padX = Math.max(...p.context.map(([, dx]) => Math.abs(dx))), padY = Math.max(...p.context.map(([dy]) => -dy));
  const padded = shapes.map(([h, w]) => new Int32Array((h + padY) * (w + 2 * padX)));
  const coded = shapes.map((_, n) => n).filter((n) => (d.nonzero >> n) & 1);
  if (coded.length) {
    const cdfs = latentCdfs(lo, hi), layers = armLayers(d, p), C = p.context.length;
    const h1 = new Float64Array(Math.max(...layers.map((l) => l.o))), h2 = new Float64Array(h1.length), x = new Float64Array(C);
    const last = shapes.map(([h, w]) => w - 1 + p.slope * (h - 1));
    const offsets = shapes.map(([, w]) => Int32Array.from(p.context, ([dy, dx]) => dy * (w + 2 * padX) + dx));
    for (let t = 0, done = false; !done; t++) {
      done = true;
      for (const n of coded) {  // front t of every level that has one, level 0 first
        if (t > last[n]) continue;
        done = false;
        const [h, w] = shapes[n], stride = w + 2 * padX, grid = padded[n], near = offsets[n];
        for (let y = Math.max(0, Math.ceil((t - w + 1) / p.slope)); y <= Math.min(h - 1, Math.floor(t / p.slope)); y++) {
          const at = (y + padY) * stride + (t - p.slope * y) + padX;
          for (let c = 0; c < C; c++) x[c] = Math.min(Math.max(grid[at + near[c]], -ARM_INPUT_LIMIT), ARM_INPUT_LIMIT);
          let input = x, out = h1;
          for (let i = 0; i < layers.length; i++) {
            const { matrix, bias, n: ins, o } = layers[i];
            for (let r = 0, row = 0; r < o; r++, row += ins) {
              let acc = 0;
              for (let c = 0; c < ins; c++) acc += input[c] * matrix[row + c];  // integers below 2**53 steps: any order
              out[r] = Math.floor(acc + bias[r]);
            }
            if (i === layers.length - 1) break;
            for (let r = 0; r < o; r++) {
              let v = Math.max(Math.min(out[r], ARM_ACT_LIMIT), 0.0);
              if (i > 0) v = saturate(v + input[r]);
              out[r] = v;
            }
            input = out;
            out = out === h1 ? h2 : h1;
          }
          const mu = saturate(out[0]), logScale = saturate(out[1]);
          const m = Math.floor(mu / 2 ** (ARM_BITS - MU_BITS)), k0 = Math.floor(m / 2 ** MU_BITS), f = m - k0 * 2 ** MU_BITS;
          const j = Math.min(Math.max(Math.floor((logScale - LOG_SCALE_MIN) / LOG_SCALE_STEP), 0), SCALES - 1);
          grid[at] = reader.next(cdfs[f * SCALES + j]) + k0 + lo;
        }
      }
      if (reader.overrun) throw bad();  // stop at once, not after decoding every latent
    }
  }
  if (!reader.ends()) throw bad();
  return shapes.map(([h, w], n) => {
    const stride = w + 2 * padX, grid = new Int32Array(h * w);
    for (let y = 0; y < h; y++) grid.set(padded[n].subarray((y + padY) * stride + padX, (y + padY) * stride + padX + w), y * w);
    return grid;
  });
}

// ---------------------------------------------------------------- synthesis (float)

/** Bilinear x2 (half-pixel centres, edges replicated) of float32 planes (overfit.upsample2), each
 * operation rounded to float32 as numpy computes it. */
function upsample2(planes, h, w) {
  const f = Math.fround, H = 2 * h, W = 2 * w;
  return planes.map((v) => {
    const rows = new Float32Array(H * w);  // along the rows first, then the columns, as numpy does
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const c = v[y * w + x], up = v[Math.max(y - 1, 0) * w + x], down = v[Math.min(y + 1, h - 1) * w + x];
      rows[2 * y * w + x] = f(f(c * 0.75) + f(0.25 * up));
      rows[(2 * y + 1) * w + x] = f(f(c * 0.75) + f(0.25 * down));
    }
    const out = new Float32Array(H * W);
    for (let y = 0; y < H; y++) for (let x = 0; x < w; x++) {
      const c = rows[y * w + x], left = rows[y * w + Math.max(x - 1, 0)], right = rows[y * w + Math.min(x + 1, w - 1)];
      out[y * W + 2 * x] = f(f(c * 0.75) + f(0.25 * left));
      out[y * W + 2 * x + 1] = f(f(c * 0.75) + f(0.25 * right));
    }
    return out;
  });
}

/** (3 planes, h, w) float of cropped grids (overfit._synthesis): the levels upsampled, coarsest
 * first, two 1x1 layers, residual 3x3 layers with edges replicated. */
function synthesisOf(s, grids, shapes, residual) {
  let [h, w] = shapes[shapes.length - 1];
  let stack = [Float32Array.from(grids[grids.length - 1])];
  for (let n = grids.length - 2; n >= 0; n--) {
    stack = upsample2(stack, h, w);
    [h, w] = [2 * h, 2 * w];
    stack.push(Float32Array.from(grids[n]));
  }
  const levels = stack.length, hidden = s["0.bias"].length, x = [0, 1, 2].map(() => new Float32Array(h * w));
  const t = new Float64Array(hidden);
  for (let i = 0; i < h * w; i++) {
    for (let r = 0; r < hidden; r++) {
      let acc = 0;
      for (let c = 0; c < levels; c++) acc += s["0.weight"][r * levels + c] * stack[c][i];
      t[r] = Math.max(acc + s["0.bias"][r], 0);
    }
    for (let o = 0; o < 3; o++) {
      let acc = 0;
      for (let r = 0; r < hidden; r++) acc += s["1.weight"][o * hidden + r] * t[r];
      x[o][i] = acc + s["1.bias"][o];
    }
  }
  for (let k = 0; k < residual; k++) {
    const weight = s[`res${k}.weight`], bias = s[`res${k}.bias`];
    const next = x.map((plane, o) => {
      const out = new Float32Array(h * w);
      for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) {
        let acc = bias[o];
        for (let c = 0; c < 3; c++) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
          const yy = Math.min(Math.max(y + i - 1, 0), h - 1), xj = Math.min(Math.max(xx + j - 1, 0), w - 1);
          acc += weight[((o * 3 + c) * 3 + i) * 3 + j] * x[c][yy * w + xj];
        }
        out[y * w + xx] = plane[y * w + xx] + acc;
      }
      return out;
    });
    x.splice(0, 3, ...next);
  }
  return { planes: x, h, w };
}

/** 8-bit pixels (3 planes of height x width), tile by tile with a halo (overfit.synthesise). */
function synthesise(d, p, grids, shapes, height, width) {
  const step = 2 ** -d.synthExponent, s = {};
  for (const [name, { data }] of Object.entries(d.params)) {
    if (name.startsWith("synth.")) s[name.slice(6)] = Float32Array.from(data, (v) => v * step);
  }
  const stride = p.stride, [coarseH, coarseW] = shapes[shapes.length - 1], cells = TILE / stride;
  const out = new Uint8Array(3 * height * width);
  for (let r0 = 0; r0 < Math.ceil(height / stride); r0 += cells) {
    for (let c0 = 0; c0 < Math.ceil(width / stride); c0 += cells) {
      const r1 = Math.min(r0 + cells, coarseH), c1 = Math.min(c0 + cells, coarseW);
      const a = Math.max(r0 - HALO, 0), b = Math.min(r1 + HALO, coarseH), c = Math.max(c0 - HALO, 0), e = Math.min(c1 + HALO, coarseW);
      const crops = grids.map((g, n) => {
        const k = stride >> n, gw = shapes[n][1], cw = (e - c) * k, crop = new Int32Array((b - a) * k * cw);
        for (let y = 0; y < (b - a) * k; y++) crop.set(g.subarray((a * k + y) * gw + c * k, (a * k + y) * gw + c * k + cw), y * cw);
        return crop;
      });
      const cropShapes = shapes.map((_, n) => [(b - a) * (stride >> n), (e - c) * (stride >> n)]);
      const { planes, w } = synthesisOf(s, crops, cropShapes, p.synthResidual);
      const rows = Math.min(r1 * stride, height) - r0 * stride, cols = Math.min(c1 * stride, width) - c0 * stride;
      for (let o = 0; o < 3; o++) for (let y = 0; y < rows; y++) for (let x = 0; x < cols; x++) {
        const v = planes[o][((r0 - a) * stride + y) * w + (c0 - c) * stride + x];
        out[(o * height + r0 * stride + y) * width + c0 * stride + x] = Math.min(Math.max(rint(Math.fround(v * 255)), 0), 255);
      }
    }
  }
  return out;
}

/** Integers (below 2**31) as little-endian int64s, the bytes Python hashes them as: Int32 pairs. */
export function asInt64(values) {
  const wide = new Int32Array(2 * values.length);
  for (let i = 0; i < values.length; i++) { wide[2 * i] = values[i]; wide[2 * i + 1] = values[i] < 0 ? -1 : 0; }
  return wide;
}

/** The latent grids' CRC as the header holds it: int64 little-endian, level 0 first (overfit.grids_crc). */
function gridsCrc(grids) {
  return crc32(...grids.map(asInt64));
}

/** {grids, shapes, pixels (3 planes)} of a validated overfitted file (overfit.decode). */
export function decodeOverfit(zPayload, yPayload, header, maxPixels) {
  const p = PROFILES.find((q) => q.id === header.modelId);
  if (!p) {
    throw new LrcodecError(`file was made with overfitted profile ${header.modelId}, which this build of lrcodec does not ` +
      `know (it knows ${PROFILES.map((q) => q.name).join(", ")}); upgrade lrcodec`);
  }
  if (header.flags !== 1 || header.method || header.softAlpha || header.seed || header.ymin !== -1 || header.ymax !== 1
      || !(header.zmin <= -1 && header.zmax >= 1)) {
    throw new LrcodecError("corrupted lrcodec file (invalid header fields)");
  }
  if (header.zmax - header.zmin + 1 > RESIDUAL_ALPHABET) {
    throw new LrcodecError("corrupted lrcodec file (symbol alphabet larger than the format allows)");
  }
  const shapes = checkedShapes(p, header.height, header.width, maxPixels);
  const d = unpackDecoder(zPayload, p);
  const grids = decodeLatents(yPayload, d, p, shapes, header.zmin, header.zmax);
  if (gridsCrc(grids) !== header.tablesCrc) {
    throw new LrcodecError("invalid lrcodec file (its latents decode to other values than the encoder's: " +
      "a damaged payload, or an incompatible lrcodec build wrote it)");
  }
  return { grids, shapes, profile: p.name, pixels: synthesise(d, p, grids, shapes, header.height, header.width) };
}
