/**
 * The masked projection of a refused record: what a DLQ record carries instead of the
 * original bytes (shape: DlqProjection in src/contracts/dlq.ts; docs/processor.md, "DLQ").
 *
 * - A JSON object is projected field by field: every field the Masker knows is masked
 *   (card_number -> BIN + last 4 + token, name/email/IP/device -> tokens, lat/lon coarsened)
 *   wherever it sits, and every other string, number and key goes through scrubText (card-
 *   like runs, emails, IPs).
 * - Anything else (not JSON, not an object, oversized, or beyond the bounds below) is
 *   projected as text: known fields' values replaced where `"field": value` can be read,
 *   then scrubbed, then cut to DLQ_TEXT_MAX_CHARS.
 *
 * Hostile input is bounded: objects deeper than MAX_DEPTH, with more than MAX_NODES values or
 * larger than MAX_OBJECT_BYTES fall back to the text projection; only a bounded prefix of
 * any value is decoded as text; bytes that are not UTF-8 become U+FFFD.
 */
import type { MaskedCard } from "../contracts/alert.ts";
import { DLQ_TEXT_MAX_CHARS, DLQ_VALUE_VERSION, type DlqProjection } from "../contracts/dlq.ts";
import { maskFieldsInText, scrubText, scrubTruncated, truncateText } from "./pii-scrub.ts";
import type { TokenKind } from "./pii-tokens.ts";

/** What the projection needs of a Masker (core/masking.ts): its tokens and card masks. */
export interface DlqMasker {
  token(kind: TokenKind, value: string): string;
  maskCard(pan: string): MaskedCard;
}

export const MAX_DEPTH = 32;
export const MAX_NODES = 10_000;
export const MAX_OBJECT_BYTES = 64 * 1024;
/** Longest prefix of a value decoded for the text projection (4 bytes per character at worst). */
const MAX_TEXT_BYTES = (DLQ_TEXT_MAX_CHARS + 1024) * 4;
/** Longest transaction_id kept (a UUID is 36). */
const MAX_ID_CHARS = 128;
/** Most paths listed in masked_fields. */
const MAX_LISTED_FIELDS = 100;
/** Decimal places lat/lon keep (~1 km): where the warehouse keeps more, the DLQ does not need it. */
const COARSE_DECIMALS = 2;

/** The fields the Masker knows, by wire name, and what each becomes. */
const TOKEN_FIELDS: Readonly<Record<string, TokenKind>> = {
  card_number: "card",
  cardholder_name: "name",
  email: "email",
  ip_address: "ip",
  device_id: "device",
};
const COARSE_FIELDS = new Set(["lat", "lon"]);
const KNOWN_FIELDS: ReadonlySet<string> = new Set([...Object.keys(TOKEN_FIELDS), ...COARSE_FIELDS]);

export interface ProjectOptions {
  /** Project as text even if it parses (the processor does for `oversized`). */
  asText?: boolean;
}

/** The projection without the raw_* fields (the DLQ writer sets those), and the cards cut. */
export type Projected = Omit<DlqProjection, "raw_encrypted" | "raw_omitted"> & {
  /** Card numbers masked or card-like runs cut: the pans_redacted header. */
  cards: number;
};

class TooBig extends Error {}

/** ASCII digits of a card number written with separators; undefined when it is not 12-19 of them. */
function panDigits(v: string): string | undefined {
  let digits = "";
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c >= 48 && c <= 57) digits += v[i];
    else if (c !== 32 && c !== 45 && c !== 0xa0 && !(c >= 0x2010 && c <= 0x2015)) return undefined;
    if (digits.length > 19) return undefined;
  }
  return digits.length >= 12 ? digits : undefined;
}

/** BIN + last digits + token, or only a token when the value is not a card number as written. */
function maskCardValue(v: string, m: DlqMasker): MaskedCard | { token: string } {
  const digits = panDigits(v);
  return digits ? m.maskCard(digits) : { token: m.token("card", v) };
}

function coarsen(v: number): number {
  const f = 10 ** COARSE_DECIMALS;
  return Math.round(v * f) / f;
}

interface Ctx {
  masker: DlqMasker;
  nodes: number;
  masked: string[];
  redactions: number;
  cards: number;
}

