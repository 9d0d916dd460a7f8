// Range decoding of integer symbols as lrcodec/format/entropy.py does it with constriction 0.5
// (stream.queue.RangeDecoder: 32-bit words, a 64-bit state, 24-bit precision; Categorical(perfect=False)).
// The 64-bit state is held as two 32-bit halves in doubles, so every step is exact integer arithmetic.
// Like the Python decoder, a payload must re-encode to its very words: trailing data, a short payload
// or other tables are errors, never an image.

import { LrcodecError } from "./errors.js";

class InvalidData extends Error {}  // data no encoder wrote with these tables

const TWO32 = 2 ** 32, TWO16 = 2 ** 16;
const TWO24 = 2 ** 24;  // the coder's precision: probabilities out of 2**24, so scale = range >> 24
const SIGMA_LEVELS = 256, SIGMA_MAX = 256.0;
export const ALPHABET_LIMIT = 4096;

/** entropy.sigma_table: sigma_min * r**i by repeated multiplication. */
export function sigmaTable(sigmaMin, levels = SIGMA_LEVELS, sigmaMax = SIGMA_MAX) {
  const ratio = Math.pow(sigmaMax / sigmaMin, 1.0 / (levels - 1));  // tests pin the table against Python's
  const out = new Float64Array(levels);
  for (let i = 0, s = sigmaMin; i < levels; i++, s *= ratio) out[i] = s;
  return out;
}

const CRC_TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c >>> 0;
}

/** zlib's CRC-32 of byte arrays in turn (entropy.crc). */
export function crc32(...arrays) {
  let c = 0xffffffff;
  for (const a of arrays) {
    const bytes = a instanceof Uint8Array ? a : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** The coding order of keys (entropy.Groups): for each present key ascending, its elements in order. */
export function groupsOf(keys) {
  let max = 0;
  for (let i = 0; i < keys.length; i++) if (keys[i] > max) max = keys[i];
  const counts = new Int32Array(max + 1);
  for (let i = 0; i < keys.length; i++) counts[keys[i]]++;
  const start = new Int32Array(max + 2);
  for (let k = 0; k <= max; k++) start[k + 1] = start[k] + counts[k];
  const order = new Int32Array(keys.length), at = start.slice(0, max + 1);
  for (let i = 0; i < keys.length; i++) order[at[keys[i]]++] = i;
  const present = [];
  for (let k = 0; k <= max; k++) if (counts[k]) present.push(k);
  return { order, keys: present, counts: present.map((k) => counts[k]) };
}

/** constriction's fast quantization of a frequency table into its CDF (K + 1 entries, last 2**24). */
export function categoricalCdf(table) {
  const K = table.length;
  let total = 0;
  for (let i = 0; i < K; i++) total += table[i];  // integers below 2**53: exact
  const scale = (TWO24 - K) / total;
  const cdf = new Float64Array(K + 1);
  let cumulative = 0;
  for (let i = 0; i < K; i++) {
    cdf[i] = Math.floor(cumulative * scale) + i;
    cumulative += table[i];
  }
  cdf[K] = TWO24;
  return cdf;
}

// ------------------------------------------------ 64-bit helpers on (hi, lo) pairs of 32-bit halves

/** s * p for s < 2**40 and p < 2**26, as [hi, lo]. */
function mul(s, p) {
  const sh = Math.floor(s / TWO32), sl = s - sh * TWO32;
  const a = Math.floor(sl / TWO16), b = sl - a * TWO16;
  const ap = a * p, bp = b * p;  // < 2**42 each
  const apHi = Math.floor(ap / TWO16);
  const low = bp + (ap - apHi * TWO16) * TWO16;  // < 2**43
  const carry = Math.floor(low / TWO32);
  return [sh * p + apHi + carry, low - carry * TWO32];
}

const scaleOf = (rh, rl) => rh * 256 + Math.floor(rl / TWO24);  // range >> 24

class RangeDecoder {
  constructor(words) {
    this.words = words;  // Uint32Array
    this.pos = 0;
    // The decoder needs only point - lower (mod 2**64) and range.
    this.rh = TWO32 - 1; this.rl = TWO32 - 1;
    this.dh = this.next(); this.dl = this.next();
  }

  next() {
    return this.pos < this.words.length ? this.words[this.pos++] : 0;
  }

  /** The next symbol (0..K-1) under a CDF from ``categoricalCdf``; throws on data no encoder wrote. */
  decode(cdf) {
    const scale = scaleOf(this.rh, this.rl);
    let q = Math.floor((this.dh * TWO32 + this.dl) / scale);  // within 1 of the true quotient
    if (q >= TWO24 + 2) throw new InvalidData();
    for (;;) {  // correct q to floor(diff / scale) exactly
      const [ph, pl] = mul(scale, q);
      if (ph > this.dh || (ph === this.dh && pl > this.dl)) { q--; continue; }
      const [nh, nl] = mul(scale, q + 1);
      if (nh < this.dh || (nh === this.dh && nl <= this.dl)) { q++; continue; }
      break;
    }
    if (q >= TWO24) throw new InvalidData();
    let lo = 0, hi = cdf.length - 1;  // the symbol s with cdf[s] <= q < cdf[s + 1]
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] <= q) lo = mid; else hi = mid;
    }
    const [ch, cl] = mul(scale, cdf[lo]);
    let dl = this.dl - cl, dh = this.dh - ch;
    if (dl < 0) { dl += TWO32; dh -= 1; }
    const [rh, rl] = mul(scale, cdf[lo + 1] - cdf[lo]);
    if (rh === 0) {  // range below 2**32 (and so diff): shift a word in
      this.rh = rl; this.rl = 0; this.dh = dl; this.dl = this.next();
    } else {
      this.rh = rh; this.rl = rl; this.dh = dh; this.dl = dl;
    }
    return lo;
  }
}

