/**
 * PII scan (issue 10, "Tests"): collector traffic with known ground truth, plus hand-made
 * hostile records, through the real pipeline — `paystream collector`, `paystream processor`
 * and `paystream dashboard` as child processes on the real Kafka, Redis and PostgreSQL — and
 * then every output searched for every piece of PII that went in.
 *
 * Ground truth is what was actually sent: the input topic read back raw (values, keys and
 * headers), every card number, cardholder name, e-mail and IP extracted from it, whatever
 * shape the record has (valid, malformed, truncated, double-encoded, spaced or dashed cards).
 *
 * Outputs searched: every text column of every warehouse table; the DLQ and alerts topics
 * (keys, values and headers); the labels topic; Redis (the run's alert hashes, the alert
 * stream since the run began, every message on the live channel during the run); the three
 * processes' stdout and stderr; the collector's and processor's /status, /stats, /config,
 * /metrics, /readyz; the dashboard's /api/* answers and its event stream, read for the whole
 * run with the token this test configured.
 *
 * A hit (PiiScanner): a full card number; card digits beyond BIN + last 4 — the first n-4
 * digits, or everything after the BIN, with or without separators; a digit run starting
 * with the BIN and 3 more digits (what V8's JSON.parse message used to quote); a raw e-mail,
 * cardholder name (6+ characters) or IP address. The scanner is checked on planted strings
 * and on the raw input itself, so a scan that finds nothing means something.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createProducer } from "../../src/adapters/kafka/client.ts";
import { connectRedis, type Redis } from "../../src/adapters/redis/client.ts";
import { connectPostgres } from "../../src/adapters/warehouse/postgres.ts";
import { AlertKeys } from "../../src/contracts/redis.ts";
import { luhnCheckDigit } from "../../src/core/schema.ts";
import { txJson } from "../helpers/fixtures.ts";
import {
  conn,
  createTestTopics,
  deleteTopics,
  type ReadRecord,
  readTopic,
  type TestTopics,
} from "../helpers/pipeline.ts";
import {
  COLLECTOR_TOKEN,
  freePort,
  freshDatabase,
  PII_KEY,
  type Service,
  startProcessor,
  startService,
  stopGracefully,
  waitReady,
  waitUntil,
} from "../helpers/processes.ts";
import { services, uniqueName } from "../helpers/services.ts";

const DASHBOARD_TOKEN = "pii-scan-dashboard-token-0123456789";
/** Seals DLQ originals: the sealed copy travels in a header, which is scanned like the rest. */
const DLQ_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const RATE = 400;
/** 30 s of traffic at RATE. */
const COUNT = 12_000;

// ---------------------------------------------------------------------------- ground truth

interface GroundTruth {
  /** Card numbers as digits (12-19), Luhn-valid or not, as sent in any field or form. */
  pans: Set<string>;
  /** Card digits cut short (a truncated record): 9-11 digits, BIN first. */
  panFragments: Set<string>;
  names: Set<string>;
  /** Lowercased. */
  emails: Set<string>;
  /** Lowercased. */
  ips: Set<string>;
}

/** What may join digit groups of a written card: one space, no-break space, hyphen or dash. */
const SEPARATOR = "[ \\u00a0\\u202f\\-\\u2010-\\u2015\\u2212]";
const DIGIT_RUN = new RegExp(`[0-9](?:${SEPARATOR}?[0-9])*`, "g");
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*/g;
const IPV4 = /(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])/g;
const IPV6 = /(?<![0-9a-f:])[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}(?![0-9a-f:])/g;
/** Fields of a transaction holding PII, and the schema's other fields (ids, times: never PII). */
const PII_FIELDS = new Set(["card_number", "cardholder_name", "email", "ip_address"]);
const NON_PII_FIELDS = new Set([
  "schema_version",
  "transaction_id",
  "account_id",
  "device_id",
  "amount",
  "currency",
  "merchant_id",
  "merchant_category",
  "country",
  "city",
  "lat",
  "lon",
  "event_time",
]);

function digitsOf(s: string): string {
  return s.replace(/[^0-9]/g, "");
}

function emptyTruth(): GroundTruth {
  return { pans: new Set(), panFragments: new Set(), names: new Set(), emails: new Set(), ips: new Set() };
}

function addCard(t: GroundTruth, raw: string): void {
  const d = digitsOf(raw);
  if (/^0+$/.test(d)) return; // the all-zero "card" is nobody's number
  if (d.length >= 12 && d.length <= 19) t.pans.add(d);
  else if (d.length >= 9 && d.length < 12) t.panFragments.add(d);
}

/** Cards, e-mails and IPs in free text (unknown fields, keys, headers, unparseable records). */
function addFromText(t: GroundTruth, text: string): void {
  for (const m of text.matchAll(DIGIT_RUN)) {
    const d = digitsOf(m[0]);
    if (d.length >= 12 && d.length <= 19) addCard(t, m[0]);
  }
  for (const m of text.matchAll(EMAIL)) t.emails.add(m[0].toLowerCase());
  for (const m of text.matchAll(IPV4)) t.ips.add(m[0]);
  for (const m of text.toLowerCase().matchAll(IPV6)) if (m[0].split(":").length >= 4) t.ips.add(m[0]);
}

