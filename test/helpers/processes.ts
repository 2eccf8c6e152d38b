/**
 * Runs paystream services as child processes, the way they run in production, so tests can
 * kill -9 them, restart them, and read their /status and /readyz.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { connectPostgres } from "../../src/adapters/warehouse/postgres.ts";
import { waitFor } from "./fixtures.ts";
import type { TestTopics } from "./pipeline.ts";
import { services, uniqueName } from "./services.ts";

// Below Linux's ephemeral range (32768-60999): a port taken from there can already be the
// local end of some client connection, and the child would then fail with "port in use".
// 50 ports per test process, spread by pid so concurrent test files do not meet.
let nextPort = 20_000 + (process.pid % 250) * 50;
export function freePort(): number {
  return nextPort++;
}

export interface Service {
  name: string;
  port: number;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export const PII_KEY = "8f1e2d3c4b5a69788796a5b4c3d2e1f0";
/** The collector's API token in tests: its write endpoints need one (docs/security.md). */
export const COLLECTOR_TOKEN = "test-collector-token-0123456789";

export function startService(
  name: string,
  args: string[],
  port: number,
  env: Record<string, string> = {},
): Service {
  const child = spawn("bin/paystream", args, {
    env: { ...process.env, PAYSTREAM_PII_KEY: PII_KEY, PAYSTREAM_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => {
    out = (out + d).slice(-20_000);
  });
  child.stderr!.on("data", (d) => {
    out = (out + d).slice(-20_000);
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { name, port, child, output: () => out, exited };
}

export async function getJson<T>(
  port: number,
  path: string,
): Promise<{ status: number; body: T | undefined }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: (await res.json()) as T };
  } catch {
    return { status: 0, body: undefined };
  }
}

export function waitUntil(
  cond: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  return waitFor(cond, timeoutMs, what, 200);
}

export interface ProcessorStatus {
  totals: { records: number; ok: number; duplicates: number; invalid: number; alerts: number };
  health: Record<string, string>;
}

export function startProcessor(
  topics: TestTopics,
  group: string,
  warehouse: string,
  extra: string[] = [],
  env: Record<string, string> = {},
): Service {
  const port = freePort();
  return startService(
    "processor",
    [
      "processor",
      "--kafka",
      services.kafka.join(","),
      "--redis",
      services.redis,
      "--topic",
      topics.input,
      "--dlq-topic",
      topics.dlq,
      "--alerts-topic",
      topics.alerts,
      "--group",
      group,
      "--warehouse",
      warehouse,
      "--metrics-port",
      String(port),
      "--host",
      "127.0.0.1",
      // Test runs are minutes long: their dedup claims must not pile up in the shared Redis
      // for the default day (maxmemory 2 GB, noeviction).
      "--dedup-ttl",
      "15m",
      ...extra,
    ],
    port,
    env,
  );
}

export async function waitReady(s: Service, timeoutMs = 60_000): Promise<void> {
  try {
    await waitUntil(
      async () => (await getJson(s.port, "/readyz")).status === 200,
      timeoutMs,
      `${s.name} ready`,
    );
  } catch (err) {
    // Why it is not ready is in its own /readyz answer and its log: put both in the failure.
    const why = await getJson(s.port, "/readyz");
    throw new Error(
      `${(err as Error).message}; /readyz ${why.status} ${JSON.stringify(why.body)}; exit ${s.child.exitCode}; last output:\n${s.output().slice(-4000)}`,
    );
  }
}

export function startCollector(topics: TestTopics, rate: number, count: number, seed: number): Service {
  const port = freePort();
  return startService(
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
      String(rate),
      "--count",
      String(count),
      "--seed",
      String(seed),
      "--scenario-rate",
      "0.02",
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
    ],
    port,
    { PAYSTREAM_API_TOKEN: COLLECTOR_TOKEN },
  );
}

export async function kill9(s: Service): Promise<void> {
  s.child.kill("SIGKILL");
  await s.exited;
}

export async function stopGracefully(s: Service): Promise<number | null> {
  s.child.kill("SIGTERM");
  return s.exited;
}

/** Runs an admin statement on its own connection (tests restart PostgreSQL in between). */
async function adminQuery(sql: string): Promise<void> {
  const admin = await connectPostgres(services.postgres);
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

/** One outage or failover run: its own topics, database and consumer group, and its processes. */
export interface PipelineRun {
  topics: TestTopics;
  db: Awaited<ReturnType<typeof freshDatabase>>;
  group: string;
  seed: number;
  procs: Service[];
}

/** A fresh PostgreSQL database for one test; dropped by the returned function. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const db = uniqueName("it_fail").replaceAll("-", "_");
  await adminQuery(`create database ${db}`);
  return {
    url: services.postgres.replace(/\/[^/]*$/, `/${db}`),
    drop: () => adminQuery(`drop database if exists ${db} with (force)`).catch(() => {}),
  };
}

/**
 * `paystream verify` as users run it, against one test run's topics, Redis and warehouse.
 * Resolves with its exit code and output (the table, or the reason it could not look).
 */
export function runVerify(
  topics: TestTopics,
  group: string,
  warehouse: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = [
    "verify",
    "--kafka",
    services.kafka.join(","),
    "--topic",
    topics.input,
    "--labels-topic",
    topics.labels,
    "--dlq-topic",
    topics.dlq,
    "--alerts-topic",
    topics.alerts,
    "--redis",
    services.redis,
    "--warehouse",
    warehouse,
    "--group",
    group,
    "--timeout",
    "120s",
  ];
  return runPaystream(args);
}

/** `bin/paystream <args>` to its end: exit code and everything it printed. */
export function runPaystream(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bin/paystream", args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Stops / starts one local service through the project's own script (same env: same set). */
export function serviceCtl(
  action: "stop-one" | "start-one" | "kill-one",
  name: string,
  opts: { args?: string[]; env?: Record<string, string> } = {},
): string {
  return execFileSync("bash", ["scripts/services.sh", action, name, ...(opts.args ?? [])], {
    encoding: "utf8",
    timeout: 180_000,
    ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
  });
}
