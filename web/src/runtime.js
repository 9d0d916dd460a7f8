// A shipped model as the page needs it (lrcodec/runtime.py): its runtime export's spec, the float
// tensors of the exact path read from its safetensors weights (checked against the export's digest),
// and its g_s graph, run by onnxruntime-web. Where the files come from is the caller's: ``httpModels``
// fetches them from a folder of lrcodec's models (what ``lrcodec serve`` serves), the tests read them.

import { LrcodecError } from "./errors.js";
import { FactorizedPrior, integerNetwork } from "./exact.js";
import { sigmaTable } from "./entropy.js";

/** The tensors of a safetensors file (F16, F32 or F64) that ``names`` lists, as float64. */
export function readSafetensors(bytes, names) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) throw new LrcodecError("not a safetensors file");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const base = 8 + headerLength, out = {};
  for (const name of names) {
    const t = header[name];
    if (!t) throw new LrcodecError(`the model's weights lack ${name}`);
    const [begin, end] = t.data_offsets, n = t.shape.reduce((a, b) => a * b, 1), data = new Float64Array(n);
    const size = { F16: 2, F32: 4, F64: 8 }[t.dtype];
    if (!size || end - begin !== n * size) throw new LrcodecError(`the model's tensor ${name} is not a float tensor`);
    for (let i = 0; i < n; i++) {
      const at = base + begin + i * size;
      data[i] = size === 2 ? HALVES[view.getUint16(at, true)] : size === 4 ? view.getFloat32(at, true) : view.getFloat64(at, true);
    }
    out[name] = { data, shape: t.shape };
  }
  return out;
}

/** Every IEEE half's value, exactly, by its bits. */
const HALVES = new Float64Array(65536).map((_, bits) => {
  const sign = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (e - 25);
});

async function sha256(bytes) {
  return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The exact path of a runtime export: z's prior, the integer h_s, the sigma table (runtime.load_runtime). */
export async function runtimeModel(spec, weights) {
  if (spec.export_version !== 1) throw new LrcodecError(`${spec.name}: not a runtime export this page reads`);
  if (await sha256(weights) !== spec.weights_sha256) {
    throw new LrcodecError(`the weights of ${spec.name} are not the file its export was made from`);
  }
  const names = spec.h_s.filter((l) => l.kind !== "shuffle").flatMap((l) => [`${l.name}.weight`, `${l.name}.bias`]);
  const priorNames = spec.prior.layers.flat().filter(Boolean).concat([spec.prior.quantiles]);
  const tensors = readSafetensors(weights, names.concat(priorNames));
  const prior = new FactorizedPrior(spec.prior.layers.map((layer) => layer.map((n) => (n ? tensors[n] : null))),
    tensors[spec.prior.quantiles]);
  return {
    spec, prior, hs: integerNetwork(spec.h_s, tensors), sigmaTable: sigmaTable(spec.sigma_min),
    meanScale: Boolean(spec.mean_scale), M: spec.M, N: spec.N, gsHalo: spec.g_s_halo,
  };
}

/** Models from a folder URL holding ``index.json`` ({model id hex: name}) and each model's
 * ``NAME.runtime.json``, ``NAME.safetensors`` and ``NAME.g_s.onnx``; each model is fetched once. */
export function httpModels(base) {
  const url = (name) => new URL(name, base).href;
  let index = null;
  const loaded = new Map();
  async function bytes(name) {
    const response = await fetch(url(name));
    if (!response.ok) throw new LrcodecError(`cannot fetch ${name} (${response.status})`);
    return new Uint8Array(await response.arrayBuffer());
  }
  return {
    async find(modelId) {
      index ??= bytes("index.json").then((b) => JSON.parse(new TextDecoder().decode(b)));
      const name = (await index.catch((e) => { index = null; throw e; }))[modelId];
      if (!name) return null;
      if (!loaded.has(name)) {
        loaded.set(name, (async () => ({
          spec: JSON.parse(new TextDecoder().decode(await bytes(`${name}.runtime.json`))),
          weights: await bytes(`${name}.safetensors`), gs: await bytes(`${name}.g_s.onnx`),
        }))().catch((e) => { loaded.delete(name); throw e; }));  // a failed fetch is tried again next time
      }
      return loaded.get(name);
    },
  };
}
