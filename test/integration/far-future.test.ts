/**
 * No single record can blind detection (issue 10, item 2), through the real processor and
 * broker. The same labelled incident traffic goes to two fresh topics; the second also gets,
 * ahead of everything, one record dated 9999-12-31T23:59:59Z and one dated an hour ahead,
 * each keyed like an incident account so it sits on that incident's partition. Before the
 * fix one such record moved its partition's watermark past every later record: all of them
 * late, no rule firing there. The run with them must raise exactly the same alerts (by id),
 * count exactly the same records late, and dead-letter the two with event_time_in_future.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createProducer } from "../../src/adapters/kafka/client.ts";
import { connectPostgres } from "../../src/adapters/warehouse/postgres.ts";
import type { GeneratedRecord } from "../../src/collector/generator.ts";
import type { ScenarioLabel } from "../../src/contracts/labels.ts";
import { defaultRules } from "../helpers/fixtures.ts";
import {
  conn,
  createTestTopics,
  deleteTopics,
  produceTraffic,
  type ReadRecord,
  readTopic,
  startTestProcessor,
  type TestTopics,
  waitFor,
} from "../helpers/pipeline.ts";
import { freshDatabase } from "../helpers/processes.ts";

const SECONDS = 90;
const RATE = 300;
/**
 * Event times end this far before the records are produced. The generator lets incidents
 * finish in up to 120 s of quiet time after the last tick; ending every event time before
 * the Kafka timestamps means processing time never caps a watermark in either run, so the
 * two runs differ only by the hostile records, not by when each was produced.
 */
const BACKDATE_MS = 200_000;
const FAR_FUTURE = "9999-12-31T23:59:59Z";
const HOUR_MS = 3_600_000;

interface RunResult {
  totals: { records: number; ok: number; invalid: number; duplicates: number; late: number; alerts: number };
  alertIds: string[];
  warehouseAlertIds: string[];
  lateTransactionIds: string[];
  rows: number;
  dlq: ReadRecord[];
  alertAccounts: Map<string, Set<string>>;
}

async function produceAll(topic: string, records: { key: string; value: string }[]): Promise<void> {
  const producer = createProducer(conn, { idempotent: true });
  try {
    // One send at a time, in order: each partition gets its records in list order.
    for (let i = 0; i < records.length; i += 2000) {
      await producer.send({
        messages: records.slice(i, i + 2000).map((r) => ({ topic, key: r.key, value: r.value })),
      });
    }
  } finally {
    await producer.close();
  }
}

async function runProcessor(topics: TestTopics, expected: number, warehouseUrl: string): Promise<RunResult> {
  const proc = await startTestProcessor(topics, defaultRules(), { warehouseUrl });
  try {
    await waitFor(
      () => proc.processor.totals.records >= expected,
      180_000,
      `all ${expected} records of ${topics.input} processed`,
    );
    await proc.processor.drain();
    const t = proc.processor.totals;
    const totals = {
      records: t.records,
      ok: t.ok,
      invalid: t.invalid,
      duplicates: t.duplicates,
      late: t.late,
      alerts: t.alerts,
    };
    const alertRecords = await readTopic(topics.alerts, t.alerts);
    const alertAccounts = new Map<string, Set<string>>();
    const alertIds = new Set<string>();
    for (const r of alertRecords) {
      const a = JSON.parse(r.value) as { alert_id: string; rule_id: string; account_id: string };
      alertIds.add(a.alert_id);
      const rules = alertAccounts.get(a.account_id) ?? new Set<string>();
      rules.add(a.rule_id);
      alertAccounts.set(a.account_id, rules);
    }
    const dlq = await readTopic(topics.dlq, t.invalid);
    const db = await connectPostgres(warehouseUrl);
    try {
      const late = await db.query<{ transaction_id: string }>(
        "select transaction_id from transactions where is_late order by transaction_id",
      );
      const rows = await db.query<{ n: string }>("select count(*) as n from transactions");
      return {
        totals,
        alertIds: [...alertIds].sort(),
        warehouseAlertIds: await proc.warehouse.alertIds(),
        lateTransactionIds: late.rows.map((r) => r.transaction_id),
        rows: Number(rows.rows[0]!.n),
        dlq,
        alertAccounts,
      };
    } finally {
      await db.end();
    }
  } finally {
    await proc.close();
  }
}

