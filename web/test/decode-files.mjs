// Decodes files in node and prints, as JSON, each one's outcome: its error message, or digests of its
// symbols and y_hat (an overfitted file's: of its latent grids), with --alpha of its alpha plane, with
// --pixels its RGBA pixels (base64).
//     node test/decode-files.mjs [--alpha] [--pixels] FILE...
// tests/web/ compares these with the Python decoder's on the same files.
import { readFileSync } from "node:fs";
import { decode, decodeLatents } from "../src/codec.js";
import { LrcodecError } from "../src/errors.js";
import { digest, gridDigest, localModels } from "./local.js";

const models = localModels();
const pixels = process.argv.includes("--pixels"), alpha = process.argv.includes("--alpha");
const out = {};
for (const file of process.argv.slice(2).filter((a) => !a.startsWith("--"))) {
  try {
    const data = readFileSync(file);
    const result = pixels ? await decode(data, { models }) : await decodeLatents(data, { models });
    const l = result.latents;
    out[file] = l.grids ? { grids: gridDigest(l) }
      : { symbols: digest(l.zSymbols, l.ySymbols, l.sigmaIndex), latents: digest(l.zSymbols, l.ySymbols, l.sigmaIndex, l.yHat) };
    if (alpha && result.alpha) out[file].alpha = digest(result.alpha);
    if (pixels) out[file].rgba = Buffer.from(result.rgba.buffer).toString("base64");
  } catch (e) {
    if (!(e instanceof LrcodecError)) throw e;
    out[file] = { error: e.message };
  }
}
console.log(JSON.stringify(out));
