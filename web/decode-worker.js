// The viewer's decoder, off the page's main thread (as Squoosh runs its codecs), so that the page stays
// responsive while a large file decodes. Messages: {setup: {ortUrl, wasmPaths, numThreads, modelsUrl,
// testing}} once, then {id, bytes} -> {id, image} (its RGBA buffer transferred) or {id, error}.

import { decode } from "./src/codec.js";
import { LrcodecError } from "./src/errors.js";
import { httpModels } from "./src/runtime.js";
import { onnxruntime, useOnnxruntime } from "./src/onnxruntime.js";
import { ready } from "./src/gemm.js";

let models = null, testing = false, setUp = null;

self.onmessage = async ({ data }) => {
  if (data.setup) {
    const { ortUrl, wasmPaths, numThreads, modelsUrl } = data.setup;
    useOnnxruntime(ortUrl);
    models = httpModels(modelsUrl);
    testing = data.setup.testing;
    setUp = onnxruntime().then((ort) => {
      Object.assign(ort.env.wasm, { wasmPaths, numThreads });
      ready();  // compile the WebAssembly while the first file is fetched
    });
    return;
  }
  try {
    await setUp;
    const image = await decode(data.bytes, { models });
    const { rgba, latents, ...rest } = image;
    self.postMessage({ id: data.id, image: { ...rest, rgba, ...(testing && { latents }) } }, [rgba.buffer]);
  } catch (e) {
    self.postMessage({ id: data.id, error: e instanceof LrcodecError ? e.message : `internal error: ${e.message}` });
  }
};