describe("a far-future record on an incident's partition (real Kafka, Redis, PostgreSQL)", () => {
  const seed = Date.now() % 1_000_000_000;
  let clean: TestTopics;
  let hostile: TestTopics;
  const dbs: { url: string; drop: () => Promise<void> }[] = [];
  let sent: GeneratedRecord[] = [];
  let hostileRecords: { key: string; value: string; transactionId: string; eventTime: string }[] = [];
  /** Partition of each account on the input topics (both have the same partition count and keys). */
  const partitionOf = new Map<string, number>();
  const targets: ScenarioLabel[] = [];
  let a: RunResult;
  let b: RunResult;
  let hostileInput: ReadRecord[] = [];

  before(async () => {
    clean = await createTestTopics("it-ff-clean");
    hostile = await createTestTopics("it-ff-hostile");
    sent = await produceTraffic(clean.input, {
      seed,
      accounts: 20_000,
      merchants: 2_000,
      seconds: SECONDS,
      ratePerSecond: RATE,
      startMs: Date.now() - SECONDS * 1000 - BACKDATE_MS,
      scenarioRates: {
        velocity_burst: 0.01,
        card_testing: 0.01,
        geo_velocity: 0.01,
        merchant_spread: 0.01,
        amount_spike: 0.01,
      },
      faultRates: { duplicate: 0.01, late: 0.005, outOfOrder: 0.005, malformed: 0.005 },
    });
    for (const r of await readTopic(clean.input, sent.length, 60_000)) {
      if (r.key !== undefined) partitionOf.set(r.key, r.partition);
    }

    // Two incidents on two different partitions; a hostile record keyed like each.
    const incidents = sent.map((r) => r.label).filter((l): l is ScenarioLabel => l?.type === "scenario");
    for (const s of incidents) {
      const p = partitionOf.get(s.account_id);
      if (p !== undefined && !targets.some((t) => partitionOf.get(t.account_id) === p)) targets.push(s);
      if (targets.length === 2) break;
    }
    assert.equal(targets.length, 2, "two incidents on two different partitions");
    const templateOf = (account: string) => {
      const r = sent.find((x) => x.key === account && (x.kind === "normal" || x.kind === "scenario"));
      assert.ok(r, `a valid record of ${account}`);
      return JSON.parse(r.value) as Record<string, unknown>;
    };
    const producedAt = Date.now();
    hostileRecords = targets.map((s, i) => {
      const eventTime = i === 0 ? FAR_FUTURE : new Date(producedAt + HOUR_MS).toISOString();
      const transactionId = `far-future-${seed}-${i}`;
      const value = JSON.stringify({
        ...templateOf(s.account_id),
        transaction_id: transactionId,
        event_time: eventTime,
      });
      return { key: s.account_id, value, transactionId, eventTime };
    });
    // Ahead of every record: each would otherwise have moved its partition's watermark
    // before any of the incident's records arrived.
    await produceAll(hostile.input, [...hostileRecords, ...sent]);
    hostileInput = (await readTopic(hostile.input, sent.length + hostileRecords.length, 60_000)).filter((r) =>
      hostileRecords.some((h) => r.value.includes(h.transactionId)),
    );

    dbs.push(await freshDatabase(), await freshDatabase());
    a = await runProcessor(clean, sent.length, dbs[0]!.url);
    // Dedup is each processor's own (its windows' ids): the second run's copies are new to it.
    b = await runProcessor(hostile, sent.length + hostileRecords.length, dbs[1]!.url);
  });

  after(async () => {
    for (const t of [clean, hostile]) if (t) await deleteTopics(t);
    for (const db of dbs) await db.drop();
  });

  it(`each hostile record sits on its incident's partition, ahead of the incident (seed ${seed})`, () => {
    assert.equal(hostileInput.length, 2);
    for (const [i, h] of hostileRecords.entries()) {
      const rec = hostileInput.find((r) => r.value.includes(h.transactionId))!;
      assert.equal(
        rec.partition,
        partitionOf.get(targets[i]!.account_id),
        `${h.eventTime} on the partition of ${targets[i]!.account_id}`,
      );
      assert.equal(rec.offset, 0n, "first on its partition: every incident record comes after it");
    }
  });

  it("the clean run detects the two incidents (so there is something to blind)", () => {
    for (const s of targets) {
      assert.ok(
        a.alertAccounts.get(s.account_id)?.has(s.expected_rule),
        `${s.scenario} on ${s.account_id} raised ${s.expected_rule}`,
      );
    }
    assert.ok(a.alertIds.length >= 10, `${a.alertIds.length} alerts in the clean run`);
  });

  it("raises exactly the same alerts, by id, on Kafka and in the warehouse", (t) => {
    t.diagnostic(
      `clean run: ${a.totals.records} records, ${a.alertIds.length} alerts, ${a.totals.late} late, ${a.totals.invalid} dead-lettered`,
    );
    assert.deepEqual(b.alertIds, a.alertIds);
    assert.deepEqual(b.warehouseAlertIds, a.warehouseAlertIds);
    assert.deepEqual(a.warehouseAlertIds, a.alertIds);
  });

  it("dead-letters the hostile records with event_time_in_future, and nothing else changes", () => {
    const key = (r: ReadRecord) => `${r.headers.get("source_partition")}:${r.headers.get("source_offset")}`;
    for (const rec of hostileInput) {
      const entries = b.dlq.filter((d) => key(d) === `${rec.partition}:${rec.offset}`);
      assert.equal(entries.length, 1, `the DLQ holds ${rec.partition}:${rec.offset}`);
      assert.equal(entries[0]!.headers.get("reason"), "event_time_in_future");
    }
    const reasons = (dlq: ReadRecord[]) => dlq.map((d) => d.headers.get("reason") ?? "").sort();
    assert.deepEqual(
      reasons(b.dlq),
      [...reasons(a.dlq), "event_time_in_future", "event_time_in_future"].sort(),
    );
    assert.equal(b.totals.invalid, a.totals.invalid + 2);
    assert.equal(b.totals.ok, a.totals.ok);
    assert.equal(b.totals.duplicates, a.totals.duplicates);
    assert.equal(b.rows, a.rows, "the hostile records never reach the warehouse");
  });

  it("counts no record late because of them: the same records, by id", () => {
    assert.equal(b.totals.late, a.totals.late);
    // A resend too old for any window is written again and the warehouse keeps the first copy
    // to commit; with several writers in flight that may be the resend's (flagged late), in
    // either run. So rows of ids sent twice are compared by the processor's count above only.
    const counts = new Map<string, number>();
    for (const r of sent)
      if (r.transactionId) counts.set(r.transactionId, (counts.get(r.transactionId) ?? 0) + 1);
    const once = (ids: string[]) => ids.filter((id) => counts.get(id) === 1);
    assert.deepEqual(once(b.lateTransactionIds), once(a.lateTransactionIds));
    // The collector's late faults put some records behind the watermark in both runs.
    assert.ok(a.totals.late > 0, `${a.totals.late} records late in the clean run`);
  });
});
