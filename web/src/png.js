// The alpha record of format 5 (docs/format.md, "Format version 5: alpha"): a constant, or a PNG of
// 8-bit greyscale, not interlaced, the image's size. Decoded here (inflate and PNG's five filters)
// rather than by the browser's image decoder, so that node reads it too, no colour management touches
// the values, and it takes exactly the PNGs lrcodec/format/alpha.py takes.

import { LrcodecError } from "./errors.js";
import { crc32 } from "./entropy.js";
import { inflate } from "./inflate.js";

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** The alpha plane (Uint8Array, width * height) of an alpha record. */
export function alphaPlane(record, width, height) {
  const bad = () => new LrcodecError("corrupted lrcodec file (invalid alpha section)");
  if (record.length === 2 && record[0] === 0) return new Uint8Array(width * height).fill(record[1]);
  if (record.length < 1 + SIGNATURE.length || record[0] !== 1) throw bad();
  const png = record.subarray(1), v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  if (SIGNATURE.some((b, i) => png[i] !== b)) throw bad();
  const idat = [], kinds = [];
  let at = SIGNATURE.length, header = null;
  while (at < png.length) {  // the chunks fill the PNG: IHDR only first, one run of IDAT, an empty IEND only last
    if (png.length - at < 12) throw bad();
    const length = v.getUint32(at), type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    if (length > png.length - at - 12) throw bad();
    const body = png.subarray(at + 8, at + 8 + length);
    if (crc32(png.subarray(at + 4, at + 8 + length)) !== v.getUint32(at + 8 + length)) throw bad();
    if ((type === "IHDR") !== (at === SIGNATURE.length) || (type === "IEND") !== (at + 12 + length === png.length)) throw bad();
    if (type === "IHDR") {
      if (length !== 13) throw bad();
      header = { width: v.getUint32(at + 8), height: v.getUint32(at + 12), depth: body[8], colour: body[9], rest: [body[10], body[11], body[12]] };
      if (header.width !== width || header.height !== height || header.depth !== 8 || header.colour !== 0
          || header.rest.some((b) => b !== 0)) {
        throw bad();
      }
    } else if (type === "IDAT") {
      if (kinds.includes("IDAT") && kinds[kinds.length - 1] !== "IDAT") throw bad();
      idat.push(body);
    } else if (type === "IEND" && length !== 0) throw bad();
    kinds.push(type);
    at += 12 + length;
  }
  if (kinds[kinds.length - 1] !== "IEND") throw bad();
  const stride = width + 1;
  let raw;
  try {
    raw = inflate(concat(idat), height * stride);
  } catch {
    throw bad();
  }
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * stride], row = raw.subarray(y * stride + 1, (y + 1) * stride);
    const o = y * width, up = y ? out.subarray(o - width, o) : null;
    for (let x = 0; x < width; x++) {
      const a = x ? out[o + x - 1] : 0, b = up ? up[x] : 0, c = x && up ? up[x - 1] : 0;
      let p;
      switch (filter) {
        case 0: p = 0; break;
        case 1: p = a; break;
        case 2: p = b; break;
        case 3: p = (a + b) >> 1; break;
        case 4: { const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
          p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c; break; }
        default: throw bad();
      }
      out[o + x] = (row[x] + p) & 0xff;
    }
  }
  return out;
}
