// The viewer: decodes the .lrc files dropped on the page or chosen, and those of the folder that
// `lrcodec serve DIR` serves (its files.json), one at a time in a worker (decode-worker.js), each into a
// canvas with its size, bpp and metadata. An image with an ICC profile is shown as a PNG carrying that
// profile, which the browser colour-manages as it does any image; the others are sRGB, as the canvas
// assumes.

import { encodePng } from "./src/png-writer.js";
import { REFINE_METHODS } from "./src/bitstream.js";

const testing = location.hash === "#test";  // keep each file's pixels and latents for the browser tests
const worker = new Worker(new URL("decode-worker.js", import.meta.url), { type: "module" });
worker.postMessage({ setup: {
  ortUrl: import.meta.resolve("onnxruntime-web"),  // the import map's: a worker has none
  wasmPaths: new URL("vendor/onnxruntime-web/", location.href).href,
  numThreads: self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1,
  modelsUrl: new URL("models/", location.href).href, testing,
} });
const waiting = new Map();
let next = 0;
worker.onmessage = ({ data }) => {
  const { resolve, reject } = waiting.get(data.id);
  waiting.delete(data.id);
  if (data.error) reject(new Error(data.error));
  else resolve(data.image);
};

/** The worker's decode of a file's bytes: {width, height, rgba, alpha, metadata, header, model, fileBytes}. */
function decode(bytes) {
  return new Promise((resolve, reject) => {
    waiting.set(++next, { resolve, reject });
    worker.postMessage({ id: next, bytes }, [bytes.buffer]);
  });
}

const list = document.getElementById("files"), status = document.getElementById("status");
const results = (window.lrcodec = { results: {}, pending: 0 });
let queue = Promise.resolve();

function show(name, bytes) {
  const figure = document.createElement("figure"), caption = document.createElement("figcaption");
  caption.innerHTML = `<span class="name"></span> <span class="state">decoding…</span>`;
  caption.querySelector(".name").textContent = name;
  figure.append(caption);
  list.append(figure);
  results.pending++;
  queue = queue.then(() => decodeInto(figure, caption, name, bytes)).finally(() => {
    results.pending--;
    status.textContent = results.pending ? `${results.pending} to decode` : "";
  });
}

async function decodeInto(figure, caption, name, bytes) {
  const state = caption.querySelector(".state");
  const start = performance.now();
  try {
    const image = await decode(await bytes());
    const canvas = document.createElement("canvas");
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.getContext("2d").putImageData(new ImageData(image.rgba, image.width, image.height), 0, 0);
    const ms = performance.now() - start;
    const png = await encodePng(image.rgba, image.width, image.height, image.metadata.icc);
    const link = URL.createObjectURL(png);
    if (image.metadata.icc) {  // shown colour-managed; the canvas keeps the decoded values for reading
      const img = new Image(image.width, image.height);
      img.src = link;
      img.alt = name;
      canvas.hidden = true;
      figure.prepend(img);
    }
    figure.prepend(canvas);
    const h = image.header, size = image.fileBytes;
    state.textContent = "";
    const rows = [
      ["size", `${h.width} × ${h.height}, ${size.toLocaleString()} bytes, ${(8 * size / (h.width * h.height)).toFixed(4)} bpp`],
      ["model", `${image.model} (format ${h.version}${h.version === 4 ? ", its decoder in the file" : ""}${h.uq ? ", universal quantization" : ""}` +
        `${h.refined && h.version !== 4 ? `, refined: ${REFINE_METHODS[h.method]}` : ""})`],
      ["colours", `${h.mode === "L" ? "greyscale" : "RGB"}${image.alpha ? " with alpha" : ""}; ${image.metadata.icc
        ? `ICC profile (${image.metadata.icc.length} bytes), colour-managed by the browser` : "sRGB, no ICC profile"}`],
      ["metadata", ["exif", "xmp"].filter((k) => image.metadata[k]).map((k) => `${k.toUpperCase()} ${image.metadata[k].length} bytes`).join(", ") || "none"],
      ["decoded", `in ${ms.toFixed(0)} ms`],
    ];
    const dl = document.createElement("dl");
    for (const [k, v] of rows) dl.append(Object.assign(document.createElement("dt"), { textContent: k }), Object.assign(document.createElement("dd"), { textContent: v }));
    const save = Object.assign(document.createElement("a"), { href: link, download: name.replace(/\.lrc$/, "") + ".png", textContent: "save as PNG" });
    caption.append(dl, save);
    results.results[name] = { width: h.width, height: h.height, ms, mode: h.mode, alpha: Boolean(image.alpha), metadata: Object.keys(image.metadata), ...(testing && { rgba: image.rgba, latents: image.latents }) };
  } catch (e) {
    state.textContent = e.message;
    state.className = "error";
    results.results[name] = { error: e.message };
  }
}

function addFiles(files) {
  for (const file of files) show(file.name, async () => new Uint8Array(await file.arrayBuffer()));
}

document.getElementById("pick").addEventListener("change", (e) => addFiles(e.target.files));
addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dragging"); });
addEventListener("dragleave", () => document.body.classList.remove("dragging"));
addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("dragging");
  addFiles(e.dataTransfer.files);
});

// The served folder's files, where a server lists them.
const listing = await fetch("files.json").then((r) => (r.ok ? r.json() : null)).catch(() => null);
if (listing) {
  status.textContent = listing.files.length ? "" : `no .lrc files in ${listing.folder}`;
  for (const file of listing.files) {
    show(file, async () => {
      const response = await fetch(`files/${file.split("/").map(encodeURIComponent).join("/")}`);
      if (!response.ok) throw new Error(`cannot fetch ${file} (${response.status})`);
      return new Uint8Array(await response.arrayBuffer());
    });
  }
}
results.listed = true;
