/**
 * Starting and watching the real services as child processes: `paystream collector` and
 * `paystream processor`, run through guarded-main.ts (the CLI itself, kept off the shared
 * payments.* topics: see there), on loopback ports of the benchmark's own ranges, logs in
 * the run directory.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Sample } from "../../src/lib/prom-text.ts";
import { type RunTopics, topicMap } from "./kafka.ts";
import {
  type Child,
  childEnv,
  freePort,
  getJson,
  postJson,
  spawnNode,
  stopChild,
  tail,
  waitHttp,
} from "./proc.ts";
import { scrape } from "./prom.ts";
import type { BenchContext } from "./types.ts";

const CLI = fileURLToPath(new URL("./guarded-main.ts", import.meta.url));
/** Port ranges reserved for benchmarks, away from the services' defaults (5000, 9464). */
const COLLECTOR_PORTS = [5150, 5199] as const;
const PROCESSOR_PORTS = [9550, 9599] as const;
/** The collectors' API token for this bench process: their rate endpoint needs one. */
const API_TOKEN = randomBytes(24).toString("hex");

export interface CollectorStats {
  produced: number;
  byKind: Record<string, number>;
  labels: Record<string, number>;
  sendErrors: number;
}

export class CollectorProc {
  readonly child: Child;
  readonly url: string;

  constructor(child: Child, url: string) {
    this.child = child;
    this.url = url;
  }

  stats(): Promise<CollectorStats> {
    return getJson<CollectorStats>(`${this.url}/stats`);
  }

  /** produced, stamped with the middle of the request (when the collector read its counter). */
  async sample(): Promise<{ t: number; produced: number }> {
    const t0 = performance.now();
    const s = await this.stats();
    return { t: (t0 + performance.now()) / 2000, produced: s.produced };
  }

  async setRate(rate: number): Promise<void> {
    await postJson(
      `${this.url}/config/rate`,
      { messages_per_second: rate },
      { authorization: `Bearer ${API_TOKEN}` },
    );
  }

  metrics(): Promise<Sample[]> {
    return scrape(`${this.url}/metrics`);
  }

  stop(): Promise<{ code: number | null }> {
    return stopChild(this.child);
  }
}

export async function startCollector(
  ctx: BenchContext,
  name: string,
  topics: RunTopics,
  flags: string[],
  nodeFlags: string[] = [],
): Promise<CollectorProc> {
  const port = await freePort(...COLLECTOR_PORTS);
  const child = spawnNode(
    name,
    [
      CLI,
      "collector",
      "--kafka",
      ctx.services.brokers.join(","),
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      // A seed per run: transaction ids differ from every earlier run's.
      "--seed",
      String(1 + Math.floor(Math.random() * 2 ** 30)),
      ...flags,
    ],
    {
      logFile: join(ctx.runDir, `${name}.log`),
      env: childEnv({ BENCH_TOPIC_MAP: JSON.stringify(topicMap(topics)), PAYSTREAM_API_TOKEN: API_TOKEN }),
      nodeFlags,
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/healthz`, child);
  return new CollectorProc(child, url);
}

export interface ProcessorStatus {
  totals: {
    records: number;
    ok: number;
    duplicates: number;
    invalid: number;
    late: number;
    alerts: number;
    batches: number;
  };
  windowAccounts: number;
  health: Record<string, string>;
}

export class ProcessorProc {
  readonly child: Child;
  readonly url: string;

  constructor(child: Child, url: string) {
    this.child = child;
    this.url = url;
  }

  status(): Promise<ProcessorStatus> {
    return getJson<ProcessorStatus>(`${this.url}/status`);
  }

  metrics(): Promise<Sample[]> {
    return scrape(`${this.url}/metrics`);
  }

  /** A graceful stop drains and commits; a CPU profile is written on the way out. */
  stop(): Promise<{ code: number | null }> {
    return stopChild(this.child, 30_000);
  }
}

export async function startProcessor(
  ctx: BenchContext,
  name: string,
  opts: { topics: RunTopics; group: string; warehouse: string; nodeFlags?: string[]; flags?: string[] },
): Promise<ProcessorProc> {
  const port = await freePort(...PROCESSOR_PORTS);
  const child = spawnNode(
    name,
    [
      CLI,
      "processor",
      "--kafka",
      ctx.services.brokers.join(","),
      "--topic",
      opts.topics.transactions,
      "--group",
      opts.group,
      "--redis",
      ctx.services.redisUrl,
      "--warehouse",
      opts.warehouse,
      "--host",
      "127.0.0.1",
      "--metrics-port",
      String(port),
      // The shortest horizon allowed: the run's claims leave Redis soon after it ends.
      "--dedup-ttl",
      "1m",
      ...(opts.flags ?? []),
    ],
    {
      logFile: join(ctx.runDir, `${name}.log`),
      env: childEnv({
        PAYSTREAM_PII_KEY: randomBytes(32).toString("hex"),
        BENCH_TOPIC_MAP: JSON.stringify(topicMap(opts.topics)),
      }),
      nodeFlags: opts.nodeFlags ?? [],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  // Ready = in the consumer group with Redis and the warehouse answering.
  await waitHttp(`${url}/readyz`, child, 90_000);
  return new ProcessorProc(child, url);
}

export { tail };
