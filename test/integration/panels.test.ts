/**
 * Every panel of the Grafana dashboard returns data (issue 12): the pipeline runs for real
 * (`paystream collector` and `paystream processor` as child processes on the local Kafka and
 * Redis), a Prometheus of this test's own scrapes them and a real redis_exporter, loads the
 * project's rule files, and then each query of monitoring/grafana/paystream.json, with its
 * template variables substituted as Grafana would, is evaluated through Prometheus's HTTP API.
 * A query that returns no series fails the test, named by panel and query.
 *
 * Scraped for real: the processor and collector (jobs paystream-processor and
 * paystream-collector, with a `namespace` target label as prometheus-operator adds), and
 * redis_exporter (Debian prometheus-redis-exporter) on the shared Redis, run with the
 * dashboard's Lua script. The dashboard's precision per rule (job paystream-dashboard) is served
 * by this test: the dashboard's own gauges (registerCaseMetrics) on the /metrics endpoint every
 * service serves, over an embedded case store in which two cases were resolved as analysts do.
 *
 * Backfilled, because they cannot run without Kubernetes: cAdvisor's container_* series and
 * kube-state-metrics' kube_* series (container limits, restarts, last termination reason, the
 * processor's HPA). They are written in those exporters' own names and labels to an
 * OpenMetrics file and loaded with `promtool tsdb create-blocks-from openmetrics` before this
 * Prometheus starts, covering the 10 minutes before it. What the test proves for them is that
 * the panels' selectors, label joins and namespace scoping fit the exporters' format.
 *
 * A second release lives in the same Prometheus: the processor is scraped a second time under
 * another namespace and instance, and the backfill has pods and an HPA of that namespace. No
 * panel may show any of its series.
 *
 * Needs prometheus, promtool (Debian `prometheus`) and prometheus-redis-exporter on PATH
 * (scripts/services.sh up installs them), and the local Kafka and Redis.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { EmbeddedCaseStore } from "../../src/adapters/embedded/cases.ts";
import { registerCaseMetrics } from "../../src/dashboard/cases-api.ts";
import { createServiceHttp, listen } from "../../src/lib/http.ts";
import { createRegistry } from "../../src/lib/metrics.ts";
import { createTestTopics, deleteTopics, produceTraffic, type TestTopics } from "../helpers/pipeline.ts";
import {
  freePort,
  getJson,
  type ProcessorStatus,
  type Service,
  startCollector,
  startProcessor,
  stopGracefully,
  waitReady,
  waitUntil,
} from "../helpers/processes.ts";
import { services, uniqueName } from "../helpers/services.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const DASHBOARD = join(ROOT, "monitoring/grafana/paystream.json");
const RULES_DIR = join(ROOT, "monitoring/prometheus/rules");
const REDIS_SCRIPT = join(ROOT, "monitoring/redis-exporter/paystream.lua");

/** The release the dashboard is looked at for: `$namespace` and `$redis_namespace`. */
const NAMESPACE = "paystream-panels";
/** Another release in the same Prometheus: nothing of it may show. */
const OTHER = "paystream-other";
const OTHER_PROCESSOR_INSTANCE = "other-processor:9464";
const OTHER_DASHBOARD_INSTANCE = "other-dashboard:3000";
/**
 * `$__rate_interval`: Grafana makes it at least 4 scrape intervals; 2 m also reaches back over
 * the backfilled samples, which end when this Prometheus starts.
 */
const RATE_INTERVAL = "2m";
const BACKFILL_STEP_S = 15;
const BACKFILL_SPAN_S = 600;

// ------------------------------------------------------------------ the dashboard's queries

interface Target {
  expr: string;
  refId: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query: string };
  allValue?: string;
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
  panels: Panel[];
  templating: { list: Variable[] };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== "row");

/** What each template variable is set to, as a user of this release would pick it. */
const VARIABLES: Record<string, string> = {
  __rate_interval: RATE_INTERVAL,
  namespace: NAMESPACE,
  redis_namespace: NAMESPACE,
  // "All", which the variable sends as its allValue.
  instance: dashboard.templating.list.find((v) => v.name === "instance")?.allValue ?? ".*",
};

