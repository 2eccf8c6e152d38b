/**
 * Monitoring as code: the Prometheus rules (promtool check + unit tests), the metric names the
 * rules and the Grafana dashboard use (against the processor's and collector's real registries),
 * runbook links, the Alertmanager routing and inhibition (amtool and a real Alertmanager), and
 * the local Prometheus started by scripts/services.sh loading and evaluating the rules. That each
 * panel returns data, exporters' series included: test/integration/panels.test.ts.
 *
 * Needs promtool (Debian `prometheus`) and amtool + prometheus-alertmanager (Debian
 * `prometheus-alertmanager`); the Prometheus at PAYSTREAM_PROMETHEUS_URL (default
 * http://127.0.0.1:9090) and port 9465 (a scrape target of its config) free.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { EmbeddedCaseStore } from "../../src/adapters/embedded/cases.ts";
import { collectorOptions, toCollectorConfig } from "../../src/collector/config.ts";
import { Collector } from "../../src/collector/service.ts";
import { registerCaseMetrics } from "../../src/dashboard/cases-api.ts";
import { loadConfig } from "../../src/lib/config.ts";
import { createServiceHttp, listen } from "../../src/lib/http.ts";
import { createLogger } from "../../src/lib/log.ts";
import { createRegistry } from "../../src/lib/metrics.ts";
import { parsePrometheusText, sampleSum } from "../../src/lib/prom-text.ts";
import { createProcessorMetrics } from "../../src/processor/metrics.ts";
import { waitFor } from "../helpers/fixtures.ts";
import { freePort } from "../helpers/processes.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const RULES_DIR = join(ROOT, "monitoring/prometheus/rules");
const TESTS_DIR = join(ROOT, "monitoring/prometheus/tests");
const DASHBOARD = join(ROOT, "monitoring/grafana/paystream.json");
const ALERTMANAGER = join(ROOT, "monitoring/alertmanager/alertmanager.yml");
const RUNBOOKS = join(ROOT, "docs/runbooks.md");
const PROMETHEUS = process.env.PAYSTREAM_PROMETHEUS_URL ?? "http://127.0.0.1:9090";
/** Scrape target in scripts/services/prometheus.yml (job paystream-processor) this test serves. */
const SCRAPED_PORT = 9465;

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroup {
  name: string;
  rules: Rule[];
}

const ruleFiles = readdirSync(RULES_DIR)
  .filter((f) => f.endsWith(".yml"))
  .map((f) => join(RULES_DIR, f));
const testFiles = readdirSync(TESTS_DIR)
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => join(TESTS_DIR, f));
const groups: RuleGroup[] = ruleFiles.flatMap(
  (f) => (parseYaml(readFileSync(f, "utf8")) as { groups: RuleGroup[] }).groups,
);
const rules = groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert !== undefined);
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));

/** A tool from a Debian package: on PATH or in /usr/bin. Fails (never skips) when missing. */
function tool(name: string, pkg: string): string {
  const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim();
  const path = found || (existsSync(`/usr/bin/${name}`) ? `/usr/bin/${name}` : "");
  assert.ok(path, `${name} not found: install the Debian package ${pkg} (apt-get install ${pkg})`);
  return path;
}

function run(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: ROOT });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

// ------------------------------------------------------------------ metric names

const PROMQL_WORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "inf",
  "nan",
]);

/**
 * Metric names a PromQL expression selects: what is left after removing strings, label
 * matchers, ranges, grouping clauses, function calls and keywords.
 */
