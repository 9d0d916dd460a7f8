// zlib's inflate (RFC 1950/1951), written out so that node and every browser accept exactly the streams
// Python's zlib accepts for the metadata and alpha records: a valid header, the Adler-32 checked, the
// stream ending where the data ends, and never more output than stated (DecompressionStream would pass
// trailing data in node, and grows without a cap).

const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
  4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

class Bad extends Error {}

/** A canonical Huffman code of code lengths: {counts, symbols} for bit-by-bit decoding (zlib's puff). */
function huffman(lengths) {
  const counts = new Uint16Array(16), offsets = new Uint16Array(16), symbols = new Uint16Array(lengths.length);
  for (const l of lengths) counts[l]++;
  counts[0] = 0;
  let left = 1;
  for (let l = 1; l < 16; l++) {
    left = 2 * left - counts[l];
    if (left < 0) throw new Bad();  // over-subscribed
  }
  for (let l = 1; l < 15; l++) offsets[l + 1] = offsets[l] + counts[l];
  lengths.forEach((l, s) => { if (l) symbols[offsets[l]++] = s; });
  return { counts, symbols, incomplete: left > 0 };
}

/** The data of a zlib stream that inflates to exactly ``size`` bytes; throws otherwise. */
export function inflate(input, size) {
  let pos = 2, bitBuf = 0, bitCount = 0, at = 0;
  if (size > 1032 * input.length + 64) throw new Bad();  // beyond deflate's largest expansion: never allocate it
  const out = new Uint8Array(size);
  if (input.length < 6 || (input[0] & 0x0f) !== 8 || input[0] >> 4 > 7 || (input[0] * 256 + input[1]) % 31 || input[1] & 0x20) {
    throw new Bad();
  }
  const bits = (n) => {
    while (bitCount < n) {
      if (pos >= input.length) throw new Bad();
      bitBuf |= input[pos++] << bitCount;
      bitCount += 8;
    }
    const v = bitBuf & ((1 << n) - 1);
    bitBuf >>>= n;
    bitCount -= n;
    return v;
  };
  const decodeSymbol = (h) => {
    let code = 0, first = 0, index = 0;
    for (let l = 1; l < 16; l++) {
      code |= bits(1);
      const count = h.counts[l];
      if (code - count < first) return h.symbols[index + (code - first)];
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    throw new Bad();
  };
  const put = (byte) => {
    if (at >= size) throw new Bad();
    out[at++] = byte;
  };
  let last = 0;
  while (!last) {
    last = bits(1);
    const type = bits(2);
    if (type === 0) {
      bitBuf = 0; bitCount = 0;  // to a byte boundary
      if (pos + 4 > input.length) throw new Bad();
      const len = input[pos] | (input[pos + 1] << 8), nlen = input[pos + 2] | (input[pos + 3] << 8);
      pos += 4;
      if (len !== (~nlen & 0xffff) || pos + len > input.length) throw new Bad();
      for (let i = 0; i < len; i++) put(input[pos++]);
      continue;
    }
    let lit, dist;
    if (type === 1) {
      const l = new Uint8Array(288).fill(8, 0, 144).fill(9, 144, 256).fill(7, 256, 280).fill(8, 280, 288);
      lit = huffman(l);
      dist = huffman(new Uint8Array(30).fill(5));
    } else if (type === 2) {
      const nlen = bits(5) + 257, ndist = bits(5) + 1, ncode = bits(4) + 4;
      if (nlen > 286 || ndist > 30) throw new Bad();
      const cl = new Uint8Array(19);
      for (let i = 0; i < ncode; i++) cl[ORDER[i]] = bits(3);
      const clh = huffman(cl);
      if (clh.incomplete) throw new Bad();
      const lengths = new Uint8Array(nlen + ndist);
      for (let i = 0; i < nlen + ndist;) {
        const s = decodeSymbol(clh);
        if (s < 16) { lengths[i++] = s; continue; }
        let repeat, value = 0;
        if (s === 16) {
          if (i === 0) throw new Bad();
          value = lengths[i - 1];
          repeat = 3 + bits(2);
        } else repeat = s === 17 ? 3 + bits(3) : 11 + bits(7);
        if (i + repeat > nlen + ndist) throw new Bad();
        lengths.fill(value, i, i + repeat);
        i += repeat;
      }
      if (!lengths[256]) throw new Bad();
      lit = huffman(lengths.subarray(0, nlen));
      dist = huffman(lengths.subarray(nlen));
      // zlib takes an incomplete code only of one code of length 1 (or, for distances, of none)
      const single = (h) => h.counts[1] === 1 && h.counts.reduce((a, b) => a + b, 0) === 1;
      if ((lit.incomplete && !single(lit)) || (dist.incomplete && !single(dist) && dist.counts.some(Boolean))) throw new Bad();
    } else throw new Bad();
    for (;;) {
      const s = decodeSymbol(lit);
      if (s < 256) { put(s); continue; }
      if (s === 256) break;
      if (s > 285) throw new Bad();
      const length = LENGTH_BASE[s - 257] + bits(LENGTH_EXTRA[s - 257]);
      const d = decodeSymbol(dist);
      if (d > 29) throw new Bad();
      const distance = DIST_BASE[d] + bits(DIST_EXTRA[d]);
      if (distance > at) throw new Bad();
      for (let i = 0; i < length; i++) put(out[at - distance]);
    }
  }
  if (pos + 4 !== input.length || at !== size) throw new Bad();  // the Adler-32, then nothing
  let a = 1, b = 0;
  for (let i = 0; i < size; i++) { a = (a + out[i]) % 65521; b = (b + a) % 65521; }
  const adler = ((input[pos] << 24) | (input[pos + 1] << 16) | (input[pos + 2] << 8) | input[pos + 3]) >>> 0;
  if (adler !== ((b << 16) | a) >>> 0) throw new Bad();
  return out;
}
