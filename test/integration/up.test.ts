/**
 * `paystream up` as a user runs it: a child process, on embedded defaults and then on the
 * real local services, with its HTTP endpoints probed while it runs and its outputs checked
 * after a clean exit.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createAdmin, waitForLeaders } from "../../src/adapters/kafka/client.ts";
import { openWarehouse } from "../../src/adapters/warehouse/index.ts";
import { connectPostgres } from "../../src/adapters/warehouse/postgres.ts";
import { services, uniqueName } from "../helpers/services.ts";

interface Summary {
  api: { collector: { writes: string }; dashboard: { writes: string; allowed_hosts: string[] | string } };
  collector: { produced: number; by_kind: Record<string, number>; labels: Record<string, number> };
  processor: {
    processed: number;
    ok: number;
    duplicates: number;
    dlq: number;
    alerts: number;
    alerts_by_rule: Record<string, number>;
  };
}

let nextPort = 20_000 + (process.pid % 5000) * 2;

async function runUp(args: string[], env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "ps-up-"));
  const port = nextPort++;
  const collectorPort = nextPort++;
  const summaryFile = join(dir, "summary.json");
  const child = spawn(
    "bin/paystream",
    [
      "up",
      "--duration",
      "20s",
      "--port",
      String(port),
      "--collector-port",
      String(collectorPort),
      "--status-every",
      "2s",
      "--scenario-rate",
      "0.05",
      "--summary-file",
      summaryFile,
      // Transaction ids derive from the seed: a fresh seed keeps this run's ids out of the
      // shared Redis dedup store's memory of earlier runs.
      "--seed",
      String(Date.now() % 2_000_000_000),
      ...args,
    ],
    { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));

  // While it runs: /metrics answers, and the rate API changes the rate.
  let metrics = "";
  for (let i = 0; i < 100 && !metrics; i++) {
    await new Promise((r) => setTimeout(r, 200));
    metrics = await fetch(`http://127.0.0.1:${port}/metrics`)
      .then((r) => (r.ok ? r.text() : ""))
      .catch(() => "");
  }
  const rate = await fetch(`http://127.0.0.1:${collectorPort}/config/rate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages_per_second: 1500 }),
  });
  const code = await exited;
  return {
    code,
    stdout,
    stderr,
    metrics,
    rateStatus: rate.status,
    dir,
    summary: () => JSON.parse(readFileSync(summaryFile, "utf8")) as Summary,
  };
}

function assertPipelineWorked(r: Awaited<ReturnType<typeof runUp>>): Summary {
  assert.equal(r.code, 0, `clean exit; stderr: ${r.stderr.slice(-2000)}`);
  assert.match(r.metrics, /paystream_processor_records_total/, "/metrics answered during the run");
  assert.equal(r.rateStatus, 200, "rate change accepted");
  assert.match(r.stdout, /paystream is running/);
  assert.match(r.stdout, /\| processed [\d,]+/, "status lines printed");
  assert.match(r.stdout, /paystream stopped after/);
  const s = r.summary();
  assert.ok(s.collector.produced > 15_000, `produced ${s.collector.produced}`);
  assert.equal(s.processor.processed, s.collector.produced, "everything produced was processed");
  assert.ok(s.processor.alerts > 0, "alerts raised for injected scenarios");
  assert.ok((s.collector.labels.malformed ?? 0) > 0, "malformed events were injected");
  assert.equal(s.processor.dlq, s.collector.by_kind.malformed, "every malformed event went to the DLQ");
  assert.equal(s.processor.duplicates, s.collector.by_kind.duplicate ?? 0, "every duplicate dropped");
  return s;
}

describe("paystream up (child process)", () => {
  it("runs the whole pipeline on embedded defaults: alerts, DuckDB rows, DLQ, /metrics, clean exit", async () => {
    const dbDir = mkdtempSync(join(tmpdir(), "ps-up-db-"));
    const url = `duckdb:${join(dbDir, "up.duckdb")}`;
    const r = await runUp(["--warehouse", url]);
    const s = assertPipelineWorked(r);
    assert.match(r.stdout, /embedded \(no Kafka, no Redis needed\)/);
    // A demo on loopback: the controls are open (the rate change above had no token), and
    // only loopback Host names are answered.
    assert.equal(s.api.collector.writes, "open (demo)");
    assert.equal(s.api.dashboard.writes, "open (demo)");
    assert.deepEqual(s.api.dashboard.allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
    const wh = await openWarehouse(url);
    try {
      assert.equal(
        await wh.countTransactions(),
        s.processor.ok,
        "every accepted transaction is a DuckDB row",
      );
      assert.equal(await wh.countAlerts(), s.processor.alerts);
    } finally {
      await wh.close();
    }
  });

  it("runs the same pipeline on the real Kafka, Redis and PostgreSQL", async () => {
    const db = uniqueName("it_up").replaceAll("-", "_");
    const admin = await connectPostgres(services.postgres);
    await admin.query(`create database ${db}`);
    const pgUrl = services.postgres.replace(/\/[^/]*$/, `/${db}`);
    try {
      const r = await runUp(
        [
          "--kafka",
          services.kafka.join(","),
          "--redis",
          services.redis,
          "--warehouse",
          pgUrl,
          "--topic",
          uniqueName("it-up-tx"),
          "--group",
          uniqueName("it-up-group"),
        ],
        { PAYSTREAM_PII_KEY: "00112233445566778899aabbccddeeff" },
      );
      const s = assertPipelineWorked(r);
      assert.match(r.stdout, /real services/);
      const wh = await openWarehouse(pgUrl);
      try {
        assert.equal(
          await wh.countTransactions(),
          s.processor.ok,
          "every accepted transaction is a PostgreSQL row",
        );
        assert.deepEqual(await wh.duplicateTransactionIds(), []);
        assert.equal(await wh.countAlerts(), s.processor.alerts);
      } finally {
        await wh.close();
      }
    } finally {
      await admin.query(`drop database if exists ${db} with (force)`).catch(() => {});
      await admin.end();
    }
  });

  it("stops with a non-zero exit, naming the error, when Kafka refuses the collector's records for good", async () => {
    // Every transaction (~500 bytes) is larger than this topic takes: MESSAGE_TOO_LARGE, which
    // no retry can fix. The collector stops; `up` must stop too rather than serve a dead pipeline.
    const topic = uniqueName("it-up-small");
    const admin = createAdmin({ brokers: services.kafka, clientId: "paystream-it-up" });
    try {
      await admin.createTopics({
        topics: [{ topic, partitions: 1, replicas: 1 }],
        configs: [{ name: "max.message.bytes", value: "200" }],
      });
      await waitForLeaders(admin, [topic]);
      const port = nextPort++;
      const child = spawn(
        "bin/paystream",
        [
          "up",
          "--duration",
          "60s",
          "--port",
          String(port),
          "--collector-port",
          String(nextPort++),
          "--status-every",
          "0",
          "--kafka",
          services.kafka.join(","),
          "--redis",
          services.redis,
          "--topic",
          topic,
          "--group",
          uniqueName("it-up-small-group"),
        ],
        {
          env: { ...process.env, PAYSTREAM_PII_KEY: "00112233445566778899aabbccddeeff" },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      child.stderr.on("data", (d) => {
        out += d;
      });
      const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
      assert.equal(code, 1, out.slice(-3000));
      assert.match(out, /paystream up: the collector stopped: .*\[PS_KAFKA_REJECTED\]/);
      assert.match(out, /paystream stopped after/, "the orderly stop ran (summary printed)");
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.close();
    }
  });

  it("refuses real services without a PII key, naming the variable", async () => {
    const child = spawn(
      "bin/paystream",
      ["up", "--kafka", services.kafka.join(","), "--port", "0", "--collector-port", "0"],
      {
        env: { ...process.env, PAYSTREAM_PII_KEY: "" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    assert.equal(code, 1);
    assert.match(stderr, /PAYSTREAM_PII_KEY/);
  });

  it("off loopback, refuses to start without credentials for its controls, naming the options", async () => {
    const run = (args: string[], env: Record<string, string>) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const c = spawn(
          "bin/paystream",
          ["up", "--host", "0.0.0.0", "--port", "0", "--collector-port", "0", ...args],
          {
            env: { ...process.env, PAYSTREAM_API_TOKEN: "", PAYSTREAM_DASHBOARD_TOKEN: "", ...env },
            stdio: ["ignore", "ignore", "pipe"],
          },
        );
        let stderr = "";
        c.stderr.on("data", (d) => {
          stderr += d;
        });
        c.on("exit", (code) => resolve({ code, stderr }));
      });
    const none = await run([], {});
    assert.equal(none.code, 1);
    assert.match(none.stderr, /collector API has no credentials.*--api-token.*--insecure-open-api/);
    const noDashboard = await run([], { PAYSTREAM_API_TOKEN: "0123456789abcdef0123" });
    assert.equal(noDashboard.code, 1);
    assert.match(noDashboard.stderr, /dashboard has no credentials.*--auth-token.*--basic-auth/);
  });

  it("explains bad flags and busy ports", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const c = spawn("bin/paystream", args, { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        c.stderr.on("data", (d) => {
          stderr += d;
        });
        c.on("exit", (code) => resolve({ code, stderr }));
      });
    const bad = await run(["up", "--rate", "fast"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid config rate: must be an integer/);
    const unknown = await run(["up", "--nope"]);
    assert.match(unknown.stderr, /--nope: unknown flag/);
    const broker = await run([
      "up",
      "--kafka",
      "127.0.0.1:1",
      "--pii-key",
      "00112233445566778899aabbccddeeff",
    ]);
    assert.equal(broker.code, 1);
    assert.match(broker.stderr, /cannot reach Kafka at 127\.0\.0\.1:1/);
    const { createServer } = await import("node:net");
    const server = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const busy = (server.address() as { port: number }).port;
    const inUse = await run(["up", "--collector-port", String(busy), "--port", "0", "--duration", "1s"]);
    server.close();
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, new RegExp(`${busy}: the port is in use`));
  });
});