function metricNames(expr: string): string[] {
  const s = withoutStrings(expr)
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names: string[] = [];
  for (const m of s.matchAll(/(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    const name = m[1]!;
    if (m[2] || PROMQL_WORDS.has(name.toLowerCase())) continue;
    names.push(name);
  }
  return names;
}

function withoutStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
}

/**
 * Where an expression loses `namespace`: an aggregation without it in `by` (or with it in
 * `without`), a vector matching `on` without it (or `ignoring` it). Two releases in one
 * Prometheus would be summed or joined together there.
 */
function namespaceDropped(expr: string): string[] {
  const s = withoutStrings(expr);
  const has = (labels: string | undefined) => /\bnamespace\b/.test(labels ?? "");
  const dropped: string[] = [];
  const aggregation =
    /\b(?:sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\s*(?:(by|without)\s*\(([^)]*)\))?\s*\(/g;
  for (const m of s.matchAll(aggregation)) {
    if (m[1] === "without" ? has(m[2]) : !has(m[2])) dropped.push(m[0].trim());
  }
  for (const m of s.matchAll(/\b(on|ignoring)\s*\(([^)]*)\)/g)) {
    if (m[1] === "on" ? !has(m[2]) : has(m[2])) dropped.push(m[0]);
  }
  return dropped;
}

/** Every series name the processor and collector expose (histograms as _bucket/_sum/_count). */
async function exposedNames(): Promise<Set<string>> {
  const { registry } = buildRegistry();
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    const type = String(m.type); // "counter" | "gauge" | "histogram" | "summary" at run time
    if (type === "histogram" || type === "summary") {
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(m.name + suffix);
      if (type === "summary") names.add(m.name);
    } else names.add(m.name);
  }
  return names;
}

/** One registry with the processor's, the collector's and the dashboard's metrics, as `paystream up` serves. */
function buildRegistry() {
  const registry = createRegistry("monitoring-test");
  const processor = createProcessorMetrics(registry);
  registerCaseMetrics(registry, new EmbeddedCaseStore());
  const cfg = toCollectorConfig(
    loadConfig(collectorOptions, { argv: ["--accounts", "1000", "--merchants", "500"], env: {} }).values,
  );
  const sink = { send: async () => {}, close: async () => {} };
  const collector = new Collector(cfg, sink, createLogger("monitoring-test", "silent"), registry);
  return { registry, processor, collector };
}

/** Names Prometheus itself provides. */
const BUILTIN = new Set(["up", "ALERTS"]);

/**
 * Other exporters' series the rules and panels read, under the names those exporters publish
 * (panels.test.ts evaluates every panel on them: redis_exporter for real, cAdvisor and
 * kube-state-metrics backfilled in their format).
 */
const EXPORTED_ELSEWHERE = new Set([
  // oliver006/redis_exporter (redis_script_values: its --script, monitoring/redis-exporter/).
  "redis_up",
  "redis_memory_used_bytes",
  "redis_memory_max_bytes",
  "redis_evicted_keys_total",
  "redis_script_values",
  // cAdvisor, through the kubelet's /metrics/cadvisor.
  "container_cpu_usage_seconds_total",
  "container_cpu_cfs_periods_total",
  "container_cpu_cfs_throttled_periods_total",
  "container_memory_working_set_bytes",
  // kube-state-metrics v2.
  "kube_pod_container_resource_limits",
  "kube_pod_container_status_restarts_total",
  "kube_pod_container_status_last_terminated_reason",
  "kube_horizontalpodautoscaler_status_current_replicas",
  "kube_horizontalpodautoscaler_status_desired_replicas",
  "kube_horizontalpodautoscaler_spec_max_replicas",
]);

function unknownNames(exprs: string[], exposed: Set<string>): string[] {
  const bad = new Set<string>();
  for (const e of exprs) {
    for (const n of metricNames(e)) {
      const known = n.includes(":")
        ? recorded.has(n)
        : exposed.has(n) || BUILTIN.has(n) || EXPORTED_ELSEWHERE.has(n);
      if (!known) bad.add(n);
    }
  }
  return [...bad].sort();
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
  targets?: { expr?: string; refId: string }[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; query: string | { query: string } }[] };
  annotations: { list: { expr?: string }[] };
};

function dashboardExprs(): string[] {
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
  for (const a of dashboard.annotations.list) if (a.expr) exprs.push(a.expr);
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === "string" ? v.query : v.query.query;
    const lv = /^label_values\(\s*([^,]+),\s*\w+\s*\)$/.exec(q);
    if (lv) exprs.push(lv[1]!);
  }
  return exprs;
}

// ------------------------------------------------------------------ tests

