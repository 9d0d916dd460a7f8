// lrcodec bytes -> latents -> pixels in the page (lrcodec/codec.py's decode path, without torch as
// lrcodec/runtime.py runs it): the exact path decides every symbol as the Python decoder does, bit for
// bit; only g_s, on onnxruntime-web (and the overfitted family's synthesis, overfit.js), is float, and
// its pixels stay within the format's bound.

import { LrcodecError } from "./errors.js";
import * as bitstream from "./bitstream.js";
import { ACT_BITS, gaussianTable, pow2, rint, runNetwork } from "./exact.js";
import { PayloadDecoder, crc32, groupsOf } from "./entropy.js";
import { uqLevels, uqOffsets } from "./dither.js";
import { runtimeModel } from "./runtime.js";
import { alphaPlane } from "./png.js";
import { onnxruntime } from "./onnxruntime.js";
import { decodeOverfit } from "./overfit.js";

const STRIDE = 64;
const TILE = 32, WHOLE = 4096;  // g_s in one piece up to 4096 latent positions (1 MP), else 32-position tiles

/** A model's exact path and g_s session, made once per model found by ``models.find``. */
const prepared = new WeakMap();

async function modelFor(header, models) {
  if (header.version === 1) throw new LrcodecError("a format 1 file does not decode in the page; use `lrcodec decode`");
  const found = models && (await models.find(header.modelId));
  if (!found) {
    throw new LrcodecError(`file was made with model ${header.modelId}, which this page does not have ` +
      "(only lrcodec's shipped models decode in the page)");
  }
  if (!prepared.has(found)) {
    prepared.set(found, runtimeModel(found.spec, found.weights).then((model) => {
      if (model.spec.model_id !== header.modelId) throw new LrcodecError(`${model.spec.name} is not model ${header.modelId}`);
      if (model.spec.arch !== "mean-scale" && model.spec.arch !== "scale") {
        throw new LrcodecError(`model ${model.spec.name} (${model.spec.arch}) does not decode in the page`);
      }
      return { ...model, gs: found.gs };
    }));
  }
  return prepared.get(found);
}

/** Parse, validate and entropy-decode a file: {header, metadata (icc, exif, xmp bytes), alpha (its
 * plane, Uint8Array, or null), model, latents}; an overfitted file's latents are its grids, and its
 * pixels come too (its decoder is in the file). */
export async function decodeLatents(data, { models, maxPixels = bitstream.DEFAULT_MAX_PIXELS } = {}) {
  data = data instanceof Uint8Array ? data : new Uint8Array(data);
  const header = bitstream.parseHeader(data, maxPixels);
  const { alpha: record, ...metadata } = bitstream.records(data, header);
  const alpha = record ? alphaPlane(record, header.width, header.height) : null;  // checked before decoding
  if (header.version === bitstream.OVERFIT_VERSION) {  // the file carries its decoder
    const { profile, grids, shapes, pixels } = decodeOverfit(...bitstream.payloads(data, header), header, maxPixels);
    return { header, metadata, alpha, model: { spec: { name: profile } }, latents: { grids, shapes }, pixels };
  }
  const model = await modelFor(header, models);
  return { header, metadata, alpha, model, latents: await decodeSymbols(data, header, model) };
}

async function decodeSymbols(data, header, model) {
  const [zPayload, yPayload] = bitstream.payloads(data, header);
  const Hp = header.height + (STRIDE - (header.height % STRIDE)) % STRIDE;
  const Wp = header.width + (STRIDE - (header.width % STRIDE)) % STRIDE;
  const { M, N } = model, h = Hp / 16, w = Wp / 16, hz = Hp / 64, wz = Wp / 64;
  const offsets = header.uq ? uqOffsets(header.softAlpha) : new Float64Array(1), L = offsets.length;
  const levelsOf = (shape, stream) => (header.uq ? uqLevels(header.seed, shape, stream) : new Uint8Array(shape.reduce((a, b) => a * b)));

  // z: groups (channel, level), the learned prior's tables
  const zLevels = levelsOf([1, N, hz, wz], 1), zKeys = new Int32Array(N * hz * wz);
  for (let i = 0; i < zKeys.length; i++) zKeys[i] = Math.floor(i / (hz * wz)) * L + zLevels[i];
  const zGroups = groupsOf(zKeys);
  const zTables = zGroups.keys.map((k) => model.prior.table(Math.floor(k / L), offsets[k % L], header.zmin, header.zmax));
  const zDecoder = new PayloadDecoder(zPayload, "z");
  const zSymbols = zDecoder.take(zGroups, zTables, header.zmin);
  zDecoder.finish();

  // h_s on z_hat = k + m + u in fixed point, then (sigma index, mu) of every y element
  const zFixed = new Float64Array(zSymbols.length);
  for (let i = 0; i < zFixed.length; i++) {
    const c = Math.floor(i / (hz * wz));
    zFixed[i] = rint((zSymbols[i] * 1.0 + model.prior.medians[c] + offsets[zLevels[i]] * 1.0) * pow2(ACT_BITS));
  }
  const hyper = (await runNetwork(model.hs, { C: N, H: hz, W: wz, data: zFixed })).data;
  const n = M * h * w, sigmaIndex = new Int32Array(n), mu = new Float64Array(n), table = model.sigmaTable;
  for (let i = 0; i < n; i++) {
    const sigma = hyper[i] * pow2(-ACT_BITS);
    let lo = 0, hi = table.length;  // the number of table values below sigma
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (table[mid] < sigma) lo = mid + 1; else hi = mid; }
    sigmaIndex[i] = Math.min(lo, table.length - 1);
    mu[i] = model.meanScale ? hyper[n + i] * pow2(-ACT_BITS) : 0;
  }
  const yDecoder = new PayloadDecoder(yPayload, "y");  // its length checked before the tables, as in Python
  const zTablesBytes = new Float64Array(zTables.length * (header.zmax - header.zmin + 1));
  zTables.forEach((t, g) => zTablesBytes.set(t, g * t.length));
  if (crc32(sigmaIndex, zTablesBytes) !== header.tablesCrc) {
    throw new LrcodecError("invalid lrcodec file (the probability tables its z payload implies differ from the " +
      "encoder's: a damaged payload, or an incompatible lrcodec build wrote it)");
  }

  // y: groups (sigma index, level), discretized Gaussians
  const yLevels = levelsOf([1, M, h, w], 0), yKeys = new Int32Array(n);
  for (let i = 0; i < n; i++) yKeys[i] = sigmaIndex[i] * L + yLevels[i];
  const yGroups = groupsOf(yKeys);
  const yTables = yGroups.keys.map((k) => gaussianTable(table[Math.floor(k / L)], offsets[k % L], header.ymin, header.ymax));
  const ySymbols = yDecoder.take(yGroups, yTables, header.ymin);
  yDecoder.finish();
  const yHat = new Float32Array(n);
  for (let i = 0; i < n; i++) yHat[i] = ySymbols[i] * 1.0 + mu[i] + offsets[yLevels[i]] / 1.0;
  return { zSymbols, ySymbols, sigmaIndex, yHat, yShape: [1, M, h, w], zShape: [1, N, hz, wz] };
}

