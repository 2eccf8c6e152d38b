import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findLuhnDigitRuns } from "../../../src/core/pan.ts";
import { DashboardAggregator } from "../../../src/dashboard/aggregate.ts";
import type { Answer, Readings } from "../../../src/dashboard/model.ts";
import { normalizeStatus, toFeedAlert } from "../../../src/dashboard/normalize.ts";

const ok = (body: unknown): Answer => ({ status: 200, body });
const down = (why: string): Answer => ({ status: 0, body: undefined, error: why });

/** Cumulative e2e latency histogram text, as prom-client serves it. */
function e2eMetrics(alertBuckets: Record<string, number>, extra = ""): string {
  const lines = [
    "# HELP paystream_e2e_latency_seconds e2e",
    "# TYPE paystream_e2e_latency_seconds histogram",
  ];
  for (const [le, n] of Object.entries(alertBuckets)) {
    lines.push(`paystream_e2e_latency_seconds_bucket{le="${le}",output="alert_store",component="p"} ${n}`);
    lines.push(`paystream_e2e_latency_seconds_bucket{le="${le}",output="warehouse",component="p"} ${n * 2}`);
  }
  return `${lines.join("\n")}\n${extra}`;
}

function processorStatus(records: number, more: Record<string, unknown> = {}) {
  return {
    lag: 5,
    totals: { records, ok: records - 3, duplicates: 1, invalid: 1, late: 1, alerts: 2 },
    alertsByRule: { velocity_count: 2 },
    health: {},
    ...more,
  };
}

function readings(
  produced: number,
  processors: { url: string; records?: number; metrics?: string; status?: unknown }[],
  alerts: unknown[] = [],
): Readings {
  return {
    collector: {
      url: "http://c:5000",
      config: ok({
        messages_per_second: 1000,
        actual_messages_per_second: 990,
        max_messages_per_second: 5000,
      }),
      stats: ok({ produced }),
      ready: ok({ status: "ready" }),
    },
    processors: processors.map((p) => ({
      url: p.url,
      status:
        p.records === undefined ? down(`${p.url}: ECONNREFUSED`) : ok(p.status ?? processorStatus(p.records)),
      metrics: p.metrics === undefined ? ok("") : ok(p.metrics),
      ready: p.records === undefined ? down(`${p.url}: ECONNREFUSED`) : ok({ status: "ready" }),
    })),
    alerts: { source: "test", latest: alerts, activeAccounts: alerts.length },
  };
}

describe("normalizeStatus", () => {
  it("reads a processor's /status", () => {
    const s = normalizeStatus({
      lag: 12,
      totals: { records: 100, ok: 90, duplicates: 4, invalid: 3, late: 3, alerts: 2, batches: 9 },
      alertsByRule: { velocity_count: 2, junk: "x" },
      health: { dedup: "ECONNREFUSED" },
    });
    assert.deepEqual(s, {
      records: 100,
      ok: 90,
      duplicates: 4,
      invalid: 3,
      late: 3,
      alerts: 2,
      alertsByRule: { velocity_count: 2 },
      lag: 12,
      health: { dedup: "ECONNREFUSED" },
    });
  });

  it("reads `paystream up`'s /status (so --processor-urls may point at it)", () => {
    const s = normalizeStatus({
      uptime_s: 3,
      collector: { target_rate: 1000 },
      processor: {
        processed: 50,
        ok: 45,
        duplicates: 2,
        dlq: 2,
        late: 1,
        alerts: 1,
        alerts_by_rule: { geo_velocity: 1 },
        lag_records: 7,
      },
    });
    assert.equal(s?.records, 50);
    assert.equal(s?.invalid, 2);
    assert.equal(s?.lag, 7);
    assert.deepEqual(s?.alertsByRule, { geo_velocity: 1 });
  });

  it("rejects anything else", () => {
    for (const body of [undefined, null, "text", [], { status: "ok" }])
      assert.equal(normalizeStatus(body), undefined);
  });
});