describe("Prometheus rules", () => {
  it("pass promtool check rules", () => {
    const r = run(tool("promtool", "prometheus"), ["check", "rules", ...ruleFiles]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS: \d+ rules found/);
  });

  it("pass their promtool unit tests", () => {
    assert.ok(testFiles.length >= 5, "monitoring/prometheus/tests has the unit tests");
    const r = run(tool("promtool", "prometheus"), ["test", "rules", ...testFiles]);
    assert.equal(r.code, 0, r.out);
    assert.equal((r.out.match(/SUCCESS/g) ?? []).length, testFiles.length, r.out);
  });

  it("has unit tests in which every alert fires (each severity) and does not fire", () => {
    const fired = new Set<string>();
    const quiet = new Set<string>();
    for (const f of testFiles) {
      const doc = parseYaml(readFileSync(f, "utf8")) as {
        tests: {
          alert_rule_test?: { alertname: string; exp_alerts: { exp_labels: Record<string, string> }[] }[];
        }[];
      };
      for (const t of doc.tests) {
        for (const a of t.alert_rule_test ?? []) {
          if (a.exp_alerts.length === 0) quiet.add(a.alertname);
          for (const e of a.exp_alerts) fired.add(`${a.alertname}/${e.exp_labels.severity}`);
        }
      }
    }
    for (const a of alerts) {
      assert.ok(
        fired.has(`${a.alert}/${a.labels?.severity}`),
        `no test where ${a.alert} (${a.labels?.severity}) fires`,
      );
      assert.ok(quiet.has(a.alert!), `no test where ${a.alert} stays quiet`);
    }
  });

  it("has, for every alert that aggregates or reads a recorded series, a test with two namespaces", () => {
    // Fired with a namespace label, in a test whose input holds series of two namespaces.
    const separated = new Set<string>();
    for (const f of testFiles) {
      const doc = parseYaml(readFileSync(f, "utf8")) as {
        tests: {
          input_series: { series: string }[];
          alert_rule_test?: { alertname: string; exp_alerts: { exp_labels: Record<string, string> }[] }[];
        }[];
      };
      for (const t of doc.tests) {
        const namespaces = new Set(t.input_series.map((s) => /namespace="([^"]*)"/.exec(s.series)?.[1]));
        namespaces.delete(undefined);
        if (namespaces.size < 2) continue;
        for (const a of t.alert_rule_test ?? []) {
          if (a.exp_alerts.some((e) => e.exp_labels.namespace)) separated.add(a.alertname);
        }
      }
    }
    const aggregating = alerts.filter((a) => /\b(?:by|on)\s*\(|:/.test(withoutStrings(a.expr)));
    assert.ok(aggregating.length >= 20, `aggregating alerts: ${aggregating.length}`);
    assert.deepEqual(
      aggregating.map((a) => a.alert).filter((name) => !separated.has(name!)),
      [],
      "alerts without a two-namespace test",
    );
  });

  it("keep namespace through every aggregation and vector matching", () => {
    assert.deepEqual(
      namespaceDropped(
        'sum(rate(x{l="max(y)"}[5m])) / max by (instance) (y) and on() z or count without (namespace) (w) unless on (pod) v',
      ),
      ["sum(", "max by (instance) (", "count without (namespace) (", "on()", "on (pod)"],
    );
    assert.deepEqual(
      namespaceDropped("sum by (namespace, le) (x) / on (namespace) max by (namespace) (y)"),
      [],
    );
    assert.deepEqual(
      rules.flatMap((r) => namespaceDropped(r.expr).map((d) => `${r.record ?? r.alert}: ${d}`)),
      [],
    );
  });

  it("export the rules-reload error count from start-up, so increase() sees the first rejected reload", async () => {
    const { registry } = buildRegistry();
    const samples = parsePrometheusText(await registry.metrics());
    const results = samples
      .filter((s) => s.name === "paystream_rules_reloads_total")
      .map((s) => s.labels.result);
    assert.deepEqual(results.sort(), ["error", "ok"]);
    assert.equal(sampleSum(samples, "paystream_rules_reloads_total", { result: "error" }), 0);
  });

  it("give every alert a severity, summary, description and a runbook section that exists", () => {
    const runbooks = readFileSync(RUNBOOKS, "utf8");
    const headings = new Map<string, string>();
    const parts = runbooks.split(/^## /m).slice(1);
    for (const part of parts) {
      const title = part.split("\n", 1)[0]!.trim();
      headings.set(
        title
          .toLowerCase()
          .replace(/[^\w\- ]/g, "")
          .replace(/ /g, "-"),
        part,
      );
    }
    assert.ok(alerts.length >= 20, `alerts found: ${alerts.length}`);
    for (const a of alerts) {
      assert.ok(["critical", "warning"].includes(a.labels?.severity ?? ""), `${a.alert}: severity`);
      assert.ok(a.annotations?.summary, `${a.alert}: summary`);
      assert.ok(a.annotations?.description, `${a.alert}: description`);
      const url = a.annotations?.runbook_url ?? "";
      const m = /^docs\/runbooks\.md#([\w-]+)$/.exec(url);
      assert.ok(m, `${a.alert}: runbook_url ${url} points into docs/runbooks.md`);
      const section = headings.get(m[1]!);
      assert.ok(section, `${a.alert}: docs/runbooks.md has no section #${m[1]}`);
      for (const part of ["Meaning", "Impact", "Diagnosis", "Mitigation"]) {
        assert.match(section, new RegExp(`\\*\\*${part}`), `${a.alert}: runbook section lacks ${part}`);
      }
    }
    // The failures no paystream alert can report: the monitoring itself is down.
    for (const anchor of ["prometheus-disk-full", "grafana-shows-no-data", "dashboard-unreachable"]) {
      const section = headings.get(anchor);
      assert.ok(section, `docs/runbooks.md has no section #${anchor}`);
      for (const part of ["Symptom", "Diagnosis", "Mitigation"]) {
        assert.match(section, new RegExp(`\\*\\*${part}`), `#${anchor}: runbook section lacks ${part}`);
      }
    }
  });

  it("finds metric names in PromQL, and an unknown one is reported", async () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.99, sum by (output, le) (rate(paystream_e2e_latency_seconds_bucket{output="x"}[5m]))) > 1e3 and on() up offset 5m',
      ),
      ["paystream_e2e_latency_seconds_bucket", "up"],
    );
    const exposed = await exposedNames();
    assert.deepEqual(unknownNames(["sum(rate(paystream_no_such_total[5m])) / up", "a:b:c"], exposed), [
      "a:b:c",
      "paystream_no_such_total",
    ]);
  });

  it("use only metric names that the processor, collector and dashboard register", async () => {
    const exposed = await exposedNames();
    assert.ok(
      exposed.has("paystream_consumer_lag_seconds") && exposed.has("paystream_collector_actual_rate"),
    );
    assert.deepEqual(
      unknownNames(
        rules.map((r) => r.expr),
        exposed,
      ),
      [],
    );
  });
});