function scrub(ctx: Ctx, s: string): string {
  const r = scrubText(s);
  ctx.redactions += r.pans + r.emails + r.ips;
  ctx.cards += r.pans;
  return r.text;
}

function noteMasked(ctx: Ctx, path: string): void {
  if (ctx.masked.length < MAX_LISTED_FIELDS) ctx.masked.push(path);
}

/** A known field's value, masked. */
function maskKnown(ctx: Ctx, name: string, v: unknown, path: string, depth: number): unknown {
  if (COARSE_FIELDS.has(name)) {
    const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
    // Not a coordinate: nothing to coarsen, so it is scrubbed as any other value.
    if (!Number.isFinite(n)) return walk(ctx, v, path, depth + 1);
    noteMasked(ctx, path);
    return typeof v === "number" ? coarsen(n) : String(coarsen(n));
  }
  noteMasked(ctx, path);
  const kind = TOKEN_FIELDS[name]!;
  // Numbers, objects, arrays: their JSON is what gets tokenised (a PAN sent as a number too).
  const text = typeof v === "string" ? v : typeof v === "number" ? String(v) : JSON.stringify(v);
  if (kind === "card") {
    ctx.cards++;
    return maskCardValue(text, ctx.masker);
  }
  return ctx.masker.token(kind, text);
}

function walk(ctx: Ctx, v: unknown, path: string, depth: number): unknown {
  if (++ctx.nodes > MAX_NODES || depth > MAX_DEPTH) throw new TooBig();
  if (typeof v === "string") return embeddedJson(ctx, v, path, depth) ?? scrub(ctx, v);
  if (typeof v === "number") {
    // 4111111111111111 as a JSON number is as much a card number as the string.
    const s = String(v);
    const r = scrub(ctx, s);
    return r === s ? v : r;
  }
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map((x, i) => walk(ctx, x, `${path}[${i}]`, depth + 1));
  const entries: [string, unknown][] = [];
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const at = path ? `${path}.${k}` : k;
    // Known names hold no digits, '@' or ':': only other keys can change when scrubbed.
    if (KNOWN_FIELDS.has(k)) entries.push([k, maskKnown(ctx, k, x, at, depth)]);
    else entries.push([scrub(ctx, k), walk(ctx, x, at, depth + 1)]);
  }
  // fromEntries defines properties: a "__proto__" key stays data, never a prototype.
  return Object.fromEntries(entries);
}

/** Levels of JSON-in-a-string unwrapped before a record is treated as text. */
const MAX_UNWRAP = 3;

/**
 * A string field that is itself JSON (`"payload": "{\"cardholder_name\": ...}"`): projected
 * like the rest, then written back as a string, so names inside are masked by field name.
 */
function embeddedJson(ctx: Ctx, v: string, path: string, depth: number): string | undefined {
  const c = v.charCodeAt(0);
  if ((c !== 123 && c !== 91) || v.length > MAX_OBJECT_BYTES) return undefined;
  let inner: unknown;
  try {
    inner = JSON.parse(v);
  } catch {
    return undefined;
  }
  if (inner === null || typeof inner !== "object") return undefined;
  return JSON.stringify(walk(ctx, inner, path, depth + 1));
}

/** A transaction_id already scrubbed, bounded. */
function idOf(v: unknown): string | undefined {
  return typeof v === "string" ? truncateText(v, MAX_ID_CHARS) : undefined;
}

/** The record as a JSON object projected field by field, or undefined if it is not one (within bounds). */
function projectObject(value: Buffer, masker: DlqMasker): Projected | undefined {
  if (value.byteLength > MAX_OBJECT_BYTES) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString("utf8"));
  } catch {
    return undefined;
  }
  // A record sent as a JSON string holding the transaction (double-encoded) carries the same
  // PII one level down: unwrap a few levels so its fields are masked by name, not just scrubbed.
  for (let unwrap = 0; typeof parsed === "string" && unwrap < MAX_UNWRAP; unwrap++) {
    try {
      parsed = JSON.parse(parsed);
    } catch {
      return undefined;
    }
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const ctx: Ctx = { masker, nodes: 0, masked: [], redactions: 0, cards: 0 };
  let masked: Record<string, unknown>;
  try {
    masked = walk(ctx, parsed, "", 0) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TooBig) return undefined;
    throw err;
  }
  const id = idOf(masked.transaction_id);
  return {
    dlq_value: DLQ_VALUE_VERSION,
    format: "object",
    masked,
    masked_fields: ctx.masked,
    redactions: ctx.redactions,
    truncated: false,
    original_bytes: value.byteLength,
    ...(id === undefined ? {} : { transaction_id: id }),
    cards: ctx.cards,
  };
}

