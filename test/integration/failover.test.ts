/**
 * Broker failover on a production-shaped cluster: 3 KRaft nodes started by
 * scripts/services.sh (its own state dir and ports 19092-19097), topics at replication
 * factor 3 with min.insync.replicas 2, a collector and a processor as child processes.
 *
 * - kill -9 of the broker leading the most input partitions, down 30 s, restarted;
 * - kill -9 of the processor group's coordinator, down 30 s, restarted;
 * - one broker stopped under topics at replication factor 2 with min ISR 2: the leaders
 *   refuse writes (NOT_ENOUGH_REPLICAS) until it is back — a retriable outage.
 *
 * Each run ends with `paystream verify` clean, the collector's unsent at 0 and the processor
 * ready; what each service did meanwhile is printed as the test's diagnostics.
 */
import "../helpers/cluster-env.ts";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createAdmin,
  describeTopics,
  ensureTopics,
  waitForLeaders,
} from "../../src/adapters/kafka/client.ts";
import { Topics } from "../../src/contracts/topics.ts";
import {
  busiestLeader,
  clusterConn,
  clusterCtl,
  coordinatorOf,
  groupLag,
  leaderCounts,
  removeCluster,
  type Sample,
  Timeline,
  waitInSync,
  waitLeadersOff,
} from "../helpers/cluster.ts";
import { clusterBrokers } from "../helpers/cluster-env.ts";
import type { TestTopics } from "../helpers/pipeline.ts";
import {
  freshDatabase,
  kill9,
  type PipelineRun,
  runVerify,
  type Service,
  startCollector,
  startProcessor,
  stopGracefully,
  waitReady,
  waitUntil,
} from "../helpers/processes.ts";
import { uniqueName } from "../helpers/services.ts";

/** Collector rate: see docs/guarantees.md ("Broker failover") for what this box sustains. */
const RATE = Number(process.env.PAYSTREAM_FAILOVER_RATE ?? 10_000);
const OUTAGE_MS = 30_000;

type Run = PipelineRun;

const runs: Run[] = [];

async function newRun(prefix: string, topics: (t: TestTopics) => Promise<void>): Promise<Run> {
  const run: Run = {
    topics: {
      input: uniqueName(`${prefix}-in`),
      dlq: uniqueName(`${prefix}-dlq`),
      alerts: uniqueName(`${prefix}-alerts`),
      labels: uniqueName(`${prefix}-labels`),
    },
    db: await freshDatabase(),
    group: uniqueName(`${prefix}-group`),
    seed: Date.now() % 1_000_000,
    procs: [],
  };
  runs.push(run);
  await topics(run.topics);
  return run;
}

/** The project's layout (24 input partitions) at replication factor 3, as `paystream topics` makes it. */
async function productionTopics(t: TestTopics): Promise<void> {
  await ensureTopics(clusterConn, undefined, 3, {
    [Topics.transactions]: t.input,
    [Topics.dlq]: t.dlq,
    [Topics.alerts]: t.alerts,
    [Topics.labels]: t.labels,
  });
}

/** Collector's closing line: {"produced":..,"unsent":..}. */
function collectorTotals(c: Service): { produced: number; unsent: number } {
  const line = c
    .output()
    .split("\n")
    .findLast((l) => l.startsWith('{"produced"'));
  assert.ok(line, `the collector printed its totals:\n${c.output().slice(-2000)}`);
  return JSON.parse(line) as { produced: number; unsent: number };
}