describe("Grafana dashboard", () => {
  it("is a dashboard with unique panel ids, a Prometheus data source variable and a query per panel", () => {
    assert.equal(dashboard.uid, "paystream");
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
    assert.ok(dashboard.templating.list.some((v) => v.name === "datasource"));
    const titles = dashboard.panels.map((p) => p.title).join("\n");
    for (const want of [
      /Throughput by outcome/,
      /Lag per partition/,
      /Partition stalls/,
      /latency p50 \/ p99 by output/,
      /alerts by rule/i,
      /Rule precision/,
      /Resolved cases by rule/,
      /DLQ by reason/,
      /Dedup/,
      /Sink write latency/,
      /Sink errors/,
      /target vs actual/,
      /Recovery duration/,
      /CPU % of limit/,
      /CPU throttled/,
      /Memory % of limit/,
      /replicas: desired, current, max/,
      /Active fraud accounts/,
      /Redis memory/,
      /Redis evicted keys/,
    ]) {
      assert.match(titles, want);
    }
    for (const p of dashboard.panels.filter((p) => p.type !== "row")) {
      assert.ok((p.targets ?? []).length > 0 && p.targets!.every((t) => t.expr), `${p.title}: has queries`);
      assert.equal(p.datasource?.uid, "$" + "{datasource}", `${p.title}: uses the data source variable`);
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title}: fits the grid`);
    }
  });

  it("scopes every query to the release picked in $namespace (the Redis row: $redis_namespace)", () => {
    const exprs = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? "")),
      ...dashboard.annotations.list.flatMap((a) => (a.expr ? [a.expr] : [])),
    ];
    assert.deepEqual(
      dashboard.templating.list.map((v) => v.name),
      ["datasource", "namespace", "instance", "redis_namespace"],
    );
    // One scoped matcher block per series selected.
    const unscoped = exprs.filter(
      (e) =>
        (e.match(/\{[^}]*namespace=~"\$(?:redis_)?namespace"[^}]*\}/g) ?? []).length < metricNames(e).length,
    );
    assert.deepEqual(unscoped, []);
  });

  it("uses only metric names that the processor and collector register, the rules record or the exporters publish", async () => {
    const exprs = dashboardExprs();
    assert.ok(exprs.length > 30, `queries found: ${exprs.length}`);
    assert.deepEqual(unknownNames(exprs, await exposedNames()), []);
  });

  it("has provisioning files for the dashboard and a Prometheus data source", () => {
    const dash = parseYaml(
      readFileSync(join(ROOT, "monitoring/grafana/provisioning/dashboards/paystream.yaml"), "utf8"),
    ) as { apiVersion: number; providers: { type: string; options: { path: string } }[] };
    assert.equal(dash.apiVersion, 1);
    assert.equal(dash.providers[0]?.type, "file");
    const ds = parseYaml(
      readFileSync(join(ROOT, "monitoring/grafana/provisioning/datasources/prometheus.yaml"), "utf8"),
    ) as { datasources: { type: string; url: string }[] };
    assert.equal(ds.datasources[0]?.type, "prometheus");
  });
});

describe("Alertmanager config", () => {
  const amtool = () => tool("amtool", "prometheus-alertmanager");

  it("passes amtool check-config", () => {
    const r = run(amtool(), ["check-config", ALERTMANAGER]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  it("routes critical alerts to page and warnings (and anything else) to ticket", () => {
    const route = (...labels: string[]) =>
      execFileSync(amtool(), ["config", "routes", "test", `--config.file=${ALERTMANAGER}`, ...labels], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
    for (const a of alerts) {
      const want = a.labels?.severity === "critical" ? "page" : "ticket";
      assert.equal(route(`alertname=${a.alert}`, `severity=${a.labels?.severity}`), want, a.alert);
    }
    assert.equal(route("alertname=Other"), "ticket");
  });

  describe("inhibition, on a real Alertmanager", () => {
    let am: ChildProcess | undefined;
    let dir = "";
    let url = "";

    before(async () => {
      const bin = tool("prometheus-alertmanager", "prometheus-alertmanager");
      dir = mkdtempSync(join(tmpdir(), "ps-am-"));
      // Same routes and inhibit rules; receivers without integrations, so nothing is ever sent.
      const cfg = parseYaml(readFileSync(ALERTMANAGER, "utf8")) as { receivers: { name: string }[] };
      cfg.receivers = cfg.receivers.map((r) => ({ name: r.name }));
      writeFileSync(join(dir, "am.yml"), JSON.stringify(cfg));
      const port = freePort();
      url = `http://127.0.0.1:${port}`;
      am = spawn(
        bin,
        [
          `--config.file=${join(dir, "am.yml")}`,
          `--storage.path=${dir}`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--cluster.listen-address=",
        ],
        { stdio: "ignore" },
      );
      const deadline = Date.now() + 20_000;
      for (;;) {
        const ok = await fetch(`${url}/-/ready`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        assert.ok(Date.now() < deadline, "alertmanager did not become ready");
        await new Promise((r) => setTimeout(r, 200));
      }
    });

    after(() => {
      am?.kill();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const post = async (labels: Record<string, string>[]) => {
      const res = await fetch(`${url}/api/v2/alerts`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(labels.map((l) => ({ labels: l, annotations: { summary: "test" } }))),
      });
      assert.equal(res.status, 200);
    };
    type Want = Record<string, string | undefined>;
    /** Each alert's state, found by labels; a label given as undefined must be absent. */
    async function statesOf(wants: Want[]): Promise<(string | undefined)[]> {
      const got = (await (await fetch(`${url}/api/v2/alerts`)).json()) as {
        labels: Record<string, string>;
        status: { state: string };
      }[];
      return wants.map(
        (want) => got.find((a) => Object.entries(want).every(([k, v]) => a.labels[k] === v))?.status.state,
      );
    }
    /**
     * Alertmanager's inhibitor learns source alerts from its own subscription, a moment after
     * the POST returns: a target read at once can still show "active". So wait (bounded) for
     * the expected states, then assert them, which names every alert whose state differs.
     */
    async function expectStates(cases: [Want, string][]): Promise<void> {
      const wants = cases.map(([w]) => w);
      const expected = cases.map(([, s]) => s);
      let seen: (string | undefined)[] = [];
      await waitFor(
        async () => {
          seen = await statesOf(wants);
          return seen.every((s, i) => s === expected[i]);
        },
        15_000,
        "the inhibition states to settle",
      ).catch(() => undefined);
      assert.deepEqual(
        cases.map(([w], i) => ({ ...w, state: seen[i] })),
        cases.map(([w, s]) => ({ ...w, state: s })),
      );
    }

    it("mutes lag and stall alerts while the processor is down, and a warning under its critical", async () => {
      await post([
        { alertname: "PaystreamProcessorDown", severity: "critical", service: "processor" },
        { alertname: "PaystreamConsumerLag", severity: "critical", service: "processor" },
        { alertname: "PaystreamConsumerLag", severity: "warning", service: "processor" },
        { alertname: "PaystreamProcessingStalled", severity: "critical", service: "processor" },
        { alertname: "PaystreamDLQRatio", severity: "warning", service: "processor" },
        { alertname: "PaystreamSinkErrors", severity: "critical", service: "processor", sink: "postgres" },
        { alertname: "PaystreamSinkErrors", severity: "warning", service: "processor", sink: "postgres" },
        { alertname: "PaystreamSinkErrors", severity: "warning", service: "processor", sink: "alert_store" },
      ]);
      const one = (alertname: string, severity: string, sink?: string): Want => ({
        alertname,
        severity,
        sink,
        namespace: undefined,
      });
      await expectStates([
        [one("PaystreamProcessorDown", "critical"), "active"],
        [one("PaystreamConsumerLag", "critical"), "suppressed"],
        [one("PaystreamConsumerLag", "warning"), "suppressed"],
        [one("PaystreamProcessingStalled", "critical"), "suppressed"],
        [one("PaystreamDLQRatio", "warning"), "active"],
        [one("PaystreamSinkErrors", "critical", "postgres"), "active"],
        [one("PaystreamSinkErrors", "warning", "postgres"), "suppressed"],
        [one("PaystreamSinkErrors", "warning", "alert_store"), "active"],
      ]);
    });

    it("mutes only the alerts of the release whose processor is down, and a Redis warning under its own critical", async () => {
      const processor = (alertname: string, severity: string, namespace: string) => ({
        alertname,
        severity,
        service: "processor",
        namespace,
      });
      const redis = (severity: string, instance: string) => ({
        alertname: "PaystreamRedisMemoryHigh",
        severity,
        service: "redis",
        namespace: "green",
        instance,
      });
      await post([
        processor("PaystreamProcessorDown", "critical", "blue"),
        processor("PaystreamConsumerLag", "critical", "blue"),
        processor("PaystreamConsumerLag", "critical", "green"),
        processor("PaystreamThroughputLow", "warning", "blue"),
        processor("PaystreamThroughputLow", "warning", "green"),
        redis("critical", "redis-a:9121"),
        redis("warning", "redis-a:9121"),
        redis("warning", "redis-b:9121"),
      ]);
      const ns = (alertname: string, namespace: string): Want => ({ alertname, namespace });
      const rd = (severity: string, instance: string): Want => ({
        alertname: "PaystreamRedisMemoryHigh",
        severity,
        instance,
      });
      await expectStates([
        [ns("PaystreamProcessorDown", "blue"), "active"],
        [ns("PaystreamConsumerLag", "blue"), "suppressed"],
        [ns("PaystreamConsumerLag", "green"), "active"],
        [ns("PaystreamThroughputLow", "blue"), "suppressed"],
        [ns("PaystreamThroughputLow", "green"), "active"],
        [rd("critical", "redis-a:9121"), "active"],
        [rd("warning", "redis-a:9121"), "suppressed"],
        [rd("warning", "redis-b:9121"), "active"],
      ]);
    });
  });
});

