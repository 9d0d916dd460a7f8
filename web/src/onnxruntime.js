// Where onnxruntime-web comes from: in a page, its import map's "onnxruntime-web", in node, the package
// from node_modules; in a worker, which has no import map, the module URL its page hands it.

let moduleUrl = null;

/** Take onnxruntime-web from this URL from now on (a worker's). */
export function useOnnxruntime(url) {
  moduleUrl = url;
}

/** The onnxruntime-web module. */
export function onnxruntime() {
  return moduleUrl ? import(moduleUrl) : import("onnxruntime-web");
}