function fmt(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Stretches of not-ready /readyz answers, with the first reason of each. */
function notReadyStretches(samples: Sample[]): string[] {
  const out: string[] = [];
  let start: Sample | undefined;
  let last: Sample | undefined;
  for (const s of samples) {
    if (s.ready !== 200 && !start) start = s;
    if (s.ready === 200 && start) {
      out.push(`${fmt(start.t)}–${fmt(last!.t)} (${start.ready}: ${start.why?.slice(0, 200)})`);
      start = undefined;
    }
    last = s;
  }
  if (start) out.push(`${fmt(start.t)}– (still ${start.ready}: ${start.why?.slice(0, 200)})`);
  return out;
}

/** Longest time `key` (records processed, or acknowledged by the broker) did not move. */
function longestStall(samples: Sample[], key: "processed" | "produced"): number {
  let worst = 0;
  let since = samples[0]?.t ?? 0;
  for (let i = 1; i < samples.length; i++) {
    if (samples[i]![key] !== samples[i - 1]![key]) since = samples[i]!.t;
    else worst = Math.max(worst, samples[i]!.t - since);
  }
  return worst;
}

/** Records the collector had acknowledged per second between two moments of the timeline. */
function rateBetween(samples: Sample[], from: number, to: number): number {
  const a = samples.find((s) => s.t >= from && s.produced > 0);
  const b = samples.findLast((s) => s.t <= to && s.produced > 0);
  return a && b && b.t > a.t ? Math.round(((b.produced - a.produced) * 1000) / (b.t - a.t)) : 0;
}

/** The processor's paystream_sink_errors_total{sink="kafka"}: failed Kafka work it reported. */
async function kafkaErrors(proc: Service): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${proc.port}/metrics`)).text();
  const m = text.match(/^paystream_sink_errors_total\{sink="kafka"[^}]*\} (\d+)/m);
  return Number(m?.[1] ?? 0);
}

interface Pipeline {
  timeline: Timeline;
  proc: Service;
  collector: Service;
}

/**
 * One run: a processor, then a collector at RATE on `run`'s topics; `outage` once traffic
 * has flowed 8 s; 5 s more traffic; the collector stopped (SIGTERM). Then the checks every
 * run ends with: the collector exited 0 with unsent 0, the processor kept running, caught up
 * and is ready, stops cleanly, and `paystream verify` is clean.
 */
async function withTraffic(
  t: TestContext,
  run: Run,
  outage: (p: Pipeline) => Promise<void>,
): Promise<Timeline> {
  const proc = startProcessor(run.topics, run.group, run.db.url, [], { PAYSTREAM_LOG_LEVEL: "info" });
  run.procs.push(proc);
  await waitReady(proc);
  // Stopped by the test, not by a count: the box decides how many records that is.
  const collector = startCollector(run.topics, RATE, RATE * 3600, run.seed);
  run.procs.push(collector);
  const timeline = new Timeline(proc.port, collector.port);
  let stoppedAt = Number.POSITIVE_INFINITY;
  try {
    await sleep(8000);
    await outage({ timeline, proc, collector });
    await sleep(5000);
    stoppedAt = timeline.now();
    assert.equal(await stopGracefully(collector), 0, `collector exit:\n${collector.output().slice(-3000)}`);
    const totals = collectorTotals(collector);
    assert.equal(totals.unsent, 0, "every generated record was taken by the cluster");
    t.diagnostic(`collector stopped at ${fmt(timeline.now())}: ${totals.produced} records`);
    await waitUntil(
      async () => (await groupLag(run.topics.input, run.group)) === 0n,
      180_000,
      "the processor caught up (group lag 0)",
    );
    await waitReady(proc, 60_000);
    t.diagnostic(`processor caught up at ${fmt(timeline.now())}`);
  } finally {
    await timeline.stop();
    const samples = timeline.samples;
    // While traffic flowed: afterwards nothing is produced, and nothing is left to process.
    const traffic = samples.filter((s) => s.t <= stoppedAt);
    t.diagnostic(
      `collector rate before the outage: ${rateBetween(samples, 1000, 8000)}/s (target ${RATE}/s)`,
    );
    t.diagnostic(`processor not ready: ${notReadyStretches(samples).join("; ") || "never"}`);
    t.diagnostic(
      `longest stall: processed ${fmt(longestStall(traffic, "processed"))}, produced ${fmt(longestStall(traffic, "produced"))}; collector send errors ${Math.max(0, ...samples.map((s) => s.sendErrors))}`,
    );
    t.diagnostic(`collector output (tail):\n${collector.output().slice(-1500)}`);
    t.diagnostic(`processor output (tail):\n${proc.output().slice(-4000)}`);
  }
  assert.equal(proc.child.exitCode, null, `the processor kept running:\n${proc.output().slice(-3000)}`);
  assert.equal(await stopGracefully(proc), 0, proc.output().slice(-3000));
  const v = await runVerify(run.topics, run.group, run.db.url);
  assert.equal(v.code, 0, `paystream verify:\n${v.stdout}\n${v.stderr.slice(-2000)}`);
  assert.match(v.stdout, /verdict: CLEAN/);
  t.diagnostic(v.stdout.split("\n").find((l) => l.startsWith("verdict")) ?? v.stdout);
  return timeline;
}

/**
 * kill -9 of node `victim`, 30 s down, restarted, every replica back in sync. Whether the
 * processor notices depends on its client: when fetches from the dead leader fail past the
 * client's retries it rebuilds its consumer (/readyz 503 naming kafka for a few seconds),
 * otherwise it follows the new leaders without a word. Either way it must keep running, be
 * ready afterwards, and blame nothing but Kafka meanwhile; what it did is reported.
 */
async function killBroker(t: TestContext, run: Run, p: Pipeline, victim: number, why: string): Promise<void> {
  const { timeline, proc } = p;
  const topics = Object.values(run.topics);
  const ledInput = (await leaderCounts(run.topics.input)).get(victim) ?? 0;
  const errorsBefore = await kafkaErrors(proc);
  const killedAt = timeline.now();
  clusterCtl("kill-one", `kafka-${victim}`);
  t.diagnostic(
    `killed node ${victim} (${why}; it led ${ledInput} of 24 input partitions) at ${fmt(killedAt)}`,
  );
  await waitLeadersOff(topics, victim, 60_000);
  t.diagnostic(`new leaders elected ${fmt(timeline.now() - killedAt)} after the kill`);
  await sleep(Math.max(0, killedAt + OUTAGE_MS - timeline.now()));
  const restartAt = timeline.now();
  clusterCtl("start-one", `kafka-${victim}`);
  t.diagnostic(`node ${victim} serving ${fmt(timeline.now() - restartAt)} after its restart`);
  await waitInSync(topics, 120_000);
  t.diagnostic(`every replica in sync ${fmt(timeline.now() - restartAt)} after the restart`);
  await waitReady(proc, 60_000);
  assert.equal(proc.child.exitCode, null, "the processor kept running");
  const during = timeline.between(killedAt, timeline.now()).filter((s) => s.ready !== 200);
  for (const s of during) {
    const blamed = [...(JSON.parse(s.why ?? "{}").dependencies ?? "").matchAll(/(?:^|; )(\w+): /g)].map(
      (m) => m[1],
    );
    assert.deepEqual(
      blamed.filter((d) => !["kafka", "recovery", "commit"].includes(d!)),
      [],
      `only Kafka is blamed: ${s.why}`,
    );
  }
  t.diagnostic(
    `processor: ${during.length ? `not ready from ${fmt(during[0]!.t - killedAt)} to ${fmt(during.at(-1)!.t - killedAt)} after the kill (${during[0]!.why?.slice(0, 160)})` : "ready throughout"}; Kafka failures it counted: ${(await kafkaErrors(proc)) - errorsBefore}`,
  );
}

describe("broker failover on a 3-node cluster loses and doubles nothing", { concurrency: false }, () => {
  before(() => {
    clusterCtl("start-one", "kafka");
  });
  after(async () => {
    for (const run of runs) {
      for (const p of run.procs) if (p.child.exitCode === null) await kill9(p);
      await run.db.drop();
    }
    removeCluster();
  });

  it("services.sh starts 3 brokers with the project's topics at RF 3, min ISR 2; more replicas than brokers is refused", async () => {
    const project = await describeTopics(clusterConn, Object.values(Topics));
    for (const [topic, d] of project) {
      assert.deepEqual(
        { replicas: d.replicas, minIsr: d.minInsyncReplicas },
        { replicas: 3, minIsr: 2 },
        `${topic} replication`,
      );
    }
    assert.equal(project.get(Topics.transactions)?.partitions, 24);
    // A processor or collector creating its missing topics (no --replicas) does the same.
    const own = uniqueName("fo-default-dlq");
    await ensureTopics(clusterConn, [Topics.dlq], undefined, { [Topics.dlq]: own });
    assert.deepEqual((await describeTopics(clusterConn, [own])).get(own), {
      partitions: 6,
      replicas: 3,
      minInsyncReplicas: 2,
      cleanupPolicy: "delete",
    });
    const refused = spawnSync(
      "bin/paystream",
      ["topics", "--kafka", clusterBrokers.join(","), "--replicas", "4"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(refused.status, 1);
    assert.match(
      refused.stderr,
      /4 replicas need at least 4 brokers; the cluster at .* has 3.*\[PS_CONFIG_INVALID\]/,
    );
  });

  it(`kill -9 of the busiest input leader, then of the group coordinator, 30 s each, at ${RATE} tx/s`, async (t) => {
    const run = await newRun("fo-kill", productionTopics);
    await withTraffic(t, run, async (p) => {
      const { node, partitions } = await busiestLeader(run.topics.input);
      await killBroker(t, run, p, node, `leader of ${partitions} of 24 input partitions`);
      await killBroker(t, run, p, await coordinatorOf(run.group), "coordinator of the processor's group");
    });
  });

  it("one broker down under RF 2 / min ISR 2: NOT_ENOUGH_REPLICAS is a retriable outage", async (t) => {
    // Every partition has a follower on node 1, led by node 2 or 3: stopping node 1 moves no
    // leader and leaves each partition one replica in sync, so every write is refused
    // (NOT_ENOUGH_REPLICAS), as on an RF 3 topic with two brokers down.
    const victim = 1;
    const run = await newRun("fo-isr", async (topics) => {
      const admin = createAdmin(clusterConn);
      const followed = (partitions: number) =>
        Array.from({ length: partitions }, (_, partition) => ({
          partition,
          brokers: [2 + (partition % 2), victim],
        }));
      try {
        await admin.createTopics({
          topics: [
            { topic: topics.input, assignments: followed(12) },
            { topic: topics.labels, assignments: followed(2) },
            { topic: topics.dlq, assignments: followed(2) },
            { topic: topics.alerts, assignments: followed(2) },
          ],
          configs: [{ name: "min.insync.replicas", value: "2" }],
        });
        await waitForLeaders(admin, Object.values(topics));
      } finally {
        await admin.close();
      }
    });
    await withTraffic(t, run, async ({ timeline, proc, collector }) => {
      const stoppedAt = timeline.now();
      clusterCtl("stop-one", `kafka-${victim}`);
      // The client retries a refused write for ~15 s before the collector sees it fail.
      await waitUntil(
        () => timeline.samples.some((s) => /NOT_ENOUGH_REPLICAS/.test(s.collectorFailing ?? "")),
        90_000,
        "the collector's /status naming NOT_ENOUGH_REPLICAS",
      );
      t.diagnostic(`collector /status failing ${fmt(timeline.now() - stoppedAt)} after the stop`);
      await sleep(Math.max(0, stoppedAt + OUTAGE_MS - timeline.now()));
      assert.equal(collector.child.exitCode, null, "the collector kept running");
      assert.equal(proc.child.exitCode, null, "the processor kept running");
      assert.match(
        collector.output(),
        /NOT_ENOUGH_REPLICAS.*min\.insync\.replicas.*"msg":"produce failed, retrying"/,
      );
      const metrics = await (await fetch(`http://127.0.0.1:${collector.port}/metrics`)).text();
      assert.match(metrics, /^paystream_collector_send_errors_total(\{[^}]*\})? [1-9]/m);
      const during = timeline.between(stoppedAt, timeline.now());
      t.diagnostic(
        `processor during the outage: ${[...new Set(during.map((s) => s.why?.slice(0, 200) ?? "ready"))].join(" | ")}`,
      );
      const restartAt = timeline.now();
      clusterCtl("start-one", `kafka-${victim}`);
      await waitInSync(Object.values(run.topics), 120_000);
      t.diagnostic(
        `writes accepted again: every replica in sync ${fmt(timeline.now() - restartAt)} after the restart`,
      );
    });
  });
});
