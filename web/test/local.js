// What the node tests share: the shipped models read from the checkout's models/ folder, as
// ``httpModels`` fetches them, and SHA-256 digests as tests/golden/golden.json pins them.
import { readFileSync, readdirSync } from "node:fs";
import { createHash } from "node:crypto";

export const ROOT = new URL("../../", import.meta.url).pathname;

export function localModels(dir = `${ROOT}models`) {
  const index = {}, cache = new Map();
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".runtime.json"))) {
    const spec = JSON.parse(readFileSync(`${dir}/${f}`));
    index[spec.model_id] = spec.name;
  }
  return {
    async find(id) {
      const name = index[id];
      if (!name) return null;
      if (!cache.has(name)) {
        cache.set(name, {
          spec: JSON.parse(readFileSync(`${dir}/${name}.runtime.json`)),
          weights: new Uint8Array(readFileSync(`${dir}/${name}.safetensors`)),
          gs: new Uint8Array(readFileSync(`${dir}/${name}.g_s.onnx`)),
        });
      }
      return cache.get(name);
    },
  };
}

/** An overfitted file's latents as lrcodec.app.probe.grid_digest hashes them: each level's shape and
 * values as int64s. */
export function gridDigest({ grids, shapes }) {
  const int64 = (values) => {
    const wide = new Int32Array(2 * values.length);
    values.forEach((v, i) => { wide[2 * i] = v; wide[2 * i + 1] = v < 0 ? -1 : 0; });
    return wide;
  };
  return digest(...grids.flatMap((g, n) => [int64(shapes[n]), int64(g)]));
}

/** SHA-256 (hex) of typed arrays' bytes in turn: lrcodec.app.probe's digests. */
export function digest(...arrays) {
  const h = createHash("sha256");
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest("hex");
}