function addField(t: GroundTruth, key: string, value: unknown, raw: string): void {
  if (value === null || value === undefined) return;
  const s = typeof value === "string" ? value : typeof value === "number" ? raw : JSON.stringify(value);
  if (key === "card_number") addCard(t, s);
  else if (key === "cardholder_name") t.names.add(s);
  else if (key === "email") t.emails.add(s.toLowerCase());
  else if (key === "ip_address") t.ips.add(s.toLowerCase());
}

/** Walks a parsed value: PII fields by name anywhere, unknown fields as free text. */
function walk(t: GroundTruth, v: unknown, depth = 0): void {
  if (depth > 64) return;
  if (typeof v === "string") {
    // A double-encoded record is a string holding JSON.
    if (v.startsWith("{") || v.startsWith("[")) {
      try {
        walk(t, JSON.parse(v), depth + 1);
        return;
      } catch {}
    }
    addFromText(t, v);
  } else if (Array.isArray(v)) {
    for (const x of v) walk(t, x, depth + 1);
  } else if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (PII_FIELDS.has(k)) addField(t, k, x, typeof x === "number" ? String(x) : "");
      else if (NON_PII_FIELDS.has(k)) continue;
      else {
        addFromText(t, k);
        walk(t, x, depth + 1);
      }
    }
  }
}

/** The PII of one raw input record (value, key, headers). */
function extractTruth(
  t: GroundTruth,
  rec: { key: string | undefined; value: string; headers: Map<string, string> },
) {
  const v = rec.value;
  // Card numbers and other PII fields straight from the text, whatever else is wrong with it:
  // a number literal too long for a double, a record cut inside the card.
  for (const m of v.matchAll(new RegExp(`"card_number"\\s*:\\s*"?([0-9](?:${SEPARATOR}?[0-9])*)`, "g")))
    addCard(t, m[1]!);
  for (const [field, re] of [
    ["cardholder_name", /"cardholder_name"\s*:\s*"([^"\\]+)"/g],
    ["email", /"email"\s*:\s*"([^"\\]+)"/g],
    ["ip_address", /"ip_address"\s*:\s*"([^"\\]+)"/g],
  ] as const) {
    for (const m of v.matchAll(re)) addField(t, field, m[1]!, m[1]!);
  }
  let parsed: unknown;
  let parses = false;
  try {
    parsed = JSON.parse(v);
    parses = true;
  } catch {}
  if (parses) walk(t, parsed);
  else {
    // Unparseable: free text, without the id and time fields whose digits are not PII.
    const stripped = v.replace(
      /"(?:transaction_id|account_id|device_id|merchant_id|event_time)"\s*:\s*"[^"]*"?/g,
      "",
    );
    addFromText(t, stripped);
  }
  if (rec.key !== undefined) addFromText(t, rec.key);
  for (const [k, h] of rec.headers) addFromText(t, `${k} ${h}`);
}

// ---------------------------------------------------------------------------- the scanner

interface Hit {
  kind: string;
  /** Which PII, by its shape only (a card as BIN…last 4): the report must not leak it again. */
  what: string;
  source: string;
  /** 40 characters either side of the hit, the hit itself left out (contextAt). */
  context: string;
}

function showPan(p: string): string {
  return `${p.slice(0, 6)}…${p.slice(-4)} (${p.length} digits)`;
}

/**
 * The text around a hit, the hit itself replaced by ⟦…⟧ and every other digit run longer
 * than 6 cut to its first 6: the failure message must not repeat the PII it reports.
 */
function contextAt(text: string, at: number, len: number): string {
  const clean = (s: string) =>
    s.replace(/[0-9]{7,}/g, (d) => `${d.slice(0, 6)}${"#".repeat(d.length - 6)}`).replace(/\n/g, "\\n");
  return `${clean(text.slice(Math.max(0, at - 40), at))}⟦${len}⟧${clean(text.slice(at + len, at + len + 40))}`;
}

/** A name, e-mail or IP shown by its shape only. */
function showText(s: string): string {
  return `${s.slice(0, 2)}… (${s.length} characters)`;
}

interface DigitNeedle {
  kind: string;
  pan: string;
  /** contains: anywhere in a run; start: the run starts with it; exact: the run is it. */
  anchor: "contains" | "start" | "exact";
}

/**
 * Finds ground-truth PII in text. Digit needles are matched inside digit runs (separators
 * removed): 11 digits and more anywhere; shorter ones only where a card's digits would sit —
 * a run starting with the BIN and more digits, or a run that is exactly everything after the
 * BIN (what a mask with the stars on the wrong side leaves). Matched anywhere, a 9- or
 * 10-digit needle would meet epoch milliseconds and byte counts by chance.
 */
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/**
 * Whether the digit run lies inside a UUID (a transaction id): not a card. A UUID's last group
 * once held 10 digits equal to a card's digits after its BIN, in CI.
 */
function inUuid(text: string, at: number, len: number): boolean {
  const from = Math.max(0, at - 36);
  for (const u of text.slice(from, at + len + 36).matchAll(UUID)) {
    const start = from + u.index;
    if (start <= at && at + len <= start + u[0].length) return true;
  }
  return false;
}