/** How a known field's value reads in text: a bracketed mask, never the value. */
function textMask(masker: DlqMasker, field: string, value: string): string {
  if (COARSE_FIELDS.has(field)) {
    const n = Number(value);
    return value.trim() !== "" && Number.isFinite(n) ? String(coarsen(n)) : "[coord]";
  }
  const kind = TOKEN_FIELDS[field]!;
  if (kind === "card") {
    const c = maskCardValue(value, masker);
    return "bin" in c ? `[card ${c.bin}…${c.last4} ${c.token}]` : `[card ${c.token}]`;
  }
  return `[${kind} ${masker.token(kind, value)}]`;
}

/** The text projection: known fields replaced where readable, then scrubbed and cut. */
export function projectText(value: Buffer, masker: DlqMasker): Projected {
  const raw = value.subarray(0, MAX_TEXT_BYTES).toString("utf8");
  // Escaped quotes (a double-encoded record cut short or too big to parse) would hide field
  // names from the field scan: read one level unescaped, without the string's own opening
  // quote (it would shift every quote after it by one and the scan would read values as keys).
  const text = raw.includes('\\"')
    ? (raw.charCodeAt(0) === 34 ? raw.slice(1) : raw).replaceAll('\\"', '"')
    : raw;
  let rawId: string | undefined;
  let cardFields = 0;
  const fields = maskFieldsInText(
    text,
    KNOWN_FIELDS,
    (field, v) => {
      if (field === "card_number") cardFields++;
      return textMask(masker, field, v);
    },
    (hit) => {
      if (hit.field === "transaction_id" && rawId === undefined) rawId = hit.value;
    },
  );
  const s = scrubTruncated(fields.text, DLQ_TEXT_MAX_CHARS);
  const truncated = s.truncated || value.byteLength > MAX_TEXT_BYTES;
  const id = rawId === undefined ? undefined : scrubTruncated(rawId, MAX_ID_CHARS).text;
  return {
    dlq_value: DLQ_VALUE_VERSION,
    format: "text",
    masked: s.text,
    masked_fields: fields.masked.slice(0, MAX_LISTED_FIELDS),
    redactions: s.pans + s.emails + s.ips,
    truncated,
    original_bytes: value.byteLength,
    ...(id === undefined ? {} : { transaction_id: id }),
    cards: cardFields + s.pans,
  };
}

/** The masked projection of a refused record's value. Never throws on the value's content. */
export function projectRecord(value: Buffer, masker: DlqMasker, opts: ProjectOptions = {}): Projected {
  return (opts.asText ? undefined : projectObject(value, masker)) ?? projectText(value, masker);
}

/** Longest `detail` kept: a database message can be long, and headers are not for bodies. */
export const MAX_DETAIL_CHARS = 500;

/**
 * A refusal's human detail, safe to write out: a parser's or a database's message may quote
 * the record. JSON.parse quotes a snippet of its input ('Unexpected token ... "{"cardholder_na"...
 * is not valid JSON'): whatever stands between the first and the last double quote of a
 * bad_json detail is dropped; then known fields are masked and the rest scrubbed.
 */
export function scrubDetail(
  reason: string,
  detail: string,
  masker: DlqMasker,
): { text: string; cards: number } {
  let d = detail;
  if (reason === "bad_json") {
    const a = d.indexOf('"');
    const b = d.lastIndexOf('"');
    if (a >= 0 && b > a) d = `${d.slice(0, a)}"…"${d.slice(b + 1)}`;
  }
  let cards = 0;
  const fields = maskFieldsInText(d, KNOWN_FIELDS, (field, v) => {
    if (field === "card_number") cards++;
    return textMask(masker, field, v);
  });
  const s = scrubTruncated(fields.text, MAX_DETAIL_CHARS);
  return { text: s.text, cards: cards + s.pans };
}