function substitute(expr: string): string {
  const out = expr.replace(/\$\{?(\w+)\}?/g, (m, name: string) => VARIABLES[name] ?? m);
  assert.doesNotMatch(out, /\$/, `a template variable this test does not set, in: ${expr}`);
  return out;
}

// ------------------------------------------------------------------ the backfill fixture

interface FixtureSeries {
  family: string;
  type: "counter" | "gauge";
  labels: Record<string, string>;
  /** Value at step i of the backfill (0 = oldest). */
  at: (i: number) => number;
}

const GIB = 1024 ** 3;

/** Pods of a release: the chart's container names, pod names as a Deployment makes them. */
function releasePods(ns: string, release: string, processors: string[]) {
  return [
    ...processors.map((suffix) => ({
      ns,
      pod: `${release}-processor-7d9f8b6c5-${suffix}`,
      container: "processor",
      cpuLimit: 2,
      memLimit: 2 * GIB,
    })),
    {
      ns,
      pod: `${release}-collector-5c7d9f8b6-w8r2z`,
      container: "collector",
      cpuLimit: 1,
      memLimit: GIB / 2,
    },
    {
      ns,
      pod: `${release}-dashboard-6b8c7d9f5-h4j6k`,
      container: "dashboard",
      cpuLimit: 0.5,
      memLimit: GIB / 4,
    },
  ];
}

/**
 * cAdvisor and kube-state-metrics series of two releases, with the labels kube-prometheus-stack
 * scrapes them with (honorLabels: namespace, pod and container are the workload's).
 */
function kubernetesSeries(): FixtureSeries[] {
  const kubelet = {
    endpoint: "https-metrics",
    instance: "10.0.0.5:10250",
    job: "kubelet",
    metrics_path: "/metrics/cadvisor",
    node: "node-a",
    service: "kube-prometheus-stack-kubelet",
  };
  const ksm = {
    endpoint: "http",
    instance: "10.0.3.7:8080",
    job: "kube-state-metrics",
    service: "kube-prometheus-stack-kube-state-metrics",
  };
  const pods = [
    ...releasePods(NAMESPACE, "paystream", ["x2k4p", "q9m3t"]),
    ...releasePods(OTHER, "other-paystream", ["z7x5v"]),
  ];
  const out: FixtureSeries[] = [];
  pods.forEach((p, n) => {
    const uid = `5f0c${n}a2e-93b1-4c1d-8e7a-0b6f2d9c41e${n}`;
    const cgroup = `/kubepods/burstable/pod${uid}`;
    const container = {
      ...kubelet,
      namespace: p.ns,
      pod: p.pod,
      container: p.container,
      id: `${cgroup}/c0ffee${n}`,
      image: "ghcr.io/example/paystream:1.0.0",
      name: `c0ffee${n}`,
    };
    const cores = p.cpuLimit * 0.6;
    out.push(
      {
        family: "container_cpu_usage_seconds",
        type: "counter",
        labels: container,
        at: (i) => i * BACKFILL_STEP_S * cores,
      },
      {
        family: "container_cpu_cfs_periods",
        type: "counter",
        labels: container,
        at: (i) => i * BACKFILL_STEP_S * 10,
      },
      {
        family: "container_cpu_cfs_throttled_periods",
        type: "counter",
        labels: container,
        at: (i) => i * BACKFILL_STEP_S,
      },
      {
        family: "container_memory_working_set_bytes",
        type: "gauge",
        labels: container,
        at: () => p.memLimit * 0.6,
      },
      // The pod's own cgroup (container=""): cAdvisor publishes it too; panels must leave it out.
      {
        family: "container_cpu_usage_seconds",
        type: "counter",
        labels: { ...kubelet, namespace: p.ns, pod: p.pod, container: "", id: cgroup, image: "", name: "" },
        at: (i) => i * BACKFILL_STEP_S * cores,
      },
    );
    const podLabels = { ...ksm, namespace: p.ns, pod: p.pod, container: p.container, uid };
    const oomKilled = n === 0;
    out.push(
      {
        family: "kube_pod_container_resource_limits",
        type: "gauge",
        labels: { ...podLabels, node: "node-a", resource: "cpu", unit: "core" },
        at: () => p.cpuLimit,
      },
      {
        family: "kube_pod_container_resource_limits",
        type: "gauge",
        labels: { ...podLabels, node: "node-a", resource: "memory", unit: "byte" },
        at: () => p.memLimit,
      },
      // The first processor was OOM-killed once, 5 minutes in; kube-state-metrics then
      // publishes its last termination reason.
      {
        family: "kube_pod_container_status_restarts",
        type: "counter",
        labels: podLabels,
        at: (i) => (oomKilled && i * BACKFILL_STEP_S >= BACKFILL_SPAN_S / 2 ? 1 : 0),
      },
    );
    if (oomKilled) {
      out.push({
        family: "kube_pod_container_status_last_terminated_reason",
        type: "gauge",
        labels: { ...podLabels, reason: "OOMKilled" },
        at: () => 1,
      });
    }
  });
  const hpas = [
    { ns: NAMESPACE, name: "keda-hpa-paystream-processor", desired: 3, current: 2, min: 2, max: 24 },
    { ns: OTHER, name: "keda-hpa-other-paystream-processor", desired: 1, current: 1, min: 1, max: 4 },
  ];
  for (const h of hpas) {
    const labels = { ...ksm, namespace: h.ns, horizontalpodautoscaler: h.name };
    for (const [field, v] of [
      ["status_desired_replicas", h.desired],
      ["status_current_replicas", h.current],
      ["spec_min_replicas", h.min],
      ["spec_max_replicas", h.max],
    ] as const) {
      out.push({ family: `kube_horizontalpodautoscaler_${field}`, type: "gauge", labels, at: () => v });
    }
  }
  return out;
}