/** The decoded image: {header, model (its name), width, height, fileBytes, rgba (Uint8ClampedArray,
 * straight alpha), alpha (Uint8Array or null), metadata (icc, exif, xmp bytes), latents}. ``models``: where models are found (``httpModels``). */
export async function decode(data, { models, maxPixels } = {}) {
  const { header, metadata, alpha, model, latents, pixels } = await decodeLatents(data, { models, maxPixels });
  const rgb = pixels ?? await synthesise(model, latents, header.height, header.width);
  const count = header.width * header.height, rgba = new Uint8ClampedArray(4 * count);
  for (let i = 0; i < count; i++) {
    let r = rgb[i], g = rgb[count + i], b = rgb[2 * count + i];
    if (header.mode === "L") r = g = b = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;  // Pillow's RGB -> L
    rgba[4 * i] = r; rgba[4 * i + 1] = g; rgba[4 * i + 2] = b; rgba[4 * i + 3] = alpha ? alpha[i] : 255;
  }
  return { header, model: model.spec.name, width: header.width, height: header.height, fileBytes: data.byteLength, rgba, alpha,
    metadata, latents };
}

const sessions = new WeakMap();

/** 8-bit pixels (3 planes of height x width) from y_hat: g_s on onnxruntime-web, tile by tile past 1 MP
 * with the model's halo, each value rint(clip(x, 0, 1) * 255) in float32 as the Python decoder rounds it. */
async function synthesise(model, latents, height, width) {
  const ort = await onnxruntime();
  if (!sessions.has(model)) sessions.set(model, ort.InferenceSession.create(model.gs, { executionProviders: ["wasm"] }));
  const session = await sessions.get(model);
  const [, M, h, w] = latents.yShape, side = h * w <= WHOLE ? Math.max(h, w) : TILE, halo = model.gsHalo;
  const out = new Uint8Array(3 * height * width);
  for (let top = 0; top < h; top += side) {
    for (let left = 0; left < w; left += side) {
      const t0 = Math.max(top - halo, 0), t1 = Math.min(top + side + halo, h);
      const l0 = Math.max(left - halo, 0), l1 = Math.min(left + side + halo, w);
      const th = t1 - t0, tw = l1 - l0, tile = new Float32Array(M * th * tw);
      for (let c = 0; c < M; c++) for (let y = 0; y < th; y++) {
        const src = (c * h + t0 + y) * w + l0;
        tile.set(latents.yHat.subarray(src, src + tw), (c * th + y) * tw);
      }
      const result = await session.run({ input: new ort.Tensor("float32", tile, [1, M, th, tw]) });
      const pixels = result[session.outputNames[0]].data, H = 16 * th, W = 16 * tw;
      const rows = Math.min(16 * Math.min(side, h - top), height - 16 * top);
      const cols = Math.min(16 * Math.min(side, w - left), width - 16 * left);
      for (let c = 0; c < 3; c++) for (let y = 0; y < rows; y++) {
        const src = (c * H + 16 * (top - t0) + y) * W + 16 * (left - l0), dst = (c * height + 16 * top + y) * width + 16 * left;
        for (let x = 0; x < cols; x++) out[dst + x] = rint(Math.fround(Math.min(Math.max(pixels[src + x], 0), 1) * 255));
      }
    }
  }
  return out;
}