/** Whether the digit run at `at` follows "<digit>." (the fractional part of a number). */
function isFraction(text: string, at: number): boolean {
  if (at < 2 || text.charCodeAt(at - 1) !== 46) return false;
  const d = text.charCodeAt(at - 2);
  return d >= 48 && d <= 57;
}

class PiiScanner {
  readonly #digitNeedles = new Map<string, DigitNeedle[]>();
  readonly #needleLengths: number[];
  readonly #emailsByLocal = new Map<string, string[]>();
  readonly #ips: Set<string>;
  readonly #namesByFirstWord = new Map<string, string[]>();
  readonly skippedNames: number;

  constructor(truth: GroundTruth) {
    const add = (digits: string, n: DigitNeedle) => {
      const list = this.#digitNeedles.get(digits) ?? [];
      list.push(n);
      this.#digitNeedles.set(digits, list);
    };
    for (const p of truth.pans) {
      const n = p.length;
      const zeroBin = p.startsWith("000000");
      add(p, { kind: "full card number", pan: p, anchor: "contains" });
      // BIN + middle digits (first n-4) and middle + last 4 (after the BIN): a mask that kept
      // too much on one side.
      const head = p.slice(0, n - 4);
      const tail = p.slice(6);
      if (!zeroBin)
        add(head, {
          kind: "card digits beyond BIN (first n-4)",
          pan: p,
          anchor: head.length >= 11 ? "contains" : "start",
        });
      add(tail, { kind: "card digits beyond BIN (all after BIN)", pan: p, anchor: "exact" });
      if (!zeroBin) add(p.slice(0, 9), { kind: "BIN + 3 middle digits", pan: p, anchor: "start" });
    }
    for (const f of truth.panFragments) {
      if (!f.startsWith("000000"))
        add(f.slice(0, 9), { kind: "BIN + 3 middle digits (cut card)", pan: f, anchor: "start" });
    }
    this.#needleLengths = [...new Set([...this.#digitNeedles.keys()].map((k) => k.length))].sort(
      (a, b) => a - b,
    );
    for (const e of truth.emails) {
      const at = e.lastIndexOf("@");
      if (at <= 0) continue;
      const local = e.slice(0, at);
      const list = this.#emailsByLocal.get(local) ?? [];
      list.push(e.slice(at + 1));
      this.#emailsByLocal.set(local, list);
    }
    this.#ips = truth.ips;
    let skipped = 0;
    for (const name of truth.names) {
      const lower = name.toLowerCase();
      const first = /^\p{L}+/u.exec(lower)?.[0];
      if (lower.length < 6 || !first) {
        skipped++;
        continue;
      }
      const list = this.#namesByFirstWord.get(first) ?? [];
      list.push(lower);
      this.#namesByFirstWord.set(first, list);
    }
    this.skippedNames = skipped;
  }

  scan(source: string, text: string): Hit[] {
    const hits: Hit[] = [];
    if (text.length === 0) return hits;
    const minLen = this.#needleLengths[0] ?? Number.POSITIVE_INFINITY;
    for (const m of text.matchAll(DIGIT_RUN)) {
      const run = digitsOf(m[0]);
      if (run.length < minLen) continue;
      // The fraction of a decimal number ("0.5150008534…" in /metrics) is not a card: a
      // metric value once matched a BIN + 3 digits by chance.
      if (isFraction(text, m.index) || inUuid(text, m.index, m[0].length)) continue;
      for (const len of this.#needleLengths) {
        if (len > run.length) break;
        for (let i = 0; i + len <= run.length; i++) {
          const needles = this.#digitNeedles.get(run.slice(i, i + len));
          if (!needles) continue;
          for (const n of needles) {
            const ok =
              n.anchor === "contains" ||
              (n.anchor === "start" && i === 0) ||
              (n.anchor === "exact" && len === run.length);
            if (ok)
              hits.push({
                kind: n.kind,
                what: showPan(n.pan),
                source,
                context: contextAt(text, m.index, m[0].length),
              });
          }
        }
      }
    }
    const lower = text.toLowerCase();
    for (let at = lower.indexOf("@"); at >= 0; at = lower.indexOf("@", at + 1)) {
      let s = at;
      while (s > 0 && /[a-z0-9._%+-]/.test(lower[s - 1]!)) s--;
      let e = at + 1;
      while (e < lower.length && /[a-z0-9.-]/.test(lower[e]!)) e++;
      const local = lower.slice(s, at);
      const domain = lower.slice(at + 1, e);
      for (let k = 0; k < local.length; k++) {
        for (const d of this.#emailsByLocal.get(local.slice(k)) ?? []) {
          if (domain.startsWith(d)) {
            hits.push({
              kind: "e-mail",
              what: showText(`${local.slice(k)}@${d}`),
              source,
              context: contextAt(text, s + k, e - s - k),
            });
          }
        }
      }
    }
    for (const re of [IPV4, IPV6]) {
      for (const m of lower.matchAll(re)) {
        if (this.#ips.has(m[0]))
          hits.push({
            kind: "IP address",
            what: showText(m[0]),
            source,
            context: contextAt(text, m.index, m[0].length),
          });
      }
    }
    for (const m of lower.matchAll(/(?<!\p{L})\p{L}+/gu)) {
      for (const name of this.#namesByFirstWord.get(m[0]) ?? []) {
        if (lower.startsWith(name, m.index) && !/\p{L}/u.test(lower[m.index + name.length] ?? "")) {
          hits.push({
            kind: "cardholder name",
            what: showText(name),
            source,
            context: contextAt(text, m.index, name.length),
          });
        }
      }
    }
    return hits;
  }
}