/** The series in OpenMetrics text, one sample every BACKFILL_STEP_S up to endMs, families contiguous. */
function openMetrics(series: FixtureSeries[], endMs: number): string {
  const steps = BACKFILL_SPAN_S / BACKFILL_STEP_S;
  const lines: string[] = [];
  const families = [...new Set(series.map((s) => s.family))];
  for (const family of families) {
    const members = series.filter((s) => s.family === family);
    lines.push(`# TYPE ${family} ${members[0]!.type}`);
    for (const s of members) {
      const name = s.type === "counter" ? `${family}_total` : family;
      const labels = Object.entries(s.labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(",");
      for (let i = 0; i <= steps; i++) {
        const ts = (endMs - (steps - i) * BACKFILL_STEP_S * 1000) / 1000;
        lines.push(`${name}{${labels}} ${s.at(i)} ${ts.toFixed(3)}`);
      }
    }
  }
  lines.push("# EOF");
  return `${lines.join("\n")}\n`;
}

/** Label values that belong to the other release only. */
function otherReleaseMarkers(series: FixtureSeries[]): Set<string> {
  const marks = new Set([OTHER, OTHER_PROCESSOR_INSTANCE, OTHER_DASHBOARD_INSTANCE]);
  for (const s of series) {
    if (s.labels.namespace !== OTHER) continue;
    for (const k of ["pod", "horizontalpodautoscaler"]) if (s.labels[k]) marks.add(s.labels[k]);
  }
  return marks;
}

// ------------------------------------------------------------------ the dashboard's metrics

/**
 * The dashboard's /metrics as it serves them: its case gauges over a case store in which an
 * analyst resolved one card_testing case as fraud and one as legitimate.
 */
async function dashboardMetrics(): Promise<{ http: ReturnType<typeof createServiceHttp>; port: number }> {
  const store = new EmbeddedCaseStore();
  const now = Date.now();
  const cases = await store.fileAlerts(
    ["acc-panels-1", "acc-panels-2"].map((accountId, i) => ({
      alertId: `panels-alert-${i}`,
      ruleId: "card_testing",
      ruleType: "card_testing" as const,
      severity: "high" as const,
      accountId,
      transactionId: `panels-tx-${i}`,
      eventTimeMs: now,
      detectedAtMs: now,
      figures: { count: 5 },
    })),
  );
  assert.equal(cases.length, 2);
  await store.setStatus(cases[0]!.caseId, { status: "resolved_fraud", by: "panels-test", atMs: now });
  await store.setStatus(cases[1]!.caseId, { status: "resolved_legitimate", by: "panels-test", atMs: now });
  const registry = createRegistry("dashboard");
  registerCaseMetrics(registry, store);
  const http = createServiceHttp({ registry });
  const port = freePort();
  await listen(http, "127.0.0.1", port, "panels test dashboard metrics");
  return { http, port };
}

// ------------------------------------------------------------------ processes

function spawnLogged(cmd: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d).slice(-8000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  child.on("error", (err) => keep(Buffer.from(`${cmd}: ${err.message}`)));
  return { child, output: () => out };
}

function onPath(name: string, pkg: string): string {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  } catch {
    assert.fail(`${name} not found: install the Debian package ${pkg} (scripts/services.sh up does)`);
  }
  return name;
}

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

