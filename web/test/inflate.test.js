// The inflate that reads metadata and alpha records against node's zlib: the same bytes for every
// level and kind of data, and errors for trailing data, a truncated stream or another stated size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { inflate } from "../src/inflate.js";

test("inflate reads what zlib writes, exactly and nothing else", () => {
  let seed = 1;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16;
  for (let t = 0; t < 60; t++) {
    const n = next() % 40000;
    const data = Buffer.from(Array.from({ length: n }, (_, i) => (t % 3 === 0 ? next() : t % 3 === 1 ? i % 17 : 65) & 0xff));
    for (const level of [0, 1, 6, 9]) {
      const z = new Uint8Array(deflateSync(data, { level }));
      assert.deepEqual(Buffer.from(inflate(z, n)), data);
      assert.throws(() => inflate(new Uint8Array([...z, 0]), n));
      assert.throws(() => inflate(z.subarray(0, z.length - 1), n));
      assert.throws(() => inflate(z, n + 1));
      if (n) assert.throws(() => inflate(z, n - 1));
    }
  }
});
