// Float64 matrix products on onnxruntime-web's MatMul: the integer network's sums, which are exact in
// any order (integers below 2**50), at the speed of a WebAssembly GEMM rather than of JavaScript loops.
// The one-node graph is written here, as ONNX's protobuf, rather than shipped as a file.

import { onnxruntime } from "./onnxruntime.js";

let session = null;

function varint(n) {
  const out = [];
  for (; n > 127; n = Math.floor(n / 128)) out.push((n % 128) | 128);
  out.push(n);
  return out;
}

const field = (number, bytes) => [...varint((number << 3) | 2), ...varint(bytes.length), ...bytes];
const int = (number, n) => [...varint(number << 3), ...varint(n)];
const text = (s) => Array.from(new TextEncoder().encode(s));

/** ModelProto of y = MatMul(a, b), doubles of any shape. */
function matmulGraph() {
  const tensor = (name, dims) => field(1, text(name)).concat(field(2, field(1, [
    ...int(1, 11), ...field(2, dims.flatMap((d) => field(1, field(2, text(d))))),
  ])));
  const node = [...field(1, text("a")), ...field(1, text("b")), ...field(2, text("y")), ...field(4, text("MatMul"))];
  const graph = [...field(1, node), ...field(2, text("matmul64")), ...field(11, tensor("a", ["m", "k"])),
    ...field(11, tensor("b", ["k", "n"])), ...field(12, tensor("y", ["m", "n"]))];
  return new Uint8Array([...int(1, 8), ...field(8, [...field(1, []), ...int(2, 17)]), ...field(7, graph)]);
}

/** onnxruntime-web started and the product's session made (a page may call it early, to overlap the
 * WebAssembly's compilation with fetching the file). */
export async function ready() {
  const ort = await onnxruntime();
  session ??= ort.InferenceSession.create(matmulGraph(), { executionProviders: ["wasm"] });
  return [ort, await session];
}

/** a (m x k) times b (k x n), Float64Arrays in row-major order -> Float64Array (m x n). */
export async function matmul(a, b, m, k, n) {
  const [ort, s] = await ready();
  const out = await s.run({ a: new ort.Tensor("float64", a, [m, k]), b: new ort.Tensor("float64", b, [k, n]) });
  return out.y.data;
}
