/**
 * Shared test fixtures: one copy of the sample data, keys, rule sets and silent plumbing the
 * unit and integration tests build on, instead of a near-identical block per file. Pure: no
 * servers, no randomness, fixed instants.
 *
 * Also the one polling wait of the tests (waitFor): it bounds a wait, it never asserts timing.
 *
 * Derived fields of a decoded transaction (amountMinor, eventTimeMs) are computed by the real
 * parser from the wire fields, so a fixture never holds an amount string and a minor amount
 * that disagree.
 */
import { readFileSync } from "node:fs";
import type { Registry } from "prom-client";
import { parse as parseYaml } from "yaml";
import type { CollectorConfig } from "../../src/collector/config.ts";
import type { Alert } from "../../src/contracts/alert.ts";
import type { TransactionRow } from "../../src/contracts/rows.ts";
import type { Transaction, TransactionWireV1 } from "../../src/contracts/transaction.ts";
import { alertId } from "../../src/core/alert.ts";
import { Masker } from "../../src/core/masking.ts";
import { parseRules, type RuleSet } from "../../src/core/rules.ts";
import { parseAmountMinor } from "../../src/core/schema.ts";
import { createLogger, type Logger } from "../../src/lib/log.ts";
import { createRegistry } from "../../src/lib/metrics.ts";

// ---- instants and places ---------------------------------------------------------------------

/** A fixed instant for event times (2026-11-25 10:00:00 UTC). */
export const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);

export const PARIS = { lat: 48.8566, lon: 2.3522, country: "FR", city: "Paris" } as const;
export const LONDON = { lat: 51.5, lon: -0.12, country: "GB", city: "London" } as const;

/** A Luhn-valid test PAN (Visa's documented test number). */
export const TEST_PAN = "4111111111111111";

// ---- secrets and masking ---------------------------------------------------------------------

/** The PII masking key of every test (16 bytes, the minimum a Masker accepts). */
export const TEST_PII_KEY = Buffer.from("0123456789abcdef0123456789abcdef", "hex");

export function testMasker(): Masker {
  return new Masker(TEST_PII_KEY);
}

// ---- transactions ----------------------------------------------------------------------------

/** A valid schema-v1 transaction as it travels on the wire. */
export const SAMPLE_WIRE_TX: Readonly<TransactionWireV1> = Object.freeze({
  schema_version: 1,
  transaction_id: "7b0e4c1e-8f3a-4c52-9d7e-2f1a3b4c5d6e",
  account_id: "acct-1",
  card_number: TEST_PAN,
  cardholder_name: "Ada Lovelace",
  email: "ada@example.com",
  ip_address: "198.51.100.4",
  device_id: "dev-1",
  amount: "12.34",
  currency: "GBP",
  merchant_id: "m-1",
  merchant_category: "5411",
  ...LONDON,
  event_time: "2026-11-25T10:00:00.123Z",
});

/** The sample wire transaction with fields replaced (any field, any type: for invalid ones too). */
export function wireTx(patch: Partial<TransactionWireV1> | Record<string, unknown> = {}): TransactionWireV1 {
  return { ...SAMPLE_WIRE_TX, ...patch } as TransactionWireV1;
}

/** The JSON of wireTx(patch): a record value as the collector would produce it. */
export function txJson(patch: Partial<TransactionWireV1> | Record<string, unknown> = {}): string {
  return JSON.stringify(wireTx(patch));
}

/**
 * A decoded transaction: the sample with wire fields replaced, amountMinor and eventTimeMs
 * derived from them. Derived fields given in the patch win (to build inconsistent ones on purpose).
 */
export function decodedTx(patch: Partial<Transaction> = {}): Transaction {
  const wire = wireTx(patch);
  return {
    ...wire,
    amountMinor: parseAmountMinor(wire.amount),
    eventTimeMs: Date.parse(wire.event_time),
    ...patch,
  };
}

let txSeq = 0;

/**
 * A numbered transaction (`tx-1`, `tx-2`, ... per test process) of `account` at event time
 * atMs: 10.00 EUR at merchant m-1 in Paris unless patched. The building block of window and
 * rule tests, where only account, time, amount, place and merchant matter.
 */
export function txAt(account: string, atMs: number, patch: Partial<Transaction> = {}): Transaction {
  txSeq++;
  return decodedTx({
    transaction_id: `tx-${txSeq}`,
    account_id: account,
    amount: "10.00",
    currency: "EUR",
    ...PARIS,
    event_time: new Date(atMs).toISOString(),
    ...patch,
  });
}

// ---- warehouse rows and alerts ---------------------------------------------------------------