// ---------------------------------------------------------------------------- hostile records

/** A Luhn-valid card with BIN 453914 and the given 9-digit body. */
function hostilePan(body: number): string {
  const partial = `453914${String(body).padStart(9, "0")}`;
  return partial + luhnCheckDigit(partial);
}

function spaced(pan: string, sep: string): string {
  return pan.match(/.{1,4}/g)!.join(sep);
}

interface Outbound {
  key: string;
  value: string;
  headers?: Record<string, string>;
}

/**
 * Records no collector makes: cards written with spaces, dashes or no-break spaces, as a
 * JSON number, inside other fields, in the Kafka key and headers; JSON corrupted where V8
 * quotes the input; cut inside the card; nested; double-encoded; oversized with PII at both ends.
 */
function hostileRecords(tag: string): Outbound[] {
  const who = (i: number) => ({
    transaction_id: `${tag}-h${i}`,
    account_id: `${tag}-acct-${i}`,
    card_number: hostilePan(100_000_000 + i * 7_919_113),
    cardholder_name: `Zebulon Quagmire${String.fromCharCode(97 + i)}`,
    email: `zebulon.q${i}@hostile-${tag}.example.org`,
    ip_address: `203.0.113.${10 + i}`,
    device_id: `dev-${tag}-${i}`,
  });
  const rec = (i: number, patch: Record<string, unknown> = {}) =>
    txJson({ ...who(i), event_time: new Date().toISOString(), ...patch });
  const out: Outbound[] = [];
  const push = (i: number, value: string, extra: Partial<Outbound> = {}) =>
    out.push({ key: who(i).account_id, value, ...extra });
  push(1, rec(1, { card_number: spaced(who(1).card_number, " ") }));
  push(2, rec(2, { card_number: spaced(who(2).card_number, "-") }));
  const luhnBad = `${who(3).card_number.slice(0, -1)}${(Number(who(3).card_number.at(-1)) + 1) % 10}`;
  push(3, rec(3, { card_number: spaced(luhnBad, " ") }));
  push(4, rec(4).replace(`"${who(4).card_number}"`, who(4).card_number));
  // Valid, with PII in a field the schema does not know: the row must not carry it.
  push(
    5,
    rec(5, {
      memo: `card ${who(5).card_number} of ${who(5).cardholder_name}, ${who(5).email} from ${who(5).ip_address}`,
    }),
  );
  // An unexpected token right before the card: V8's message quotes 10 characters either side.
  push(6, rec(6).replace(`"card_number":"${who(6).card_number}"`, `"card_number":x${who(6).card_number}`));
  // Short enough for V8 to quote the whole input.
  push(7, `x${who(7).card_number}`);
  // Cut inside the card number.
  const r8 = rec(8);
  push(8, r8.slice(0, r8.indexOf(who(8).card_number) + 11));
  // PII in the Kafka key and headers of a record that is not JSON.
  push(9, "not json at all", {
    key: `${who(9).card_number}|${who(9).email}`,
    headers: {
      "x-card": who(9).card_number,
      "x-who": `${who(9).cardholder_name} <${who(9).email}> ${who(9).ip_address}`,
    },
  });
  // PII nested one level down, the top-level fields missing.
  push(10, JSON.stringify({ schema_version: 1, transaction_id: who(10).transaction_id, payer: who(10) }));
  // Oversized, PII at the start and past every truncation point.
  const pad = "y".repeat(20_000);
  push(11, `${rec(11).slice(0, -1)},"memo":"${pad} ${who(11).card_number} ${who(11).email}"}`);
  // Not JSON past the PII fields.
  push(12, `${rec(12).slice(0, -1)} ,, garbage`);
  // An array around a record with a dashed card, and a double-encoded record with a no-break-spaced one.
  push(13, `[${rec(13, { card_number: spaced(who(13).card_number, "-") })}]`);
  push(14, JSON.stringify(rec(14, { card_number: spaced(who(14).card_number, "\u00a0") })));
  // Headers on an otherwise valid-looking record with a Luhn-invalid card.
  push(
    15,
    rec(15, {
      card_number: `${who(15).card_number.slice(0, -1)}${(Number(who(15).card_number.at(-1)) + 3) % 10}`,
    }),
    {
      headers: { "x-card": who(15).card_number },
    },
  );
  return out;
}

// ---------------------------------------------------------------------------- capture

interface Captured {
  source: string;
  text: string;
}

/** Reads a text/event-stream until stop() is called. */
function captureSse(url: string, headers: Record<string, string>) {
  const ctl = new AbortController();
  const state = { text: "", status: 0, error: "" };
  const done = (async () => {
    try {
      const res = await fetch(url, { headers, signal: ctl.signal });
      state.status = res.status;
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        state.text += dec.decode(value, { stream: true });
      }
    } catch (err) {
      if (!ctl.signal.aborted) state.error = (err as Error).message;
    }
  })();
  return {
    state,
    stop: async () => {
      ctl.abort();
      await done;
    },
  };
}