describe("Grafana panels return data from a Prometheus scraping the running pipeline", () => {
  let dir = "";
  let topics: TestTopics | undefined;
  let processor: Service | undefined;
  let collector: Service | undefined;
  let exporter: ReturnType<typeof spawnLogged> | undefined;
  let dashboardHttp: ReturnType<typeof createServiceHttp> | undefined;
  let prometheus: ReturnType<typeof spawnLogged> | undefined;
  let promUrl = "";
  let markers = new Set<string>();

  async function api<T>(path: string): Promise<T> {
    const res = await fetch(`${promUrl}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    assert.equal(body.status, "success", `GET ${path}: ${body.error}`);
    return body.data;
  }
  const query = (q: string) =>
    api<{ result: Series[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`).then((d) => d.result);

  before(async () => {
    const promtool = onPath("promtool", "prometheus");
    const prometheusBin = onPath("prometheus", "prometheus");
    const exporterBin = onPath("prometheus-redis-exporter", "prometheus-redis-exporter");
    dir = mkdtempSync(join(tmpdir(), "ps-panels-"));

    // The pipeline: a burst of labelled traffic (incidents complete at once, so fraud alerts
    // exist within seconds), then a collector keeping records flowing for the rate panels.
    topics = await createTestTopics("it-panels", 6);
    await produceTraffic(topics.input, {
      seed: 12,
      accounts: 5_000,
      merchants: 500,
      seconds: 60,
      ratePerSecond: 300,
      scenarioRates: { velocity_burst: 0.05, card_testing: 0.05, amount_spike: 0.05 },
      faultRates: { duplicate: 0.01, late: 0.005, outOfOrder: 0.005, malformed: 0.01 },
    });
    processor = startProcessor(topics, uniqueName("it-panels-group"), `duckdb:${join(dir, "wh.duckdb")}`);
    collector = startCollector(topics, 200, 200 * 600, 13);
    await Promise.all([waitReady(processor), waitReady(collector)]);
    const proc = processor;
    await waitUntil(
      async () => ((await getJson<ProcessorStatus>(proc.port, "/status")).body?.totals.alerts ?? 0) > 0,
      60_000,
      "the processor raised fraud alerts",
    );

    const exporterPort = freePort();
    exporter = spawnLogged(exporterBin, [
      "-redis.addr",
      services.redis,
      "-web.listen-address",
      `127.0.0.1:${exporterPort}`,
      "-script",
      REDIS_SCRIPT,
    ]);

    const dashboard = await dashboardMetrics();
    dashboardHttp = dashboard.http;

    // Backfill last, so the samples reach up to the moment Prometheus starts.
    const data = join(dir, "prometheus");
    const fixture = kubernetesSeries();
    markers = otherReleaseMarkers(fixture);
    const fixtureFile = join(dir, "kubernetes.om.txt");
    writeFileSync(fixtureFile, openMetrics(fixture, Date.now()));
    execFileSync(promtool, ["tsdb", "create-blocks-from", "openmetrics", fixtureFile, data], {
      stdio: "pipe",
    });

    const port = freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const target = (address: string, labels: Record<string, string>) => ({ targets: [address], labels });
    const config = {
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [join(RULES_DIR, "*.yml")],
      scrape_configs: [
        {
          job_name: "paystream-processor",
          static_configs: [
            target(`127.0.0.1:${processor.port}`, { namespace: NAMESPACE }),
            // The other release: the same process under another namespace and instance.
            target(`127.0.0.1:${processor.port}`, { namespace: OTHER, instance: OTHER_PROCESSOR_INSTANCE }),
          ],
        },
        {
          job_name: "paystream-collector",
          static_configs: [target(`127.0.0.1:${collector.port}`, { namespace: NAMESPACE })],
        },
        {
          job_name: "paystream-dashboard",
          static_configs: [
            target(`127.0.0.1:${dashboard.port}`, { namespace: NAMESPACE }),
            target(`127.0.0.1:${dashboard.port}`, { namespace: OTHER, instance: OTHER_DASHBOARD_INSTANCE }),
          ],
        },
        {
          job_name: "redis-exporter",
          static_configs: [target(`127.0.0.1:${exporterPort}`, { namespace: NAMESPACE })],
        },
      ],
    };
    // JSON is YAML.
    writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config));
    prometheus = spawnLogged(prometheusBin, [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${data}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ]);
    const prom = prometheus;
    await waitUntil(
      () =>
        fetch(`${promUrl}/-/ready`).then(
          (r) => r.ok,
          () => false,
        ),
      30_000,
      "prometheus ready",
    ).catch((err: Error) => {
      throw new Error(`${err.message}; its log:\n${prom.output()}`);
    });
  });

  after(async () => {
    prometheus?.child.kill();
    exporter?.child.kill();
    await dashboardHttp?.close();
    if (collector) await stopGracefully(collector);
    if (processor) await stopGracefully(processor);
    if (topics) await deleteTopics(topics);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("every query of every panel returns at least one series, and none of another release", async (t) => {
    const queries = panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ name: `"${p.title}" ${t.refId}`, expr: substitute(t.expr) })),
    );
    assert.ok(
      panels.length >= 40 && queries.length >= 56,
      `${panels.length} panels, ${queries.length} queries`,
    );
    // Scrapes every second, recording rules every 15 s: poll until each query has data.
    let empty: string[] = [];
    let foreign: string[] = [];
    const deadline = Date.now() + 60_000;
    do {
      if (empty.length) await new Promise((r) => setTimeout(r, 1000));
      empty = [];
      foreign = [];
      for (const q of queries) {
        const result = await query(q.expr);
        if (result.length === 0) empty.push(`${q.name}: ${q.expr}`);
        for (const s of result) {
          const hit = Object.values(s.metric).find((v) => markers.has(v));
          if (hit) foreign.push(`${q.name} shows ${hit}: ${q.expr}`);
        }
      }
    } while (empty.length > 0 && Date.now() < deadline);
    if (empty.length > 0) {
      // An exporter or the scrape itself may be why: their logs go with the failure.
      t.diagnostic(`redis_exporter log:\n${exporter?.output()}`);
      t.diagnostic(`prometheus log:\n${prometheus?.output()}`);
    }
    assert.deepEqual(
      { "queries without data": empty, "queries showing the other release": foreign },
      { "queries without data": [], "queries showing the other release": [] },
    );
  });

  it("offers the substituted values in the template variables", async () => {
    for (const v of dashboard.templating.list.filter((v) => v.type === "query")) {
      const q = typeof v.query === "string" ? v.query : v.query!.query;
      const m = /^label_values\((.+),\s*(\w+)\s*\)$/.exec(q);
      assert.ok(m, `${v.name}: ${q} is label_values(selector, label)`);
      const values = await api<string[]>(
        `/api/v1/label/${m[2]}/values?match[]=${encodeURIComponent(substitute(m[1]!))}`,
      );
      if (v.name === "instance") {
        assert.deepEqual(
          values,
          [`127.0.0.1:${processor!.port}`],
          "the release's processor, not the other's",
        );
      } else {
        assert.ok(values.includes(NAMESPACE), `${v.name} offers ${NAMESPACE}: ${values.join(", ")}`);
      }
    }
  });

  it("counts the accounts this run alerted on in Active fraud accounts (redis_exporter's script)", async () => {
    const panel = panels.find((p) => p.title.startsWith("Active fraud accounts"));
    assert.ok(panel?.targets?.[0], "the dashboard has the Active fraud accounts panel");
    const [series] = await query(substitute(panel.targets[0].expr));
    assert.ok(series, "the script's value is scraped");
    assert.ok(Number(series.value[1]) > 0, `accounts alerting in the last 5 minutes: ${series.value[1]}`);
  });
});