/** Processing instant of the sample rows and alerts (with milliseconds, to catch truncation). */
export const ROW_T = Date.UTC(2026, 10, 25, 10, 0, 0, 123);

/**
 * A warehouse `transactions` row as the processor writes it (masked: tokens, no PAN), with an
 * offset above 2^53 so a sink that goes through a double is caught.
 */
export function sampleRow(over: Partial<TransactionRow> = {}): TransactionRow {
  return {
    transaction_id: "tx-1",
    account_id: "acct-1",
    schema_version: 1,
    card_bin: "411111",
    card_last4: "1111",
    card_token: "ctok_aaaaaaaaaaaaaaaaa",
    name_token: "ntok_aaaaaaaaaaaaaaaaa",
    email_token: "etok_aaaaaaaaaaaaaaaaa",
    ip_token: "itok_aaaaaaaaaaaaaaaaa",
    device_token: "dtok_aaaaaaaaaaaaaaaaa",
    amount: "12.30",
    amount_minor: 1230,
    currency: "EUR",
    merchant_id: "m-1",
    merchant_category: "5411",
    ...PARIS,
    event_time: new Date(ROW_T).toISOString(),
    event_time_ms: ROW_T,
    kafka_partition: 3,
    kafka_offset: "9007199254740993",
    processed_at_ms: ROW_T + 250,
    is_late: false,
    ...over,
  };
}

export const SAMPLE_MASKED_CARD = Object.freeze({
  bin: "411111",
  last4: "1111",
  token: "ctok_aaaaaaaaaaaaaaaaa",
});

/**
 * An alert of rule r1 on acct-1 / tx-1 (its id derived from those, as the processor does
 * unless the patch gives one), with the sample masked card unless `withCard` is false.
 */
export function sampleAlert(over: Partial<Alert> = {}, withCard = true): Alert {
  const ruleId = over.ruleId ?? "r1";
  const accountId = over.accountId ?? "acct-1";
  const transactionId = over.transactionId ?? "tx-1";
  return {
    alertId: alertId(ruleId, accountId, transactionId),
    ruleId,
    ruleType: "velocity_count",
    severity: "high",
    accountId,
    transactionId,
    eventTimeMs: ROW_T,
    detectedAtMs: ROW_T + 900,
    figures: { count: 6, windowMs: 60_000 },
    ...(withCard ? { maskedCard: { ...SAMPLE_MASKED_CARD } } : {}),
    ...over,
  };
}

// ---- rules -----------------------------------------------------------------------------------

const DEFAULT_RULES_FILE = new URL("../../config/rules.default.yaml", import.meta.url);

/** One rule as written in a rules document (docs/rules.md): type-specific fields vary. */
export interface RuleDoc {
  id: string;
  type: string;
  enabled: boolean;
  [field: string]: unknown;
}

/** The shipped rules file (config/rules.default.yaml) as a parsed YAML document. */
export function defaultRulesDoc(): { version: number; rules: RuleDoc[] } {
  return parseYaml(readFileSync(DEFAULT_RULES_FILE, "utf8"));
}

/** The shipped default rules, compiled. */
export function defaultRules(): RuleSet {
  return parseRules(defaultRulesDoc());
}

/** A rule set of one rule of the given type (id = type; the type's defaults unless overridden). */
export function oneRule(type: string, fields: Record<string, unknown> = {}): RuleSet {
  return parseRules({ version: 1, rules: [{ id: type, type, ...fields }] });
}

// ---- process plumbing ------------------------------------------------------------------------

/** A logger that writes nothing (the component name is kept for child loggers). */
export function silentLogger(name = "test"): Logger {
  return createLogger(name, "silent");
}

/** A metrics registry of its own, without the default process metrics. */
export function testRegistry(component = "test"): Registry {
  return createRegistry(component, false);
}

/**
 * Waits until cond() holds, polling every pollMs. The deadline turns a hang into a failure
 * naming what was awaited; it is not a timing assertion.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  pollMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** A collector with no broker and no HTTP port: for tests that drive it through a sink double. */
export const collectorTestConfig: CollectorConfig = {
  brokers: [],
  topic: "t",
  labelsTopic: "l",
  rate: 2000,
  maxRate: 10_000,
  seed: 7,
  accounts: 1000,
  merchants: 500,
  scenarioRate: 0,
  faults: { duplicate: 0, late: 0, outOfOrder: 0, malformed: 0 },
  lateMaxMs: 30_000,
  http: { host: "127.0.0.1", port: 0, token: undefined },
  batchSize: 100,
  lingerMs: 5,
  maxInFlight: 4,
  compression: "none",
  labelsFile: undefined,
  durationMs: 0,
  count: 0,
};
