// A mutation fuzz of hostile files: every one ends in an image or an LrcodecError (a one-line message),
// never another exception, and none takes long. Mutations keep the file's CRC valid where they say so,
// so that they reach past the checksum into the header, the metadata and the payloads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decode } from "../src/codec.js";
import { LrcodecError } from "../src/errors.js";
import { crc32 } from "../src/entropy.js";
import { ROOT, localModels } from "./local.js";

const COUNT = Number(process.env.LRCODEC_FUZZ_FILES || 300);
const SEEDS = ["lrc-mshp-q3-plain.lrc", "lrc-mshp-q3-uq.lrc", "lrc-mshp-q3-metadata.lrc", "lrc-mshp-q3-alpha.lrc",
  "lrc-mshp-q3-alpha-constant.lrc", "lrc-mshp-q1-refined.lrc", "overfit-500.lrc", "overfit-2000.lrc"].map((n) => new Uint8Array(readFileSync(`${ROOT}tests/golden/${n}`)));
const models = localModels();

function random(seed) {  // mulberry32: the same files on every run
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function withCrc(bytes) {
  const out = bytes.slice();
  if (out.length >= 8) new DataView(out.buffer).setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

function mutate(rand) {
  const source = SEEDS[Math.floor(rand() * SEEDS.length)];
  let data = source.slice();
  const at = (limit = data.length) => Math.floor(rand() * limit);
  switch (Math.floor(rand() * 6)) {
    case 0: for (let i = 0, n = 1 + at(4); i < n; i++) data[at()] ^= 1 << at(8); break;  // flips, CRC broken
    case 1: for (let i = 0, n = 1 + at(4); i < n; i++) data[at()] ^= 1 << at(8); data = withCrc(data); break;
    case 2: data[at(48)] = at(256); data = withCrc(data); break;  // a header byte
    case 3: data = withCrc(data.slice(0, at())); break;  // truncated
    case 4: { const extra = new Uint8Array(1 + at(64)).map(() => at(256));  // spliced in
      const cut = at(); data = withCrc(new Uint8Array([...data.subarray(0, cut), ...extra, ...data.subarray(cut)])); break; }
    default: for (let i = 48 + at(data.length - 52), n = 1 + at(16); n-- && i < data.length - 4; i++) data[i] = at(256);
      data = withCrc(data);  // a run of payload or metadata bytes
  }
  return data;
}

test(`${COUNT} hostile files end in an image or a one-line error`, async () => {
  const rand = random(46);
  const outcomes = { image: 0, error: 0 };
  for (let i = 0; i < COUNT; i++) {
    const data = mutate(rand), start = performance.now();
    try {
      const image = await decode(data, { models });
      assert.equal(image.rgba.length, 4 * image.width * image.height);
      outcomes.image++;
    } catch (e) {
      if (!(e instanceof LrcodecError)) assert.fail(`file ${i}: ${e.stack}`);
      assert.ok(e.message && !e.message.includes("\n"), `file ${i}: ${e.message}`);
      outcomes.error++;
    }
    assert.ok(performance.now() - start < 10_000, `file ${i} took ${performance.now() - start} ms`);
  }
  assert.ok(outcomes.error > COUNT / 2, JSON.stringify(outcomes));
});