/** constriction's RangeEncoder, checking each word it writes against the payload instead of storing it. */
class CheckingEncoder {
  constructor(words) {
    this.words = words;
    this.pos = 0;
    this.ok = true;
    this.lh = 0; this.ll = 0; this.rh = TWO32 - 1; this.rl = TWO32 - 1;
    this.inverted = 0; this.firstInverted = 0;  // constriction's EncoderSituation
  }

  write(word) {
    if (this.pos >= this.words.length || this.words[this.pos] !== word) this.ok = false;
    this.pos++;
  }

  encode(cum, prob) {
    const scale = scaleOf(this.rh, this.rl);
    [this.rh, this.rl] = mul(scale, prob);
    const [ch, cl] = mul(scale, cum);
    let nl = this.ll + cl, nh = this.lh + ch;
    if (nl >= TWO32) { nl -= TWO32; nh += 1; }
    const wrapped = nh >= TWO32;
    if (wrapped) nh -= TWO32;
    if (this.inverted && !this.overflows(nh, nl)) {
      const [first, rest] = wrapped ? [(this.firstInverted + 1) >>> 0, 0] : [this.firstInverted, TWO32 - 1];
      this.write(first);
      for (let i = 1; i < this.inverted; i++) this.write(rest);
      this.inverted = 0;
    }
    this.lh = nh; this.ll = nl;
    if (this.rh === 0) {
      this.rh = this.rl; this.rl = 0;
      const word = this.lh;
      this.lh = this.ll; this.ll = 0;
      if (this.inverted) this.inverted++;
      else if (!this.overflows(this.lh, this.ll)) this.write(word);
      else { this.inverted = 1; this.firstInverted = word; }
    }
  }

  /** Whether lower + range wraps past 2**64. */
  overflows(lh, ll) {
    let h = lh + this.rh;
    if (ll + this.rl >= TWO32) h += 1;
    return h >= TWO32;
  }

  /** Whether the words written and the seal equal the payload, word for word, and nothing more. */
  finish() {
    if (!(this.rh === TWO32 - 1 && this.rl === TWO32 - 1)) {  // no seal for an empty stream
      let pl = this.ll + (TWO32 - 1), ph = this.lh;  // point = lower + 2**32 - 1
      if (pl >= TWO32) { pl -= TWO32; ph += 1; }
      const wrapped = ph >= TWO32;
      if (wrapped) ph -= TWO32;
      if (this.inverted) {
        const [first, rest] = wrapped ? [(this.firstInverted + 1) >>> 0, 0] : [this.firstInverted, TWO32 - 1];
        this.write(first);
        for (let i = 1; i < this.inverted; i++) this.write(rest);
      }
      this.write(ph);
      let uh = this.lh + this.rh;
      if (this.ll + this.rl >= TWO32) uh += 1;
      if (uh % TWO32 === ph) this.write(0);
    }
    return this.ok && this.pos === this.words.length;
  }
}

/** A payload's little-endian 32-bit words (its length a multiple of 4). */
export function wordsOf(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), words = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < words.length; i++) words[i] = view.getUint32(4 * i, true);
  return words;
}

/** Range-coded words read symbol by symbol, each symbol re-encoded as it is read, so that ``ends`` can
 * tell whether the words are exactly these symbols' (the Python decoder's re-encode check). ``bad()``
 * is the error for data no encoder wrote. */
export class SymbolReader {
  constructor(words, bad) {
    this.words = words;
    this.decoder = new RangeDecoder(words);
    this.checker = new CheckingEncoder(words);
    this.bad = bad;
  }

  /** The next symbol (0..K-1) under a CDF from ``categoricalCdf``. */
  next(cdf) {
    let s;
    try {
      s = this.decoder.decode(cdf);
    } catch (e) {
      if (e instanceof InvalidData) throw this.bad();
      throw e;
    }
    this.checker.encode(cdf[s], cdf[s + 1] - cdf[s]);
    return s;
  }

  /** Whether the symbols so far already need more words than there are. */
  get overrun() {
    return this.checker.pos > this.words.length;
  }

  /** Whether the words end exactly where the symbols so far end. */
  ends() {
    return this.checker.finish();
  }
}

/** A payload decoded part by part (entropy.PayloadDecoder); ``finish`` re-encodes and compares. */
export class PayloadDecoder {
  constructor(payload, name) {
    if (payload.length % 4) throw new LrcodecError(`corrupted lrcodec file (${name} payload length is not a multiple of 4)`);
    this.reader = new SymbolReader(wordsOf(payload), () =>
      new LrcodecError(`invalid lrcodec file (its ${name} payload is not a range-coder stream this model wrote)`));
    this.name = name;
  }

  /** The next part's symbols (Int32Array, flat in element order) for groups with tables (rows of K), lo. */
  take(groups, tables, lo) {
    const out = new Int32Array(groups.order.length);
    let at = 0;
    groups.counts.forEach((count, g) => {
      const cdf = categoricalCdf(tables[g]);
      for (let i = 0; i < count; i++, at++) out[groups.order[at]] = this.reader.next(cdf) + lo;
    });
    return out;
  }

  finish() {
    if (!this.reader.ends()) {
      throw new LrcodecError(`invalid lrcodec file (its ${this.name} payload does not end where its symbols end)`);
    }
  }
}
