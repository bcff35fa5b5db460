// Column values from JSON to JavaScript, by the column's type, for answers
// sent with safe_numbers (which the client always asks for): int8 becomes a
// bigint, numeric a string (or what the caller's parser makes of it), bytea
// a Uint8Array, and dates and timestamps stay strings unless the caller asks
// for Date. Arrays of these types are decoded element by element.

import type { Column } from "./messages.js";

/** How values are decoded; the client's options, overridable per call. */
export interface ValueOptions {
  /**
   * Makes a numeric value (its exact digits as a string, or "NaN",
   * "Infinity", "-Infinity") into what the caller wants: a decimal library's
   * type, a number... The default keeps the string.
   */
  numeric?: (digits: string) => unknown;
  /**
   * true makes date, timestamp and timestamptz values Date objects
   * (timestamp without zone read as UTC, date as midnight UTC; years before
   * 1 and past 9999 included). A Date holds milliseconds: microseconds are
   * dropped. "infinity", "-infinity" and a date past Date's range (±275,760
   * years) stay strings. The default keeps the strings.
   */
  dates?: boolean;
}

type Decode = (v: unknown) => unknown;

const identity: Decode = (v) => v;

function toBigInt(v: unknown): unknown {
  if (typeof v === "number" || typeof v === "string") return BigInt(v);
  return v;
}

function toBytes(v: unknown): unknown {
  if (typeof v !== "string") return v;
  const b = Buffer.from(v, "base64");
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

// The worker writes a year past 9999 or before 1 as Go does: more digits or
// a sign ("10000-01-01", "-0043-03-15" for 44 BC); Date reads those only in
// the expanded form, six digits and a sign ("+010000-01-01").
const GO_YEAR = /^(-?)([0-9]+)(-.*)$/;

function expandYear(s: string): string {
  const m = GO_YEAR.exec(s);
  if (!m || (m[1] === "" && m[2].length === 4)) return s;
  return (m[1] || "+") + m[2].padStart(6, "0") + m[3];
}

function toDate(suffix: string): Decode {
  return (v) => {
    if (typeof v !== "string" || v === "infinity" || v === "-infinity") return v;
    const d = new Date(expandYear(v) + suffix);
    // Past Date's range (±275,760 years, which PostgreSQL's dates pass): the string.
    return Number.isNaN(d.getTime()) ? v : d;
  };
}

/** The decoder of one element type (a pg_type.typname). */
function scalar(type: string, o: ValueOptions): Decode {
  switch (type) {
    case "int8":
      return toBigInt;
    case "numeric": {
      const parse = o.numeric;
      return (v) => {
        if (v === null) return v;
        const s = typeof v === "number" ? String(v) : (v as string);
        return parse ? parse(s) : s;
      };
    }
    case "bytea":
      return toBytes;
    case "timestamptz":
      return o.dates ? toDate("") : identity;
    case "timestamp":
      return o.dates ? toDate("Z") : identity;
    case "date":
      return o.dates ? toDate("T00:00:00Z") : identity;
  }
  return identity;
}

function array(elem: Decode): Decode {
  const walk: Decode = (v) => (Array.isArray(v) ? v.map(walk) : v === null ? null : elem(v));
  return walk;
}

/** The decoder of a column of type, or undefined when values stay as parsed. */
export function decoderFor(type: string, o: ValueOptions): Decode | undefined {
  const isArray = type.startsWith("_");
  const d = scalar(isArray ? type.slice(1) : type, o);
  if (d === identity) return undefined;
  return isArray ? array(d) : d;
}

/** Decodes rows in place: objects by column name, arrays by position. */
export class RowDecoder {
  private readonly decoders: (Decode | undefined)[];
  private readonly any: boolean;

  constructor(
    readonly columns: Column[],
    o: ValueOptions,
  ) {
    this.decoders = columns.map((c) => decoderFor(c.type, o));
    this.any = this.decoders.some((d) => d !== undefined);
  }

  row(r: unknown): unknown {
    if (!this.any || r === null || typeof r !== "object") return r;
    if (Array.isArray(r)) {
      for (let i = 0; i < this.decoders.length; i++) {
        const d = this.decoders[i];
        if (d && r[i] !== null) r[i] = d(r[i]);
      }
      return r;
    }
    const obj = r as Record<string, unknown>;
    for (let i = 0; i < this.decoders.length; i++) {
      const d = this.decoders[i];
      const name = this.columns[i].name;
      if (d && obj[name] !== null && obj[name] !== undefined) obj[name] = d(obj[name]);
    }
    return r;
  }
}

/** Reads a score or distance: a number, or "NaN"/"Infinity"/"-Infinity". */
export function float(v: unknown): number {
  return typeof v === "number" ? v : Number(v);
}

/** Encodes float32 values as base64 of their little-endian bytes (vector_b64). */
export function f32leEncode(v: ArrayLike<number>): string {
  const buf = Buffer.alloc(4 * v.length);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i], 4 * i);
  return buf.toString("base64");
}

/** Decodes vector_b64 into a Float32Array. */
export function f32leDecode(b64: string): Float32Array {
  const b = Buffer.from(b64, "base64");
  if (b.byteLength % 4 !== 0) throw new Error(`vector_b64 holds ${b.byteLength} bytes, not a multiple of 4`);
  const out = new Float32Array(b.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(4 * i);
  return out;
}