describe("toFeedAlert: masked data only", () => {
  const alert = {
    alert_id: "a1",
    rule_id: "velocity_count",
    rule_type: "velocity_count",
    severity: "high",
    account_id: "acc_1",
    masked_card: { bin: "411111", last4: "1111", token: "tok_secret_token" },
    transaction_id: "tx_1",
    event_time: "2026-01-01T00:00:00.000Z",
    detected_at: "2026-01-01T00:00:00.250Z",
    figures: { count: 10, sum: "183.17", sumMinor: 18317 },
  };

  it("keeps BIN and last digits, drops the token, and computes the detection latency", () => {
    const a = toFeedAlert(alert)!;
    assert.equal(a.card, "411111 •••••• 1111");
    assert.equal(a.detection_latency_ms, 250);
    assert.deepEqual(a.figures, { count: 10, sum: "183.17", sumMinor: 18317 });
    assert.ok(!JSON.stringify(a).includes("tok_secret_token"), "the card token is not in the feed");
  });

  it("never passes a card number through, whatever field it hides in", () => {
    const pan = "4111111111111111";
    const a = toFeedAlert({
      ...alert,
      account_id: `acc ${pan}`,
      masked_card: { bin: pan, last4: "1111" },
      figures: { note: `card ${pan}`, n: 4111111111111111 },
    })!;
    assert.equal(a.card, null, "a BIN field that is not 6 digits is not shown");
    assert.equal(a.account_id, "[redacted]");
    assert.equal(a.figures.note, "[redacted]");
    assert.equal(a.figures.n, "[redacted]");
    assert.deepEqual(findLuhnDigitRuns(JSON.stringify(a)), []);
  });

  it("skips entries that are not alerts", () => {
    assert.equal(toFeedAlert({ rule_id: "x" }), undefined);
    assert.equal(toFeedAlert("alert"), undefined);
  });
});