/** Every stdout and stderr byte of a service (startService keeps only the tail). */
function fullOutput(s: Service): () => string {
  let out = "";
  s.child.stdout!.on("data", (d) => {
    out += d;
  });
  s.child.stderr!.on("data", (d) => {
    out += d;
  });
  return () => out;
}

function recordText(r: ReadRecord): string {
  return [`key=${r.key ?? ""}`, ...[...r.headers].map(([k, v]) => `${k}=${v}`), r.value].join("\n");
}

// ---------------------------------------------------------------------------- the test

describe("PII scan: no raw PII in any output of the real pipeline", () => {
  const seed = Date.now() % 2_000_000_000;
  const tag = uniqueName("pii").replace(/[^a-z0-9]/g, "");
  let topics: TestTopics;
  let db: { url: string; drop: () => Promise<void> };
  let processor: Service;
  let collector: Service;
  let dashboard: Service;
  const logs: { name: string; output: () => string }[] = [];
  let sub: Redis | undefined;
  const live: string[] = [];
  const captured: Captured[] = [];
  let truth: GroundTruth;
  let scanner: PiiScanner;
  let input: ReadRecord[] = [];
  let hostile: Outbound[] = [];
  let dlqRecords: ReadRecord[] = [];
  /** Rows whose lat or lon has more than 2 decimals (the default --coordinate-decimals). */
  let preciseCoordinates = -1;
  const counts = { dlq: 0, alerts: 0, rows: 0, labels: 0, sse: 0, live: 0, streamEntries: 0, alertHashes: 0 };

  before(async () => {
    const runStart = Date.now();
    topics = await createTestTopics("it-pii");
    db = await freshDatabase();

    sub = await connectRedis({ url: services.redis });
    await sub.subscribe(AlertKeys.channel, (m) => {
      live.push(m);
    });

    processor = startProcessor(topics, uniqueName("it-pii-group"), db.url, [], {
      PAYSTREAM_LOG_LEVEL: "debug",
      PAYSTREAM_DLQ_KEY: DLQ_KEY,
    });
    const pPort = processor.port;
    logs.push({ name: "processor", output: fullOutput(processor) });
    await waitReady(processor);

    const cPort = freePort();
    collector = startService(
      "collector",
      [
        "collector",
        "--kafka",
        services.kafka.join(","),
        "--topic",
        topics.input,
        "--labels-topic",
        topics.labels,
        "--rate",
        String(RATE),
        "--count",
        String(COUNT),
        "--seed",
        String(seed),
        "--accounts",
        "20000",
        // Many incidents (fraction of accounts per hour per type) and faults: alerts and DLQ
        // records of every kind to look into.
        "--scenario-rate",
        "0.3",
        "--malformed-rate",
        "0.05",
        "--duplicate-rate",
        "0.01",
        "--late-rate",
        "0.01",
        "--out-of-order-rate",
        "0.01",
        "--port",
        String(cPort),
        "--host",
        "127.0.0.1",
      ],
      cPort,
      { PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN, PAYSTREAM_LOG_LEVEL: "debug" },
    );
    logs.push({ name: "collector", output: fullOutput(collector) });

    const dPort = freePort();
    dashboard = startService(
      "dashboard",
      [
        "dashboard",
        "--redis",
        services.redis,
        "--collector-url",
        `http://127.0.0.1:${cPort}`,
        "--processor-urls",
        `http://127.0.0.1:${pPort}`,
        "--host",
        "127.0.0.1",
        "--port",
        String(dPort),
        "--refresh",
        "500ms",
      ],
      dPort,
      {
        PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN,
        PAYSTREAM_DASHBOARD_TOKEN: DASHBOARD_TOKEN,
        PAYSTREAM_LOG_LEVEL: "debug",
      },
    );
    logs.push({ name: "dashboard", output: fullOutput(dashboard) });
    await waitUntil(
      () => dashboard.output().includes("paystream dashboard on") || dashboard.child.exitCode !== null,
      30_000,
      "dashboard listening",
    );
    assert.equal(dashboard.child.exitCode, null, dashboard.output());

    const dashAuth = { authorization: `Bearer ${DASHBOARD_TOKEN}` };
    const collectorAuth = { authorization: `Bearer ${COLLECTOR_TOKEN}` };
    const sse = captureSse(`http://127.0.0.1:${dPort}/api/events`, dashAuth);
    const seen = new Set<string>();
    const grab = async (source: string, url: string, headers: Record<string, string> = {}) => {
      const text = await fetch(url, { headers })
        .then(async (r) => {
          // Headers too (the Date header aside, which only defeats the de-duplication).
          const head: string[] = [];
          r.headers.forEach((v, k) => {
            if (k !== "date") head.push(`${k}: ${v}`);
          });
          return `${r.status}\n${head.join("\n")}\n\n${await r.text()}`;
        })
        .catch(() => "");
      if (text && !seen.has(text)) {
        seen.add(text);
        captured.push({ source, text });
      }
    };
    const poll = async () => {
      const c = `http://127.0.0.1:${cPort}`;
      const p = `http://127.0.0.1:${pPort}`;
      const d = `http://127.0.0.1:${dPort}`;
      await Promise.all([
        ...["/status", "/stats", "/config", "/metrics", "/readyz"].map((path) =>
          grab(`collector ${path}`, c + path, collectorAuth),
        ),
        ...["/status", "/metrics", "/readyz"].map((path) => grab(`processor ${path}`, p + path)),
        ...["/api/snapshot", "/api/alerts?limit=100", "/api/status", "/metrics", "/readyz"].map((path) =>
          grab(`dashboard ${path}`, d + path, dashAuth),
        ),
      ]);
    };

    // Hostile records go in while collector traffic flows.
    await waitUntil(
      async () => {
        await poll();
        const s = await fetch(`http://127.0.0.1:${cPort}/status`, { headers: collectorAuth })
          .then((r) => r.json() as Promise<{ produced?: number }>)
          .catch(() => ({ produced: 0 }));
        return (s.produced ?? 0) > 2000 || collector.child.exitCode !== null;
      },
      30_000,
      "collector running",
    );
    hostile = hostileRecords(tag);
    const producer = createProducer(conn, { idempotent: true });
    await producer.send({
      messages: hostile.map((h) => ({
        topic: topics.input,
        key: h.key,
        value: h.value,
        ...(h.headers ? { headers: h.headers } : {}),
      })),
    });
    await producer.close();

    // Until the collector has sent everything and the processor has processed it.
    while (collector.child.exitCode === null) {
      await poll();
      await new Promise((r) => setTimeout(r, 1500));
    }
    assert.equal(collector.child.exitCode, 0, `collector exit; output:\n${collector.output().slice(-3000)}`);
    const summary = JSON.parse(
      logs[1]!
        .output()
        .trim()
        .split("\n")
        .filter((l) => l.startsWith('{"produced"'))
        .at(-1) ?? "{}",
    ) as { produced?: number; labels?: Record<string, number> };
    assert.ok(summary.produced && summary.produced >= COUNT, `collector produced ${summary.produced}`);
    const expected = summary.produced + hostile.length;
    let status: { totals?: { records: number; invalid: number; alerts: number; ok: number } } = {};
    await waitUntil(
      async () => {
        await poll();
        status = (await fetch(`http://127.0.0.1:${pPort}/status`)
          .then((r) => r.json())
          .catch(() => ({}))) as typeof status;
        return (status.totals?.records ?? 0) >= expected;
      },
      120_000,
      `processor processed ${expected} records`,
    );
    // One more round after the last alerts reached Redis and the dashboard refreshed.
    await new Promise((r) => setTimeout(r, 1500));
    await poll();
    await sse.stop();
    assert.equal(sse.state.status, 200, `event stream answered (${sse.state.error})`);
    captured.push({ source: "dashboard /api/events (SSE)", text: sse.state.text });
    counts.sse = (sse.state.text.match(/^event: /gm) ?? []).length;

    assert.equal(await stopGracefully(dashboard), 0, dashboard.output());
    assert.equal(await stopGracefully(processor), 0, processor.output());
    await sub.unsubscribe(AlertKeys.channel);
    counts.live = live.length;
    for (const m of live) captured.push({ source: "Redis PUBLISH fraud:alerts:live", text: m });
    for (const l of logs) captured.push({ source: `${l.name} stdout+stderr`, text: l.output() });

    // Kafka outputs.
    const totals = status.totals!;
    const dlq = await readTopic(topics.dlq, totals.invalid);
    const alerts = await readTopic(topics.alerts, totals.alerts);
    counts.labels = Object.values(summary.labels ?? {}).reduce((a, b) => a + b, 0);
    const labels = await readTopic(topics.labels, counts.labels);
    counts.dlq = dlq.length;
    dlqRecords = dlq;
    counts.alerts = alerts.length;
    for (const r of dlq) captured.push({ source: `DLQ ${r.partition}:${r.offset}`, text: recordText(r) });
    for (const r of alerts)
      captured.push({ source: `alerts topic ${r.partition}:${r.offset}`, text: recordText(r) });
    for (const r of labels)
      captured.push({ source: `labels topic ${r.partition}:${r.offset}`, text: recordText(r) });

    // Redis: this run's alerts, and the stream since the run began.
    const redis = await connectRedis({ url: services.redis });
    try {
      for (const r of alerts) {
        const id = r.headers.get("alert_id") ?? (JSON.parse(r.value) as { alert_id: string }).alert_id;
        const h = await redis.hGetAll(AlertKeys.alert(id));
        if (Object.keys(h).length > 0) counts.alertHashes++;
        captured.push({ source: `Redis HGETALL ${AlertKeys.alert(id)}`, text: JSON.stringify(h) });
      }
      const entries = (await redis.xRange(AlertKeys.stream, `${runStart}-0`, "+")) ?? [];
      counts.streamEntries = entries.length;
      captured.push({ source: `Redis XRANGE ${AlertKeys.stream}`, text: JSON.stringify(entries) });
    } finally {
      redis.destroy();
    }

    // Warehouse: every text column of every table.
    const pg = await connectPostgres(db.url);
    try {
      const cols = await pg.query<{ table_name: string; column_name: string }>(
        `select table_name, column_name from information_schema.columns
          where table_schema = 'public'
            and data_type in ('text', 'character varying', 'character', 'json', 'jsonb')
          order by table_name, ordinal_position`,
      );
      const byTable = new Map<string, string[]>();
      for (const c of cols.rows)
        byTable.set(c.table_name, [...(byTable.get(c.table_name) ?? []), c.column_name]);
      assert.ok(byTable.has("transactions") && byTable.has("fraud_alerts"), [...byTable.keys()].join(", "));
      for (const [table, columns] of byTable) {
        const rows = await pg.query(
          `select ${columns.map((c) => `"${c}"::text as "${c}"`).join(", ")} from "${table}"`,
        );
        if (table === "transactions") counts.rows = rows.rows.length;
        for (let i = 0; i < rows.rows.length; i += 500) {
          captured.push({
            source: `warehouse ${table} rows ${i}..${Math.min(i + 500, rows.rows.length) - 1}`,
            text: rows.rows
              .slice(i, i + 500)
              .map((r) => JSON.stringify(r))
              .join("\n"),
          });
        }
      }
      const precise = await pg.query<{ n: string }>(
        "select count(*) as n from transactions where lat::numeric <> round(lat::numeric, 2) or lon::numeric <> round(lon::numeric, 2)",
      );
      preciseCoordinates = Number(precise.rows[0]!.n);
    } finally {
      await pg.end();
    }

    // Ground truth: the input topic as the processor read it.
    input = await readTopic(topics.input, expected, 60_000);
    truth = emptyTruth();
    for (const r of input) extractTruth(truth, r);
    scanner = new PiiScanner(truth);
  });

  after(async () => {
    for (const s of [collector, dashboard, processor]) {
      if (s && s.child.exitCode === null && s.child.signalCode === null) await stopGracefully(s);
    }
    sub?.destroy();
    if (topics) await deleteTopics(topics);
    await db?.drop();
  });

  it(`collects the ground truth of every record sent, hostile ones included (seed ${seed})`, (t) => {
    t.diagnostic(
      `input ${input.length} records: ${truth.pans.size} card numbers, ${truth.panFragments.size} cut cards, ` +
        `${truth.names.size} names (${scanner.skippedNames} under 6 characters skipped), ${truth.emails.size} e-mails, ${truth.ips.size} IPs`,
    );
    t.diagnostic(
      `outputs: ${counts.rows} warehouse rows, ${counts.dlq} DLQ records, ${counts.alerts} alerts, ${counts.alertHashes} alert hashes, ` +
        `${counts.streamEntries} stream entries, ${counts.live} live messages, ${counts.labels} labels, ${counts.sse} SSE events, ` +
        `${captured.length} texts, ${Math.round(captured.reduce((n, c) => n + c.text.length, 0) / 1e6)} M characters`,
    );
    assert.ok(truth.pans.size > 5_000, "thousands of card numbers");
    assert.ok(truth.names.size > 1_000 && truth.emails.size > 5_000 && truth.ips.size > 5_000);
    // Every hostile record went through: the valid one (5) to the warehouse, the rest to the DLQ.
    for (const [i, h] of hostile.entries()) {
      const rec = input.find((r) => r.value === h.value && r.key === h.key);
      assert.ok(rec, `hostile record ${i + 1} was read back`);
      const dead = dlqRecords.filter(
        (d) =>
          d.headers.get("source_partition") === String(rec.partition) &&
          d.headers.get("source_offset") === String(rec.offset),
      );
      assert.equal(
        dead.length,
        i + 1 === 5 ? 0 : 1,
        `hostile record ${i + 1} in the DLQ: ${dead.map((d) => d.headers.get("reason"))}`,
      );
    }
    assert.ok(
      captured.some((c) => c.source.startsWith("warehouse transactions") && c.text.includes(`"${tag}-h5"`)),
      "the valid hostile record is a warehouse row",
    );
    // The hostile cards, however written, are in the ground truth: whole (card 3 only with
    // its wrong check digit), or cut short (card 8).
    for (let i = 1; i <= 15; i++) {
      const pan = hostilePan(100_000_000 + i * 7_919_113);
      if (i === 3) assert.ok([...truth.pans].some((p) => p !== pan && p.slice(0, -1) === pan.slice(0, -1)));
      else if (i === 8) assert.ok(truth.panFragments.has(pan.slice(0, 11)), "card 8 cut after 11 digits");
      else assert.ok(truth.pans.has(pan), `hostile card ${i} (${showPan(pan)}) in the ground truth`);
    }
  });

  it("warehouse rows keep lat/lon to 2 decimals (~1 km), the default --coordinate-decimals", () => {
    assert.ok(counts.rows > 10_000);
    assert.equal(preciseCoordinates, 0, "rows with a finer lat or lon");
  });

  it("the scanner finds planted PII in every form it checks, and not masked forms", () => {
    const pan = [...truth.pans].find((p) => p.length === 16 && /^[3-5]/.test(p))!;
    const name = [...truth.names].find((n) => /^[A-Za-z]+ [A-Za-z]+$/.test(n) && n.length >= 8)!;
    const email = [...truth.emails][0]!;
    const ip = [...truth.ips].find((x) => x.includes("."))!;
    const found = (text: string) => scanner.scan("planted", text).map((h) => h.kind);
    assert.ok(found(`{"x":"${pan}"}`).includes("full card number"));
    assert.ok(found(`card ${spaced(pan, " ")} on file`).includes("full card number"), "spaced");
    assert.ok(found(`card ${spaced(pan, "-")}`).includes("full card number"), "dashed");
    assert.ok(found(`${pan.slice(0, 12)}****`).includes("card digits beyond BIN (first n-4)"));
    assert.ok(found(`******${pan.slice(6)}`).includes("card digits beyond BIN (all after BIN)"));
    assert.ok(
      found(`Unexpected token 'x', ..."d":x${pan.slice(0, 9)}"... is not valid JSON`).includes(
        "BIN + 3 middle digits",
      ),
    );
    assert.ok(found(`"cardholder_name":"${name}"`).includes("cardholder name"));
    assert.ok(found(`Contact: ${name.toUpperCase()}.`).includes("cardholder name"), "any case");
    assert.ok(found(`mailto:${email.toUpperCase()}>`).includes("e-mail"));
    assert.ok(found(`from ${ip}:443`).includes("IP address"));
    // What the masking is allowed to show: BIN + last 4, tokens.
    assert.deepEqual(
      found(
        `{"bin":"${pan.slice(0, 6)}","last4":"${pan.slice(-4)}","masked":"${pan.slice(0, 6)}******${pan.slice(-4)}"}`,
      ),
      [],
    );
    assert.deepEqual(
      found(
        `${pan.slice(0, 6)} •••• ${pan.slice(-4)} ${spaced(`${pan.slice(0, 6)}******${pan.slice(-4)}`, " ")}`,
      ),
      [],
    );
    assert.deepEqual(found(`${ip}7 and 1${ip}`), [], "longer numbers are other addresses");
    // A metric's fraction is not a card; the same digits after a space are.
    assert.deepEqual(found(`latency_seconds 0.${pan.slice(0, 9)}7`), [], "a decimal fraction");
    assert.ok(found(`latency_seconds ${pan.slice(0, 9)}7`).includes("BIN + 3 middle digits"));
    // Digits closing an id (a UUID's last group) are not a card; the same digits quoted are.
    assert.deepEqual(found(`"id":"f4e3dad4-d518-4413-9a96-4f${pan.slice(6)}"`), [], "inside an id");
    assert.ok(found(`"x":"${pan.slice(6)}"`).includes("card digits beyond BIN (all after BIN)"));
  });

  it("the scanner finds the PII of every record in the raw input (it is wired to the right needles)", () => {
    const sample = input.slice(0, 2000).filter((r) => {
      try {
        const o = JSON.parse(r.value) as Record<string, unknown>;
        return (
          typeof o.card_number === "string" &&
          /^[0-9]{16}$/.test(o.card_number) &&
          !o.card_number.startsWith("000000") &&
          typeof o.cardholder_name === "string" &&
          typeof o.email === "string" &&
          typeof o.ip_address === "string"
        );
      } catch {
        return false;
      }
    });
    assert.ok(sample.length > 1000, `${sample.length} plain records`);
    for (const r of sample) {
      const kinds = new Set(scanner.scan("input", r.value).map((h) => h.kind));
      const o = JSON.parse(r.value) as { cardholder_name: string };
      for (const k of [
        "full card number",
        "e-mail",
        "IP address",
        ...(o.cardholder_name.length >= 6 ? ["cardholder name"] : []),
      ]) {
        assert.ok(kinds.has(k), `${k} found in input record ${r.partition}:${r.offset}`);
      }
    }
  });

  it("shows no secret the test configured in any output: PII key, DLQ key, API and dashboard tokens", () => {
    const secrets = { PII_KEY, DLQ_KEY, COLLECTOR_TOKEN, DASHBOARD_TOKEN };
    for (const c of captured) {
      for (const [name, secret] of Object.entries(secrets)) {
        assert.ok(!c.text.includes(secret), `${name} in ${c.source}`);
      }
    }
  });

  it("finds no card digits beyond BIN + last 4, e-mail, name or IP in any output", (t) => {
    const hits: Hit[] = [];
    const bySource = new Map<string, number>();
    for (const c of captured) {
      const group = c.source
        .replace(/ (rows )?\d+(:\d+|\.\.\d+)?$/, "")
        .replace(/fraud:alert:[0-9a-f]+/, "fraud:alert:<id>");
      bySource.set(group, (bySource.get(group) ?? 0) + c.text.length);
      hits.push(...scanner.scan(c.source, c.text));
    }
    t.diagnostic(`scanned: ${[...bySource].map(([k, v]) => `${k} ${v}`).join("; ")}`);
    assert.ok((bySource.get("warehouse transactions") ?? 0) > 0, "warehouse rows were scanned");
    assert.ok(
      counts.dlq > 0 && counts.alerts > 0 && counts.live > 0 && counts.sse > 0,
      JSON.stringify(counts),
    );
    const summary = new Map<string, number>();
    for (const h of hits) {
      const k = `${h.source.replace(/ (rows )?\d+(:\d+|\.\.\d+)?$/, "")} — ${h.kind}`;
      summary.set(k, (summary.get(k) ?? 0) + 1);
    }
    assert.equal(
      hits.length,
      0,
      `${hits.length} PII hits:\n${[...summary].map(([k, n]) => `  ${n} × ${k}`).join("\n")}\nfirst ones:\n${hits
        .slice(0, 25)
        .map((h) => `  [${h.source}] ${h.kind} ${h.what}: …${h.context}…`)
        .join("\n")}`,
    );
  });
});
