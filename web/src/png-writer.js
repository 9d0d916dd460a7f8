// A PNG of decoded RGBA pixels, with the file's ICC profile as an iCCP chunk: shown in an <img>, the
// browser colour-manages it exactly as it does any image with an ICC profile, and it is what the page's
// "PNG" link saves.

import { crc32 } from "./entropy.js";

async function deflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function chunk(type, body) {
  const out = new Uint8Array(12 + body.length), view = new DataView(out.buffer);
  view.setUint32(0, body.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(body, 8);
  view.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

/** PNG bytes of width x height RGBA pixels, with an ICC profile (bytes) or none. */
export async function encodePng(rgba, width, height, icc = null) {
  const header = new Uint8Array(13), view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 6, 0, 0, 0], 8);  // 8 bits, RGBA, deflate, adaptive filters, not interlaced
  const raw = new Uint8Array(height * (4 * width + 1));
  for (let y = 0; y < height; y++) raw.set(rgba.subarray(4 * width * y, 4 * width * (y + 1)), y * (4 * width + 1) + 1);
  const chunks = [chunk("IHDR", header)];
  if (icc) chunks.push(chunk("iCCP", new Uint8Array([...new TextEncoder().encode("ICC profile"), 0, 0, ...(await deflate(icc))])));
  chunks.push(chunk("IDAT", await deflate(raw)), chunk("IEND", new Uint8Array(0)));
  return new Blob([new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), ...chunks], { type: "image/png" });
}