describe("DashboardAggregator", () => {
  it("computes in/out rates from counter deltas over the rate window and keeps a bounded history", () => {
    const agg = new DashboardAggregator({ historyLength: 3, rateWindowMs: 2000 });
    let snap = agg.update(readings(0, [{ url: "p1", records: 0 }]), 10_000);
    assert.equal(snap.throughput.in_per_s, 0, "first reading: no baseline, no rate");
    assert.deepEqual(snap.history, []);
    snap = agg.update(readings(1000, [{ url: "p1", records: 900 }]), 11_000);
    assert.deepEqual(snap.throughput, { in_per_s: 1000, out_per_s: 900 });
    snap = agg.update(readings(3000, [{ url: "p1", records: 2900 }]), 12_000);
    assert.deepEqual(snap.throughput, { in_per_s: 1500, out_per_s: 1450 }, "mean over the last 2 s");
    for (let i = 1; i <= 3; i++)
      snap = agg.update(readings(3000 + i * 100, [{ url: "p1", records: 2900 }]), 12_000 + i * 1000);
    assert.equal(snap.history.length, 3, "history capped");
    assert.equal(snap.history.at(-1)!.in_per_s, 100);
    assert.equal(snap.collector.target_rate, 1000);
    assert.equal(snap.collector.max_rate, 5000);
    assert.equal(snap.collector.produced, 3300);
  });

  it("sums processors, survives a processor restart, and reports an unreachable one in health", () => {
    const agg = new DashboardAggregator({ rateWindowMs: 1000 });
    agg.update(
      readings(0, [
        { url: "p1", records: 1000 },
        { url: "p2", records: 500 },
      ]),
      0,
    );
    let snap = agg.update(
      readings(0, [
        { url: "p1", records: 1500 },
        { url: "p2", records: 700 },
      ]),
      1000,
    );
    assert.equal(snap.throughput.out_per_s, 700);
    assert.equal(snap.processed.total, 2200);
    assert.equal(snap.processed.duplicate, 2);
    assert.equal(snap.lag_records, 10);
    assert.deepEqual(snap.alerts.by_rule, { velocity_count: 4 });
    // p2 restarted (its counter starts again from 0) and p3 does not answer.
    snap = agg.update(
      readings(0, [{ url: "p1", records: 2000 }, { url: "p2", records: 100 }, { url: "p3" }]),
      2000,
    );
    assert.equal(snap.throughput.out_per_s, 600, "500 from p1 + 100 from the restarted p2, never negative");
    const p3 = snap.health.find((h) => h.name === "processor p3")!;
    assert.equal(p3.ok, false);
    assert.match(p3.detail, /ECONNREFUSED/);
    assert.ok(snap.health.find((h) => h.name === "processor p1")!.ok);
    assert.equal(snap.processors.find((p) => p.url === "p3")!.reachable, false);
  });

  it("p99 latency from the e2e histograms' increase over the latency window", () => {
    const agg = new DashboardAggregator({ latencyWindowMs: 2000 });
    agg.update(
      readings(0, [{ url: "p", records: 0, metrics: e2eMetrics({ "0.01": 0, "0.1": 0, "+Inf": 0 }) }]),
      0,
    );
    let snap = agg.update(
      readings(0, [{ url: "p", records: 0, metrics: e2eMetrics({ "0.01": 100, "0.1": 100, "+Inf": 100 }) }]),
      1000,
    );
    assert.equal(snap.latency.p99_alert_ms, 9.9);
    snap = agg.update(
      readings(0, [
        { url: "p", records: 0, metrics: e2eMetrics({ "0.01": 100, "0.1": 10_100, "+Inf": 10_100 }) },
      ]),
      2000,
    );
    assert.ok(snap.latency.p99_alert_ms! > 90, `slow observations dominate: ${snap.latency.p99_alert_ms}`);
    for (const t of [3000, 4000, 5000]) {
      snap = agg.update(
        readings(0, [
          { url: "p", records: 0, metrics: e2eMetrics({ "0.01": 100, "0.1": 10_100, "+Inf": 10_100 }) },
        ]),
        t,
      );
    }
    assert.equal(snap.latency.p99_alert_ms, null, "nothing observed within the window");
  });

  it("health: collector, dependencies from /status and dependency_up, and the alert feed", () => {
    const agg = new DashboardAggregator();
    const metrics = e2eMetrics(
      {},
      'paystream_dependency_up{dependency="dedup"} 1\npaystream_dependency_up{dependency="postgres"} 0\n',
    );
    const r = readings(0, [
      {
        url: "p",
        records: 10,
        metrics,
        status: processorStatus(10, { health: { postgres: "connection refused" } }),
      },
    ]);
    r.collector!.ready = { status: 503, body: { status: "not_ready", failing: { sink: "broker down" } } };
    r.alerts = { source: "redis", latest: [], activeAccounts: null, error: "redis: ECONNREFUSED" };
    const snap = agg.update(r, 0);
    const h = Object.fromEntries(snap.health.map((x) => [x.name, x]));
    assert.deepEqual(h.collector, { name: "collector", ok: false, detail: "sink: broker down" });
    assert.deepEqual(h.postgres, { name: "postgres", ok: false, detail: "connection refused" });
    assert.equal(h.dedup?.ok, true);
    assert.equal(h["alert feed"]?.ok, false);
  });

  it("an unreachable collector: no rates claimed, the reason shown", () => {
    const agg = new DashboardAggregator();
    const r = readings(0, []);
    r.collector = {
      url: "http://c:5000",
      config: down("http://c:5000: ECONNREFUSED"),
      stats: down("x"),
      ready: down("x"),
    };
    const snap = agg.update(r, 0);
    assert.equal(snap.collector.reachable, false);
    assert.equal(snap.collector.target_rate, null);
    assert.match(snap.collector.error!, /ECONNREFUSED/);
    assert.equal(snap.health[0]!.ok, false);
  });

  it("no collector configured (production): not an outage, processors still counted", () => {
    const agg = new DashboardAggregator();
    const r0 = readings(0, [{ url: "http://p:9464", records: 100 }]);
    r0.collector = undefined;
    agg.update(r0, 0);
    const r1 = readings(0, [{ url: "http://p:9464", records: 400 }]);
    r1.collector = undefined;
    const snap = agg.update(r1, 3000);
    assert.equal(snap.collector.error, "no collector configured");
    assert.equal(snap.collector.url, null);
    assert.ok(!snap.health.some((h) => h.name === "collector"), "no collector health item to fail");
    assert.equal(snap.processed.total, 400);
    assert.ok(snap.throughput.out_per_s > 0, "processed rate still shown");
  });

  it("the feed holds at most feedSize alerts, newest first as given, masked", () => {
    const agg = new DashboardAggregator({ feedSize: 2 });
    const alerts = [1, 2, 3].map((i) => ({
      alert_id: `a${i}`,
      rule_id: "r",
      masked_card: { bin: "555555", last4: "4444", token: "t" },
      event_time: "2026-01-01T00:00:00.000Z",
      detected_at: "2026-01-01T00:00:01.000Z",
    }));
    const snap = agg.update(readings(0, [], alerts), 0);
    assert.deepEqual(
      snap.alerts.latest.map((a) => a.alert_id),
      ["a1", "a2"],
    );
    assert.equal(snap.alerts.latest[0]!.card, "555555 •••••• 4444");
    assert.equal(snap.alerts.active_accounts_5m, 3);
  });
});
