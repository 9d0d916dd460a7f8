// Every golden file decodes in node to the symbols and y_hat pinned for the Python decoder, bit for bit
// (tests/golden/golden.json), its alpha to its pinned plane; files the page cannot read say why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decode, decodeLatents } from "../src/codec.js";
import { LrcodecError } from "../src/errors.js";
import { ROOT, digest, gridDigest, localModels } from "./local.js";

const GOLDEN = `${ROOT}tests/golden`;
const models = localModels();

const pinned = JSON.parse(readFileSync(`${GOLDEN}/golden.json`));
for (const [name, expected] of Object.entries(pinned)) {
  test(`${name} decodes to its pins`, async () => {
    const data = readFileSync(`${GOLDEN}/${name}`);
    if (expected.format_version === 1) {
      await assert.rejects(decodeLatents(data, { models }), { name: "LrcodecError", message: /format 1 file does not decode in the page/ });
      return;
    }
    const { header, alpha, latents: l } = await decodeLatents(data, { models });
    assert.equal(header.version, expected.format_version);
    assert.equal(digest(l.zSymbols, l.ySymbols, l.sigmaIndex), expected.symbols_sha256);
    assert.equal(digest(l.zSymbols, l.ySymbols, l.sigmaIndex, l.yHat), expected.latents_sha256);
    if (expected.alpha_sha256) {
      assert.equal(digest(alpha), expected.alpha_sha256);
    } else {
      assert.equal(alpha, null);
    }
  });
}

test("the other families' golden files name their model as missing", async () => {
  const families = JSON.parse(readFileSync(`${GOLDEN}/families.json`));
  for (const name of Object.keys(families)) {
    await assert.rejects(decodeLatents(readFileSync(`${GOLDEN}/${name}`), { models }),
      (e) => e instanceof LrcodecError && e.message.includes("which this page does not have"));
  }
});

const overfit = JSON.parse(readFileSync(`${GOLDEN}/overfit.json`));
for (const [name, expected] of Object.entries(overfit)) {
  test(`${name} (the overfitted family) decodes to its pinned latents`, async () => {
    const { model, latents } = await decodeLatents(readFileSync(`${GOLDEN}/${name}`));  // no models: the decoder is in the file
    assert.equal(model.spec.name, expected.profile);
    assert.equal(gridDigest(latents), expected.symbols_sha256);
  });
}

test("a whole decode gives RGBA of the image's size, alpha in the fourth channel", async () => {
  const image = await decode(readFileSync(`${GOLDEN}/lrc-mshp-q3-alpha.lrc`), { models });
  assert.equal(image.rgba.length, 4 * image.width * image.height);
  assert.deepEqual(Array.from(image.rgba.filter((_, i) => i % 4 === 3)), Array.from(image.alpha));
  const opaque = await decode(readFileSync(`${GOLDEN}/lrc-mshp-q3-plain.lrc`), { models });
  assert.equal(opaque.alpha, null);
  assert.ok(opaque.rgba.every((v, i) => i % 4 !== 3 || v === 255));
});
