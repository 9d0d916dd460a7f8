// What the node tests share: the shipped models read from the checkout's models/ folder, as
// ``httpModels`` fetches them, and SHA-256 digests as tests/golden/golden.json pins them.
import { readFileSync, readdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { asInt64 } from "../src/overfit.js";

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
  return digest(...grids.flatMap((g, n) => [asInt64(shapes[n]), asInt64(g)]));
}

/** SHA-256 (hex) of typed arrays' bytes in turn: lrcodec.app.probe's digests. */
export function digest(...arrays) {
  const h = createHash("sha256");
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest("hex");
}
