// The lrcodec container (lrcodec/format/bitstream.py; docs/format.md byte by byte): the header checked
// completely before anything is allocated, the metadata section with each record checked against its
// caps before it is inflated, and format 5's alpha record.

import { LrcodecError } from "./errors.js";
import { crc32, ALPHABET_LIMIT } from "./entropy.js";
import { inflate } from "./inflate.js";

export const HEADER_SIZE = 48;
const TRAILER_SIZE = 4;
export const METADATA_VERSION = 3, OVERFIT_VERSION = 4, ALPHA_VERSION = 5;
const READABLE_VERSIONS = [1, 2, 3, 4, 5];
export const DEFAULT_MAX_PIXELS = 100_000_000;
const MODES = ["RGB", "L"];
export const RECORD_KINDS = ["icc", "exif", "xmp", "alpha"];  // record kinds 1..4 (alpha: format 5 only)
const METADATA_CAP = 16 << 20;
const RECORD_SIZE = 10;
export const FLAG_REFINED = 1, FLAG_UQ = 2, FLAG_SOFT_MEAN = 4;
export const REFINE_METHODS = ["none", "ssl", "linear", "cosine", "atanh", "ste", "noise", "ssl-3c", "linear-3c", "cosine-3c"];

/** The validated header of a file (bitstream.parse_header), with the same one-line errors. */
export function parseHeader(data, maxPixels = DEFAULT_MAX_PIXELS) {
  if (data.length === 0) throw new LrcodecError("empty input: not an lrcodec file");
  const magic = [0x4c, 0x52, 0x43];
  if (data.length < 4 || magic.some((b, i) => i < data.length && data[i] !== b)) {
    throw new LrcodecError("not an lrcodec file (bad magic bytes)");
  }
  if (!READABLE_VERSIONS.includes(data[3])) {
    throw new LrcodecError(`lrcodec format version ${data[3]} is newer than this build reads ` +
      `(versions ${READABLE_VERSIONS.join(", ")}); upgrade lrcodec`);
  }
  if (data.length < HEADER_SIZE + TRAILER_SIZE) throw new LrcodecError("truncated lrcodec file (shorter than its header)");
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const h = {
    version: data[3], modelId: hex(data.subarray(4, 12)), width: v.getUint32(12, true), height: v.getUint32(16, true),
    modeCode: data[20], flags: data[21], method: data[22], softAlpha: data[23], seed: v.getUint32(24, true),
    zmin: v.getInt16(28, true), zmax: v.getInt16(30, true), ymin: v.getInt16(32, true), ymax: v.getInt16(34, true),
    tablesCrc: v.getUint32(36, true), zLength: v.getUint32(40, true), yLength: v.getUint32(44, true),
  };
  let expected = HEADER_SIZE + h.zLength + h.yLength + TRAILER_SIZE;
  if (h.version >= METADATA_VERSION) {
    if (data.length < expected + 4) {
      throw new LrcodecError(`truncated lrcodec file (${data.length} bytes, header says at least ${expected + 4})`);
    }
    const section = v.getUint32(HEADER_SIZE + h.zLength + h.yLength, true);
    if (section > RECORD_KINDS.length * (RECORD_SIZE + METADATA_CAP)) {
      throw new LrcodecError("corrupted lrcodec file (a metadata section larger than the format allows)");
    }
    expected += 4 + section;
  }
  if (data.length < expected) throw new LrcodecError(`truncated lrcodec file (${data.length} bytes, header says ${expected})`);
  if (data.length > expected) throw new LrcodecError(`corrupted lrcodec file (${data.length - expected} unexpected bytes after the end)`);
  if (crc32(data.subarray(0, expected - TRAILER_SIZE)) !== v.getUint32(expected - TRAILER_SIZE, true)) {
    throw new LrcodecError("corrupted lrcodec file (checksum mismatch)");
  }
  if (h.width === 0 || h.height === 0) throw new LrcodecError("corrupted lrcodec file (zero image size)");
  if (h.width * h.height > maxPixels) {
    throw new LrcodecError(`image of ${h.width}x${h.height} exceeds the limit of ${maxPixels} pixels`);
  }
  const softMean = Boolean(h.flags & FLAG_SOFT_MEAN);
  // one-symbol alphabets: never written (ranges hold -1..1), no coder takes them; format 1 never reaches a model here
  if (h.modeCode >= MODES.length || h.method >= REFINE_METHODS.length || h.flags >= 8 || h.zmin >= h.zmax
      || h.ymin >= h.ymax || (h.softAlpha > 0) !== softMean || (softMean && !(h.flags & FLAG_UQ))) {
    throw new LrcodecError("corrupted lrcodec file (invalid header fields)");
  }
  if (h.zmax - h.zmin + 1 > ALPHABET_LIMIT || (h.version >= 2 && h.ymax - h.ymin + 1 > ALPHABET_LIMIT)) {
    throw new LrcodecError("corrupted lrcodec file (symbol alphabet larger than the format allows)");
  }
  h.mode = MODES[h.modeCode];
  h.uq = Boolean(h.flags & FLAG_UQ);
  h.refined = Boolean(h.flags & FLAG_REFINED);
  return h;
}

export function payloads(data, h) {
  const z = data.subarray(HEADER_SIZE, HEADER_SIZE + h.zLength);
  return [z, data.subarray(HEADER_SIZE + h.zLength, HEADER_SIZE + h.zLength + h.yLength)];
}

/** The records of a validated file's metadata section, kind -> bytes (bitstream.records): none before
 * format 3; the alpha record in format 5 only, and there always. */
export function records(data, h) {
  if (h.version < METADATA_VERSION) return {};
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = HEADER_SIZE + h.zLength + h.yLength;
  const end = at + 4 + v.getUint32(at, true), out = {};
  at += 4;
  const bad = () => new LrcodecError("corrupted lrcodec file (invalid metadata section)");
  const kinds = h.version === ALPHA_VERSION ? RECORD_KINDS : RECORD_KINDS.slice(0, 3);
  while (at < end) {
    if (end - at < RECORD_SIZE) throw bad();
    const code = data[at], coding = data[at + 1], stored = v.getUint32(at + 2, true), size = v.getUint32(at + 6, true);
    at += RECORD_SIZE;
    const kind = kinds[code - 1];
    if (!kind || kind in out || coding > 1 || size > METADATA_CAP || stored > end - at || (coding === 0 && stored !== size)
        || Object.keys(out).join() !== kinds.slice(0, code - 1).filter((k) => k in out).join()
        || (kind === "alpha" && coding !== 0)) {
      throw bad();
    }
    let raw = data.subarray(at, at + stored);
    if (coding === 1) {
      try {
        raw = inflate(raw, size);
      } catch {
        throw bad();
      }
    }
    out[kind] = raw;
    at += stored;
  }
  if (h.version === ALPHA_VERSION && !("alpha" in out)) throw bad();
  return out;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