describe("local Prometheus (scripts/services.sh up)", () => {
  async function api<T>(path: string): Promise<T> {
    const res = await fetch(`${PROMETHEUS}${path}`);
    assert.equal(res.status, 200, `GET ${PROMETHEUS}${path}`);
    return ((await res.json()) as { data: T }).data;
  }

  it("has loaded every rule group and rule, and evaluates them without error", async () => {
    const configFile = (await api<Record<string, string>>("/api/v1/status/flags"))["config.file"];
    const loaded = await api<{
      groups: {
        name: string;
        rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[];
      }[];
    }>("/api/v1/rules");
    const names = loaded.groups.map((g) => g.name);
    for (const g of groups) {
      assert.ok(
        names.includes(g.name),
        `rule group ${g.name} not loaded by ${PROMETHEUS} (config ${configFile}); restart it from this checkout: bash scripts/services.sh stop-one prometheus && bash scripts/services.sh start-one prometheus`,
      );
    }
    const ours = loaded.groups.filter((g) => groups.some((o) => o.name === g.name));
    const loadedRules = ours.flatMap((g) => g.rules);
    assert.equal(loadedRules.length, rules.length, "every rule loaded once");
    // Each group runs at least every 15 s: wait for one evaluation of every rule.
    const deadline = Date.now() + 40_000;
    for (;;) {
      const now = (await api<{ groups: typeof loaded.groups }>("/api/v1/rules")).groups
        .filter((g) => groups.some((o) => o.name === g.name))
        .flatMap((g) => g.rules);
      const pending = now.filter((r) => r.lastEvaluation.startsWith("0001"));
      const failing = now.filter((r) => r.health === "err");
      assert.deepEqual(
        failing.map((r) => `${r.name}: ${r.lastError}`),
        [],
      );
      if (pending.length === 0) break;
      assert.ok(Date.now() < deadline, `not evaluated yet: ${pending.map((r) => r.name).join(", ")}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  });

  it("scrapes real metrics into the recording rules and a pending alert", async () => {
    const { registry, collector } = buildRegistry();
    // A value of this run's own, so a series left from an earlier run cannot pass the test.
    const actual = 100 + Math.floor(Math.random() * 800);
    collector.metrics.targetRate.set(1000);
    collector.metrics.actualRate.set(actual);
    const http = createServiceHttp({ registry });
    await listen(http, "127.0.0.1", SCRAPED_PORT, "monitoring test target");
    try {
      const instance = `127.0.0.1:${SCRAPED_PORT}`;
      const query = (q: string) =>
        api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
          `/api/v1/query?query=${encodeURIComponent(q)}`,
        );
      const deadline = Date.now() + 60_000;
      let ratio: string | undefined;
      let pending = false;
      const want = String(actual / 1000);
      while (Date.now() < deadline && (ratio !== want || !pending)) {
        ratio = (await query(`instance:paystream_collector_rate:ratio{instance="${instance}"}`)).result[0]
          ?.value[1];
        pending =
          (
            await query(
              `ALERTS{alertname="PaystreamCollectorBehindTarget", instance="${instance}", alertstate="pending"}`,
            )
          ).result.length === 1;
        if (ratio !== want || !pending) await new Promise((r) => setTimeout(r, 1000));
      }
      assert.equal(ratio, want, "recording rule over the scraped collector gauges");
      assert.ok(pending, "PaystreamCollectorBehindTarget pending for the scraped target");
    } finally {
      await http.close();
    }
  });
});
