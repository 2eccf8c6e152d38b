/**
 * Deployment as code: the Helm chart (helm lint, helm template, and the facts users rely on:
 * env var names the commands really read, probes on real paths, the PII key only from a Secret,
 * KEDA or the HPA bounded by the partition count, non-root read-only pods, NetworkPolicies, the
 * monitoring objects rendered from monitoring/'s own files) and the container image (Dockerfile
 * facts, and its /app assembled from the Dockerfile's COPY lines with `npm ci --omit=dev`
 * running the commands). One file because every chart test renders through the same helm
 * helpers; it is long because the chart has that many promises.
 *
 * Needs helm on PATH (or /usr/local/bin, ~/go/bin): `go install helm.sh/helm/v3/cmd/helm@v3.22.0`,
 * and amtool (Debian `prometheus-alertmanager`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { CONSUMER_GROUP, TopicLayout, Topics } from "../../src/contracts/topics.ts";
import { createServiceHttp, resolveAccess } from "../../src/lib/http.ts";
import { createRegistry } from "../../src/lib/metrics.ts";
import { loadRulesFile } from "../../src/processor/rules-file.ts";

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field
type Manifest = Record<string, any>;

const ROOT = resolve(import.meta.dirname, "../..");
const CHART = join(ROOT, "deploy/helm/paystream");
const DEMO_VALUES = join(CHART, "values-demo.yaml");
const RULES_DIR = join(ROOT, "monitoring/prometheus/rules");
const GRAFANA_DASHBOARD = join(ROOT, "monitoring/grafana/paystream.json");
const ALERTMANAGER = join(ROOT, "monitoring/alertmanager/alertmanager.yml");
const NODE = process.execPath;
const PARTITIONS = TopicLayout[Topics.transactions].partitions;
/** The reference deployment guide's scaling: up 100% per 30 s, down 50% per 60 s after 5 minutes. */
const GUIDE_BEHAVIOR = {
  scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: "Percent", value: 100, periodSeconds: 30 }] },
  scaleDown: {
    stabilizationWindowSeconds: 300,
    policies: [{ type: "Percent", value: 50, periodSeconds: 60 }],
  },
};

/** monitoring/prometheus/rules/*.yml: file name -> its rule groups. */
const RULE_FILES = new Map(
  readdirSync(RULES_DIR)
    .filter((f) => f.endsWith(".yml"))
    .sort()
    .map((f) => [f, (parseYaml(readFileSync(join(RULES_DIR, f), "utf8")) as { groups: Manifest[] }).groups]),
);

/** The values without which the chart refuses to render. */
const REQUIRED = [
  "kafka.brokers=kafka-0.kafka:9092\\,kafka-1.kafka:9092",
  "redis.url=redis://redis:6379",
  "piiKey.existingSecret=paystream-pii",
  "processor.warehouse.url=postgres://paystream@pg:5432/paystream",
  "collector.apiToken.existingSecret=paystream-collector-api",
  "dashboard.auth.existingSecret=paystream-dashboard-auth",
];

/** The collector is off in production values; tests of its objects turn it on. */
const COLLECTOR = "collector.enabled=true";
/** What helm sees in a cluster with the prometheus-operator CRDs (helm asks for kind-qualified names). */
const OPERATOR_CRDS = ["ServiceMonitor", "PrometheusRule"].flatMap((kind) => [
  "--api-versions",
  `monitoring.coreos.com/v1/${kind}`,
]);

/** A tool on PATH or in one of `elsewhere`; fails (never skips) saying how to get it. */
function binary(name: string, elsewhere: string[], hint: string): string {
  const onPath = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim();
  const found = [onPath, ...elsewhere].find((c) => c && existsSync(c));
  assert.ok(found, `${name} not found: ${hint}`);
  return found;
}

const helmBin = () =>
  binary(
    "helm",
    [
      // Where scripts/services.sh builds it.
      join(
        process.env.PAYSTREAM_CACHE_DIR ??
          join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "paystream"),
        "bin/helm",
      ),
      "/usr/local/bin/helm",
      join(homedir(), "go/bin/helm"),
    ],
    "`bash scripts/services.sh up` builds it (needs Go)",
  );
const amtoolBin = () =>
  binary("amtool", ["/usr/bin/amtool"], "install the Debian package prometheus-alertmanager");

function run(cmd: string, args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: ROOT });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const helm = (args: string[]) => run(helmBin(), args);

function template(set: string[] = [], extra: string[] = []) {
  return helm([
    "template",
    "ps",
    CHART,
    "--namespace",
    "paystream",
    "--kube-version",
    "1.30.0",
    ...[...REQUIRED, ...set].flatMap((s) => ["--set", s]),
    ...extra,
  ]);
}

function manifests(r: { code: number; out: string; err: string }): Manifest[] {
  assert.equal(r.code, 0, r.err);
  return parseAllDocuments(r.out)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

const render = (set: string[] = [], extra: string[] = []) => manifests(template(set, extra));

/** values-demo.yaml alone: it must be enough to install. */
const renderDemo = (extra: string[] = []) =>
  manifests(helm(["template", "ps", CHART, "--kube-version", "1.30.0", "-f", DEMO_VALUES, ...extra]));

/** helm refuses to render, saying why (a `fail`, a `required` or the values schema). */
function refuses(set: string[], why: RegExp, extra: string[] = []): void {
  const r = template(set, extra);
  assert.notEqual(r.code, 0, `rendered with ${set.join(" ")}`);
  assert.match(r.err, why);
}

function find(ms: Manifest[], kind: string, component: string): Manifest {
  const m = ms.find(
    (x) => x.kind === kind && x.metadata.labels?.["app.kubernetes.io/component"] === component,
  );
  assert.ok(m, `${kind} for ${component} rendered`);
  return m;
}

/** Env var names a command reads, from its own --help. */
function helpEnv(command: string): Set<string> {
  const r = spawnSync(NODE, [join(ROOT, "src/cli/main.ts"), command, "--help"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return new Set([...r.stdout.matchAll(/\benv (PAYSTREAM_[A-Z0-9_]+)/g)].map((m) => m[1]!));
}

function envOf(container: Manifest): Map<string, Manifest> {
  return new Map((container.env as Manifest[]).map((e) => [e.name as string, e]));
}

describe("Helm chart", () => {
  it("passes helm lint --strict with the production values and with values-demo.yaml alone", () => {
    for (const args of [REQUIRED.flatMap((s) => ["--set", s]), ["-f", DEMO_VALUES]]) {
      const r = helm(["lint", CHART, "--strict", ...args]);
      assert.equal(r.code, 0, r.out + r.err);
      assert.match(r.out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      assert.doesNotMatch(r.err, /symbolic link/, "the chart holds copies, not links out of it");
    }
  });

  it("renders the processor and the dashboard in production, and the collector only with values-demo.yaml", () => {
    const names = (ms: Manifest[]) => ms.map((m) => `${m.kind}/${m.metadata.name}`).sort();
    const production = names(render());
    for (const want of [
      "ConfigMap/ps-paystream-grafana-dashboard",
      "ConfigMap/ps-paystream-rules",
      "Deployment/ps-paystream-dashboard",
      "Deployment/ps-paystream-processor",
      "PodDisruptionBudget/ps-paystream-processor",
      "ScaledObject/ps-paystream-processor",
      "Service/ps-paystream-dashboard",
      "Service/ps-paystream-processor",
    ]) {
      assert.ok(production.includes(want), `${want} in ${production.join(", ")}`);
    }
    assert.deepEqual(
      production.filter((n) => n.includes("collector")),
      [],
      "no traffic generator in production",
    );
    assert.ok(!production.some((n) => n.startsWith("Secret/")), "the chart creates no Secret by default");
    const prodDashboard = envOf(find(render(), "Deployment", "dashboard").spec.template.spec.containers[0]);
    assert.ok(!prodDashboard.has("PAYSTREAM_COLLECTOR_URL"), "the dashboard is not pointed at no collector");
    assert.ok(!prodDashboard.has("PAYSTREAM_API_TOKEN"), "nor given a token for it");

    const demo = names(renderDemo());
    for (const want of ["Deployment/ps-paystream-collector", "Service/ps-paystream-collector"]) {
      assert.ok(demo.includes(want), `${want} in ${demo.join(", ")}`);
    }
    assert.ok(demo.includes("HorizontalPodAutoscaler/ps-paystream-processor"), "the demo needs no KEDA");
    assert.ok(!demo.some((n) => n.startsWith("ScaledObject/")));
    const demoDashboard = envOf(
      find(renderDemo(), "Deployment", "dashboard").spec.template.spec.containers[0],
    );
    assert.equal(demoDashboard.get("PAYSTREAM_COLLECTOR_URL")?.value, "http://ps-paystream-collector:5000");
  });

  it("sets only env vars that `paystream processor|collector --help` lists, and the ones they need", () => {
    const ms = render([
      COLLECTOR,
      "processor.env.PAYSTREAM_MAX_BATCH=1000",
      "collector.env.PAYSTREAM_ACCOUNTS=50000",
    ]);
    for (const [component, needed] of [
      [
        "processor",
        [
          "PAYSTREAM_KAFKA_BROKERS",
          "PAYSTREAM_GROUP_ID",
          "PAYSTREAM_REDIS_URL",
          "PAYSTREAM_WAREHOUSE",
          "PAYSTREAM_RULES_FILE",
          "PAYSTREAM_PII_KEY",
          "PAYSTREAM_METRICS_PORT",
          "PAYSTREAM_MAX_BATCH",
        ],
      ],
      [
        "collector",
        [
          "PAYSTREAM_KAFKA_BROKERS",
          "PAYSTREAM_COLLECTOR_PORT",
          "PAYSTREAM_RATE",
          "PAYSTREAM_ACCOUNTS",
          "PAYSTREAM_API_TOKEN",
          "PAYSTREAM_HTTP_HOST",
        ],
      ],
      [
        "dashboard",
        [
          "PAYSTREAM_REDIS_URL",
          "PAYSTREAM_KAFKA_BROKERS",
          "PAYSTREAM_COLLECTOR_URL",
          "PAYSTREAM_PROCESSOR_SERVICE",
          "PAYSTREAM_PORT",
          "PAYSTREAM_API_TOKEN",
          "PAYSTREAM_DASHBOARD_TOKEN",
          "PAYSTREAM_DASHBOARD_MAX_SSE_CLIENTS",
          "PAYSTREAM_HTTP_HOST",
        ],
      ],
    ] as const) {
      const known = helpEnv(component);
      const c = find(ms, "Deployment", component).spec.template.spec.containers[0];
      assert.deepEqual(c.args, [component]);
      const env = envOf(c);
      for (const name of env.keys()) {
        if (name.startsWith("PAYSTREAM_"))
          assert.ok(known.has(name), `${component}: ${name} is not a setting`);
      }
      for (const name of needed) assert.ok(env.has(name), `${component}: ${name} set`);
    }
    const env = envOf(find(ms, "Deployment", "processor").spec.template.spec.containers[0]);
    assert.equal(env.get("PAYSTREAM_KAFKA_BROKERS")?.value, "kafka-0.kafka:9092,kafka-1.kafka:9092");
    assert.equal(env.get("PAYSTREAM_GROUP_ID")?.value, CONSUMER_GROUP);
  });

  it("takes the PII key only from a Secret and refuses to render without one", () => {
    const c = find(render(), "Deployment", "processor").spec.template.spec.containers[0];
    const pii = envOf(c).get("PAYSTREAM_PII_KEY");
    assert.equal(pii?.value, undefined);
    assert.deepEqual(pii?.valueFrom, { secretKeyRef: { name: "paystream-pii", key: "PAYSTREAM_PII_KEY" } });
    const without = template(["piiKey.existingSecret="]);
    assert.notEqual(without.code, 0);
    assert.match(without.err, /piiKey\.existingSecret is required/);
    const inline = template(["piiKey.value=0123456789abcdef0123456789abcdef"]);
    assert.notEqual(inline.code, 0, "a key given as a value is rejected by the values schema");
    const noDemo = render(["processor.env.PAYSTREAM_LOG_LEVEL=info"]);
    assert.ok(
      !envOf(find(noDemo, "Deployment", "processor").spec.template.spec.containers[0]).has("PAYSTREAM_DEMO"),
    );
  });

  it("takes the DLQ key only from a Secret, and keeps no originals without one", () => {
    const none = envOf(find(render(), "Deployment", "processor").spec.template.spec.containers[0]);
    assert.equal(none.has("PAYSTREAM_DLQ_KEY"), false);
    const env = envOf(
      find(render(["dlqKey.existingSecret=paystream-dlq", "dlqKey.keyId=2026-q4"]), "Deployment", "processor")
        .spec.template.spec.containers[0],
    );
    assert.deepEqual(env.get("PAYSTREAM_DLQ_KEY")?.valueFrom, {
      secretKeyRef: { name: "paystream-dlq", key: "PAYSTREAM_DLQ_KEY" },
    });
    assert.equal(env.get("PAYSTREAM_DLQ_KEY_ID")?.value, "2026-q4");
    const inline = template(["dlqKey.value=00"]);
    assert.notEqual(inline.code, 0, "a key given as a value is rejected by the values schema");
  });

  it("turns the shared Redis dedup tier on only when asked (processor.dedupShared, for BigQuery)", () => {
    const processorEnv = (set: string[] = []) =>
      envOf(find(render(set), "Deployment", "processor").spec.template.spec.containers[0]);
    assert.equal(processorEnv().has("PAYSTREAM_DEDUP_SHARED"), false);
    assert.equal(processorEnv(["processor.dedupShared=true"]).get("PAYSTREAM_DEDUP_SHARED")?.value, "true");
    assert.notEqual(template(["processor.dedupShared=yes"]).code, 0, "the values schema wants a boolean");
  });

  it("also takes Redis and warehouse URLs from Secrets, and requires the brokers", () => {
    const ms = render(["redis.existingSecret=redis-url", "processor.warehouse.existingSecret=wh-url"]);
    const env = envOf(find(ms, "Deployment", "processor").spec.template.spec.containers[0]);
    assert.deepEqual(env.get("PAYSTREAM_REDIS_URL")?.valueFrom, {
      secretKeyRef: { name: "redis-url", key: "url" },
    });
    assert.deepEqual(env.get("PAYSTREAM_WAREHOUSE")?.valueFrom, {
      secretKeyRef: { name: "wh-url", key: "url" },
    });
    const r = helm([
      "template",
      "ps",
      CHART,
      "--kube-version",
      "1.30.0",
      "--set",
      "piiKey.existingSecret=pii",
      "--set",
      "redis.url=redis://r:6379",
      "--set",
      "processor.warehouse.url=postgres://x/y",
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /kafka\.brokers is required/);
  });

  it("probes the paths and ports the services really serve", async () => {
    const ms = render([COLLECTOR]);
    // As in a pod: bound to every interface, credentials required, a Host allow-list set. The
    // kubelet probes by pod IP without credentials, and must still get its answers.
    const app = createServiceHttp({
      registry: createRegistry("deploy-test", false),
      access: resolveAccess({
        what: "probe test",
        credentialHint: "--api-token",
        token: "probe-test-token-0123456789",
        bindHost: "0.0.0.0",
        allowedHosts: ["paystream.example.com"],
        protectedReads: ["/"],
      }),
    });
    for (const [component, portEnv, helpDefault] of [
      ["processor", "PAYSTREAM_METRICS_PORT", "9464"],
      ["collector", "PAYSTREAM_COLLECTOR_PORT", "5000"],
      ["dashboard", "PAYSTREAM_PORT", "3000"],
    ] as const) {
      const c = find(ms, "Deployment", component).spec.template.spec.containers[0];
      const ports = new Map(
        (c.ports as Manifest[]).map((p) => [p.name as string, p.containerPort as number]),
      );
      assert.equal(String(ports.values().next().value), envOf(c).get(portEnv)?.value, `${component}: port`);
      assert.equal(
        String(ports.values().next().value),
        helpDefault,
        `${component}: the command's default port`,
      );
      assert.equal(c.readinessProbe.httpGet.path, "/readyz");
      assert.equal(c.livenessProbe.httpGet.path, "/healthz");
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        assert.ok(
          ports.has(probe.httpGet.port),
          `${component}: probe port ${probe.httpGet.port} is a named port`,
        );
        const res = await app.inject({
          method: "GET",
          url: probe.httpGet.path,
          headers: { host: `10.1.2.3:${ports.get(probe.httpGet.port)}` },
        });
        assert.equal(res.statusCode, 200, `${component}: ${probe.httpGet.path} is served`);
      }
      const svc = find(ms, "Service", component);
      assert.ok(ports.has(svc.spec.ports[0].targetPort), `${component}: Service targets a named port`);
    }
    await app.close();
  });

  it("takes the collector's token and the dashboard's credentials only from Secrets, and refuses to render without them", () => {
    const ms = render([COLLECTOR, "dashboard.auth.basicAuthKey=PAYSTREAM_DASHBOARD_BASIC_AUTH"]);
    const collector = envOf(find(ms, "Deployment", "collector").spec.template.spec.containers[0]);
    const dashboard = envOf(find(ms, "Deployment", "dashboard").spec.template.spec.containers[0]);
    const ref = (name: string, key: string) => ({ secretKeyRef: { name, key } });
    assert.deepEqual(collector.get("PAYSTREAM_API_TOKEN"), {
      name: "PAYSTREAM_API_TOKEN",
      valueFrom: ref("paystream-collector-api", "PAYSTREAM_API_TOKEN"),
    });
    // The dashboard holds the collector's token to send it, and its own credentials to check callers.
    assert.deepEqual(
      dashboard.get("PAYSTREAM_API_TOKEN")?.valueFrom,
      ref("paystream-collector-api", "PAYSTREAM_API_TOKEN"),
    );
    assert.deepEqual(
      dashboard.get("PAYSTREAM_DASHBOARD_TOKEN")?.valueFrom,
      ref("paystream-dashboard-auth", "PAYSTREAM_DASHBOARD_TOKEN"),
    );
    assert.deepEqual(
      dashboard.get("PAYSTREAM_DASHBOARD_BASIC_AUTH")?.valueFrom,
      ref("paystream-dashboard-auth", "PAYSTREAM_DASHBOARD_BASIC_AUTH"),
    );
    for (const env of [collector, dashboard]) {
      assert.ok(!env.has("PAYSTREAM_INSECURE_OPEN_API"), "not open");
      for (const [name, e] of env) {
        if (/TOKEN|BASIC_AUTH/.test(name)) assert.equal(e.value, undefined, `${name} is never a plain value`);
      }
    }
    const noToken = template([COLLECTOR, "collector.apiToken.existingSecret="]);
    assert.notEqual(noToken.code, 0);
    assert.match(noToken.err, /collector\.apiToken\.existingSecret is required/);
    const noAuth = template(["dashboard.auth.existingSecret="]);
    assert.notEqual(noAuth.code, 0);
    assert.match(noAuth.err, /dashboard\.auth\.existingSecret is required/);
    const noKeys = template(["dashboard.auth.tokenKey="]);
    assert.notEqual(noKeys.code, 0);
    assert.match(noKeys.err, /set tokenKey and\/or basicAuthKey/);
    const inline = template(["collector.apiToken.value=0123456789abcdef0123"]);
    assert.notEqual(inline.code, 0, "a token given as a value is rejected by the values schema");

    // The explicit opt-out: open, and said so to each pod (which logs it and shows it in /status).
    const open = render([
      COLLECTOR,
      "insecureOpenApi=true",
      "collector.apiToken.existingSecret=",
      "dashboard.auth.existingSecret=",
    ]);
    for (const component of ["collector", "dashboard"]) {
      const env = envOf(find(open, "Deployment", component).spec.template.spec.containers[0]);
      assert.equal(env.get("PAYSTREAM_INSECURE_OPEN_API")?.value, "true", component);
      assert.ok(!env.has("PAYSTREAM_API_TOKEN"), component);
    }
  });

  it("listens on every interface in pods, while the commands default to loopback", () => {
    const ms = render([COLLECTOR]);
    for (const component of ["processor", "collector", "dashboard"]) {
      const env = envOf(find(ms, "Deployment", component).spec.template.spec.containers[0]);
      assert.equal(env.get("PAYSTREAM_HTTP_HOST")?.value, "0.0.0.0", component);
      const help = spawnSync(NODE, [join(ROOT, "src/cli/main.ts"), component, "--help"], {
        encoding: "utf8",
      });
      assert.match(help.stdout, /env PAYSTREAM_HTTP_HOST; key http\.host; default 127\.0\.0\.1/, component);
    }
  });

  it("limits each component's traffic with a NetworkPolicy: in from who needs it, out to what it needs", () => {
    const ms = render([COLLECTOR]);
    const policy = (component: string) => {
      const np = find(ms, "NetworkPolicy", component);
      const deploy = find(ms, "Deployment", component);
      assert.deepEqual(
        np.spec.podSelector.matchLabels,
        deploy.spec.selector.matchLabels,
        `${component} selects its pods`,
      );
      assert.deepEqual(np.spec.policyTypes, ["Ingress", "Egress"]);
      return np.spec;
    };
    const selects = (peer: Manifest, component: string) =>
      peer.podSelector?.matchLabels?.["app.kubernetes.io/component"] === component && !peer.namespaceSelector;
    const prometheus = (peer: Manifest) =>
      peer.podSelector?.matchLabels?.["app.kubernetes.io/name"] === "prometheus";
    const egressPorts = (spec: Manifest) =>
      new Set(
        spec.egress.flatMap((r: Manifest) => (r.ports as Manifest[]).map((p) => `${p.protocol}/${p.port}`)),
      );

    const processor = policy("processor");
    assert.equal(processor.ingress.length, 1);
    assert.deepEqual(processor.ingress[0].ports, [{ port: "metrics", protocol: "TCP" }]);
    assert.ok(processor.ingress[0].from.some(prometheus));
    assert.ok(processor.ingress[0].from.some((p: Manifest) => selects(p, "dashboard")));
    assert.deepEqual([...egressPorts(processor)].sort(), [
      "TCP/443",
      "TCP/53",
      "TCP/5432",
      "TCP/6379",
      "TCP/9092",
      "UDP/53",
    ]);

    const collector = policy("collector");
    assert.deepEqual(collector.ingress[0].ports, [{ port: "http", protocol: "TCP" }]);
    assert.ok(collector.ingress[0].from.some((p: Manifest) => selects(p, "dashboard")));
    assert.ok(collector.ingress[0].from.some(prometheus));
    assert.deepEqual(
      [...egressPorts(collector)].sort(),
      ["TCP/53", "TCP/9092", "UDP/53"],
      "Kafka and DNS only",
    );

    const dashboard = policy("dashboard");
    assert.deepEqual(dashboard.ingress[0].ports, [{ port: "http", protocol: "TCP" }]);
    assert.ok(dashboard.ingress[0].from.some(prometheus), "Prometheus scrapes precision per rule");
    assert.deepEqual(
      [...egressPorts(dashboard)].sort(),
      ["TCP/5000", "TCP/53", "TCP/6379", "TCP/9092", "TCP/9464", "UDP/53"],
      "Redis, Kafka (rules log, backtests), the collector, the processors and DNS only",
    );
    const toCollector = dashboard.egress.find((r: Manifest) =>
      r.to?.some((p: Manifest) => selects(p, "collector")),
    );
    assert.deepEqual(toCollector?.ports, [{ port: 5000, protocol: "TCP" }]);
    const toProcessors = dashboard.egress.find((r: Manifest) =>
      r.to?.some((p: Manifest) => selects(p, "processor")),
    );
    assert.deepEqual(toProcessors?.ports, [{ port: 9464, protocol: "TCP" }]);
    const dashboardEnv = envOf(find(render(), "Deployment", "dashboard").spec.template.spec.containers[0]);
    assert.equal(
      dashboardEnv.get("PAYSTREAM_KAFKA_BROKERS")?.value,
      "kafka-0.kafka:9092,kafka-1.kafka:9092",
      "the dashboard reaches the rules log and the recorded traffic on the processors' brokers",
    );
    // Every pod can resolve names, through the cluster DNS only.
    for (const spec of [processor, collector, dashboard]) {
      const dns = spec.egress.find((r: Manifest) => r.ports.some((p: Manifest) => p.port === 53));
      assert.equal(dns.to[0].namespaceSelector.matchLabels["kubernetes.io/metadata.name"], "kube-system");
    }

    // Narrowed to CIDRs; no peers at all means nothing comes in (never "everything").
    const narrowed = render(
      [COLLECTOR, "networkPolicy.prometheus.from=null", "networkPolicy.dashboard.ingressFrom=null"],
      ["--set-json", 'networkPolicy.kafka.to=[{"ipBlock":{"cidr":"10.20.0.0/16"}}]'],
    );
    const kafka = find(narrowed, "NetworkPolicy", "collector").spec.egress.find((r: Manifest) =>
      r.ports.some((p: Manifest) => p.port === 9092),
    );
    assert.deepEqual(kafka.to, [{ ipBlock: { cidr: "10.20.0.0/16" } }]);
    assert.deepEqual(find(narrowed, "NetworkPolicy", "dashboard").spec.ingress, []);
    assert.ok(!render(["networkPolicy.enabled=false"]).some((m) => m.kind === "NetworkPolicy"));

    // Without a collector (production) nothing is opened towards one.
    const production = render();
    assert.deepEqual(
      production.filter((m) => m.kind === "NetworkPolicy").map((m) => m.metadata.name),
      ["ps-paystream-processor", "ps-paystream-dashboard"],
    );
    assert.ok(
      !find(production, "NetworkPolicy", "dashboard").spec.egress.some((r: Manifest) =>
        r.to?.some((p: Manifest) => selects(p, "collector")),
      ),
    );
  });

  it("runs pods as non-root with a read-only root filesystem and no privilege escalation", () => {
    const uid = /^USER (\d+)/m.exec(readFileSync(join(ROOT, "deploy/Dockerfile"), "utf8"))?.[1];
    for (const component of ["processor", "collector", "dashboard"]) {
      const pod = find(render([COLLECTOR]), "Deployment", component).spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(String(pod.securityContext.runAsUser), uid, "runAsUser is the image's user");
      const sc = pod.containers[0].securityContext;
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.deepEqual(sc.capabilities.drop, ["ALL"]);
      assert.ok(pod.containers[0].resources.requests && pod.containers[0].resources.limits, "resources");
      assert.ok(
        pod.containers[0].volumeMounts.some((v: Manifest) => v.mountPath === "/tmp"),
        "a writable /tmp",
      );
    }
  });

  it("points the dashboard at the collector's Service and the processors' headless Service", () => {
    const ms = render([COLLECTOR]);
    const env = envOf(find(ms, "Deployment", "dashboard").spec.template.spec.containers[0]);
    const collector = find(ms, "Service", "collector");
    const processor = find(ms, "Service", "processor");
    assert.equal(
      env.get("PAYSTREAM_COLLECTOR_URL")?.value,
      `http://${collector.metadata.name}:${collector.spec.ports[0].port}`,
    );
    assert.equal(processor.spec.clusterIP, "None", "headless: its DNS name answers with every pod");
    assert.equal(
      env.get("PAYSTREAM_PROCESSOR_SERVICE")?.value,
      `${processor.metadata.name}:${processor.spec.ports[0].port}`,
    );
    assert.ok(
      !render(["dashboard.enabled=false"]).some(
        (m) => m.metadata.labels?.["app.kubernetes.io/component"] === "dashboard",
      ),
    );
  });

  it("scales processors with KEDA on the group's lag, never past the partition count", () => {
    const so = find(render(), "ScaledObject", "processor");
    assert.ok(so.spec.maxReplicaCount <= PARTITIONS, `maxReplicaCount ${so.spec.maxReplicaCount}`);
    assert.equal(so.spec.scaleTargetRef.name, "ps-paystream-processor");
    const kafka = so.spec.triggers.find((t: Manifest) => t.type === "kafka");
    assert.equal(kafka.metadata.consumerGroup, CONSUMER_GROUP);
    assert.deepEqual(
      so.spec.triggers.find((t: Manifest) => t.type === "cpu"),
      { type: "cpu", metricType: "Utilization", metadata: { value: "70" } },
      "CPU beside the lag",
    );
    assert.deepEqual(so.spec.advanced.horizontalPodAutoscalerConfig.behavior, GUIDE_BEHAVIOR);
    assert.ok(!render().some((m) => m.kind === "HorizontalPodAutoscaler"), "KEDA makes its own HPA");
    assert.equal(kafka.metadata.topic, Topics.transactions);
    assert.equal(kafka.metadata.allowIdleConsumers, "false");
    const deploy = find(render(), "Deployment", "processor");
    assert.equal(deploy.spec.replicas, undefined, "KEDA owns the replica count");
    refuses(
      [`processor.autoscaling.maxReplicaCount=${PARTITIONS + 1}`],
      /processor\.autoscaling\.maxReplicaCount \(25\) must not exceed processor\.autoscaling\.partitions/,
    );
    const prom = find(
      render(["processor.autoscaling.prometheus.serverAddress=http://prometheus:9090"]),
      "ScaledObject",
      "processor",
    );
    // Scoped to the release's namespace: another release's lag must not scale this one.
    assert.match(
      prom.spec.triggers.find((t: Manifest) => t.type === "prometheus").metadata.query,
      /paystream_consumer_lag_seconds\{[^}]*namespace="paystream"/,
    );
  });

  it("scales processors without KEDA with an autoscaling/v2 HPA on CPU and memory, within the partitions", () => {
    const ms = render(["processor.autoscaling.enabled=false"]);
    assert.ok(!ms.some((m) => m.kind === "ScaledObject"));
    const hpa = find(ms, "HorizontalPodAutoscaler", "processor");
    assert.equal(hpa.apiVersion, "autoscaling/v2");
    const deploy = find(ms, "Deployment", "processor");
    assert.deepEqual(hpa.spec.scaleTargetRef, {
      apiVersion: deploy.apiVersion,
      kind: "Deployment",
      name: deploy.metadata.name,
    });
    assert.equal(deploy.spec.replicas, undefined, "the HPA owns the replica count");
    assert.equal(hpa.spec.minReplicas, 2);
    assert.equal(hpa.spec.maxReplicas, 20);
    assert.ok(hpa.spec.maxReplicas <= PARTITIONS);
    const target = (name: string) =>
      hpa.spec.metrics.find((m: Manifest) => m.type === "Resource" && m.resource.name === name)?.resource
        .target;
    assert.deepEqual(target("cpu"), { type: "Utilization", averageUtilization: 70 });
    assert.deepEqual(target("memory"), { type: "Utilization", averageUtilization: 80 });
    assert.deepEqual(hpa.spec.behavior, GUIDE_BEHAVIOR);

    refuses(
      ["processor.autoscaling.enabled=false", `processor.hpa.maxReplicas=${PARTITIONS + 1}`],
      /processor\.hpa\.maxReplicas \(25\) must not exceed processor\.autoscaling\.partitions, the partitions of payments\.transactions \(24\)/,
    );
    refuses(
      ["processor.autoscaling.enabled=false", "processor.autoscaling.partitions=12"],
      /processor\.hpa\.maxReplicas \(20\) must not exceed .* \(12\)/,
    );
    refuses(
      ["processor.autoscaling.enabled=false", "processor.hpa.minReplicas=8", "processor.hpa.maxReplicas=4"],
      /processor\.hpa\.minReplicas \(8\) must not exceed processor\.hpa\.maxReplicas \(4\)/,
    );
    // The values schema names the field.
    refuses(["processor.hpa.cpuUtilization=0"], /processor\/hpa\/cpuUtilization/);
    refuses(["processor.hpa.maxReplicas=lots"], /processor\/hpa\/maxReplicas/);

    // Neither autoscaler: a fixed count, bounded the same way.
    const fixed = render(["processor.autoscaling.enabled=false", "processor.hpa.enabled=false"]);
    assert.equal(find(fixed, "Deployment", "processor").spec.replicas, 2);
    assert.ok(!fixed.some((m) => m.kind === "HorizontalPodAutoscaler"));
    refuses(
      ["processor.autoscaling.enabled=false", "processor.hpa.enabled=false", "processor.replicas=30"],
      /processor\.replicas \(30\) must not exceed processor\.autoscaling\.partitions/,
    );
  });

  it("lets drains and rollouts through while pods are unready: PDB AlwaysAllow, a surge pod", () => {
    const ms = render([COLLECTOR, "collector.podDisruptionBudget.enabled=true"]);
    for (const component of ["processor", "collector"]) {
      const pdb = find(ms, "PodDisruptionBudget", component);
      assert.equal(pdb.spec.unhealthyPodEvictionPolicy, "AlwaysAllow", component);
      assert.deepEqual(
        pdb.spec.selector.matchLabels,
        find(ms, "Deployment", component).spec.selector.matchLabels,
      );
    }
    for (const component of ["processor", "dashboard"]) {
      const strategy = find(ms, "Deployment", component).spec.strategy;
      assert.equal(strategy.type, "RollingUpdate", component);
      assert.ok(
        strategy.rollingUpdate.maxSurge >= 1,
        `${component}: maxSurge ${strategy.rollingUpdate.maxSurge}`,
      );
    }
    // Readiness waits for every dependency: with all pods unready, only an unavailable slot lets
    // the rollout replace them.
    assert.ok(find(ms, "Deployment", "processor").spec.strategy.rollingUpdate.maxUnavailable >= 1);
    refuses(["processor.rollingUpdate.maxSurge=0"], /processor\/rollingUpdate\/maxSurge/);
  });

  it("mounts the repo's default rules, which the processor loads, and rolls pods when they change", () => {
    const ms = render();
    const rules = find(ms, "ConfigMap", "processor").data["rules.yaml"] as string;
    assert.equal(rules.trimEnd(), readFileSync(join(ROOT, "config/rules.default.yaml"), "utf8").trimEnd());
    const dir = mkdtempSync(join(tmpdir(), "ps-rules-"));
    try {
      writeFileSync(join(dir, "rules.yaml"), rules);
      assert.ok(loadRulesFile(join(dir, "rules.yaml"), 60_000).compiled.length > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const deploy = find(ms, "Deployment", "processor");
    const env = envOf(deploy.spec.template.spec.containers[0]);
    const mount = deploy.spec.template.spec.containers[0].volumeMounts.find(
      (v: Manifest) => v.name === "rules",
    );
    assert.equal(dirname(env.get("PAYSTREAM_RULES_FILE")!.value), mount.mountPath);
    const changed = find(render(["processor.rules=version: 1\nrules: []\n"]), "Deployment", "processor").spec
      .template.metadata.annotations["checksum/rules"];
    assert.notEqual(changed, deploy.spec.template.metadata.annotations["checksum/rules"]);
  });

  it("labels scrape jobs with the job names the alert rules use", () => {
    const alerts = readFileSync(join(ROOT, "monitoring/prometheus/rules/paystream-alerts.yml"), "utf8");
    const jobs = new Set([...alerts.matchAll(/job="([\w-]+)"/g)].map((m) => m[1]!));
    const ms = render([COLLECTOR, "serviceMonitor.enabled=true"]);
    const labelled = new Set<string>();
    for (const sm of ms.filter((m) => m.kind === "ServiceMonitor")) {
      const component = sm.metadata.labels["app.kubernetes.io/component"];
      labelled.add(find(ms, "Service", component).metadata.labels[sm.spec.jobLabel]);
    }
    assert.deepEqual([...labelled].sort(), [...jobs].sort());
  });
});

describe("Helm chart: monitoring from monitoring/'s own files", () => {
  const operatorObjects = (ms: Manifest[], kind: string) => ms.filter((m) => m.kind === kind);

  it("holds byte-identical copies of the files it renders from monitoring/ and config/", () => {
    const files = join(CHART, "files");
    const pairs: [string, string][] = [
      ...[...RULE_FILES.keys()].map((f): [string, string] => [
        join(RULES_DIR, f),
        join(files, "prometheus", f),
      ]),
      [GRAFANA_DASHBOARD, join(files, "grafana/paystream.json")],
      [ALERTMANAGER, join(files, "alertmanager/alertmanager.yml")],
      [join(ROOT, "config/rules.default.yaml"), join(files, "rules.default.yaml")],
    ];
    for (const [source, copy] of pairs) {
      const [src, dst] = [relative(ROOT, source), relative(ROOT, copy)];
      assert.ok(
        existsSync(copy) && !lstatSync(copy).isSymbolicLink(),
        `${dst} is missing or a symlink, not a copy of ${src}: run scripts/sync-chart.sh`,
      );
      assert.ok(
        readFileSync(copy).equals(readFileSync(source)),
        `${dst} differs from ${src}: run scripts/sync-chart.sh`,
      );
    }
    assert.deepEqual(
      readdirSync(join(files, "prometheus")).sort(),
      [...RULE_FILES.keys()],
      "deploy/helm/paystream/files/prometheus holds a file monitoring/prometheus/rules does not: run scripts/sync-chart.sh",
    );
  });

  it("scripts/sync-chart.sh refreshes stale copies and drops orphans; --check names them and changes nothing", () => {
    const root = mkdtempSync(join(tmpdir(), "ps-sync-"));
    try {
      for (const path of [
        "scripts/sync-chart.sh",
        "monitoring",
        "config/rules.default.yaml",
        "deploy/helm/paystream/files",
      ]) {
        cpSync(join(ROOT, path), join(root, path), { recursive: true });
      }
      const files = join(root, "deploy/helm/paystream/files");
      const source = join(root, "monitoring/prometheus/rules/paystream-alerts.yml");
      const copy = join(files, "prometheus/paystream-alerts.yml");
      writeFileSync(source, `${readFileSync(source, "utf8")}# edited\n`);
      const orphan = join(files, "prometheus/paystream-retired.yml");
      writeFileSync(orphan, "groups: []\n");
      const sync = (...args: string[]) => run("bash", [join(root, "scripts/sync-chart.sh"), ...args]);

      const check = sync("--check");
      assert.equal(check.code, 1, check.out);
      assert.match(
        check.out,
        /stale: deploy\/helm\/paystream\/files\/prometheus\/paystream-alerts\.yml differs from monitoring\/prometheus\/rules\/paystream-alerts\.yml/,
      );
      assert.match(check.out, /paystream-retired\.yml has no source in monitoring\/prometheus\/rules/);
      assert.match(check.err, /run scripts\/sync-chart\.sh/);
      assert.ok(
        !readFileSync(copy).equals(readFileSync(source)) && existsSync(orphan),
        "--check changed nothing",
      );

      assert.equal(sync().code, 0);
      assert.ok(readFileSync(copy).equals(readFileSync(source)));
      assert.ok(!existsSync(orphan));
      assert.equal(sync("--check").code, 0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("renders ServiceMonitors and PrometheusRules when the cluster serves their CRDs, or when told to", () => {
    const count = (ms: Manifest[], kind: string) => operatorObjects(ms, kind).length;
    const without = render([COLLECTOR]);
    assert.equal(count(without, "ServiceMonitor"), 0, "no CRD, no ServiceMonitor: the install would fail");
    assert.equal(count(without, "PrometheusRule"), 0);
    const withCrds = render([COLLECTOR], OPERATOR_CRDS);
    assert.equal(count(withCrds, "ServiceMonitor"), 3, "processor, collector and dashboard");
    assert.equal(count(withCrds, "PrometheusRule"), RULE_FILES.size, "one per rule file");
    const onlyMonitors = render([], ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"]);
    assert.equal(
      count(onlyMonitors, "ServiceMonitor"),
      2,
      "processor and dashboard (no collector by default)",
    );
    assert.equal(count(onlyMonitors, "PrometheusRule"), 0, "each CRD is asked for on its own");
    // What `helm template` users must pass: the group version alone does not name the CRD.
    assert.equal(count(render([], ["--api-versions", "monitoring.coreos.com/v1"]), "ServiceMonitor"), 0);

    const off = render(["serviceMonitor.enabled=false", "prometheusRule.enabled=false"], OPERATOR_CRDS);
    assert.equal(count(off, "ServiceMonitor") + count(off, "PrometheusRule"), 0);
    const forced = render(["serviceMonitor.enabled=true", "prometheusRule.enabled=true"]);
    assert.equal(count(forced, "ServiceMonitor"), 2);
    assert.equal(count(forced, "PrometheusRule"), RULE_FILES.size);
    refuses(["serviceMonitor.enabled=sometimes"], /serviceMonitor\/enabled/);

    // The rules group by namespace: the operator's target labels must reach the series as they are.
    for (const sm of operatorObjects(withCrds, "ServiceMonitor")) {
      assert.notEqual(sm.spec.honorLabels, true, "the app's labels never override the target's");
      for (const ep of sm.spec.endpoints as Manifest[]) {
        const relabels = [...(ep.relabelings ?? []), ...(ep.metricRelabelings ?? [])] as Manifest[];
        assert.ok(
          !relabels.some((r) => r.targetLabel === "namespace" || /^label(drop|keep)$/.test(r.action ?? "")),
          "namespace is kept",
        );
      }
    }
  });

  it("puts exactly the groups of each monitoring/prometheus/rules file in a PrometheusRule", () => {
    const ms = render(["prometheusRule.labels.release=kube-prometheus-stack"], OPERATOR_CRDS);
    const rules = operatorObjects(ms, "PrometheusRule");
    assert.equal(rules.length, RULE_FILES.size);
    for (const [file, groups] of RULE_FILES) {
      const pr = rules.find((r) => r.spec.groups?.[0]?.name === groups[0]?.name);
      assert.ok(pr, `a PrometheusRule for ${file}`);
      assert.deepEqual(pr.spec, { groups }, `the PrometheusRule for ${file} holds its groups as they are`);
      assert.equal(pr.metadata.labels.release, "kube-prometheus-stack", "the Prometheus' ruleSelector label");
    }

    const base = "https://github.com/acme/paystream/blob/main";
    const linked = operatorObjects(
      render([`prometheusRule.runbookBaseUrl=${base}/`], OPERATOR_CRDS),
      "PrometheusRule",
    );
    const runbooks = (groups: Manifest[]) =>
      groups.flatMap((g) => (g.rules as Manifest[]).flatMap((r) => r.annotations?.runbook_url ?? []));
    const want = [...RULE_FILES.values()].flatMap((groups) => runbooks(groups).map((u) => `${base}/${u}`));
    assert.ok(want.length > 0);
    assert.deepEqual(linked.flatMap((pr) => runbooks(pr.spec.groups)).sort(), want.sort());
  });

  it("ships monitoring/grafana/paystream.json in a ConfigMap labelled for the Grafana sidecar", () => {
    const dashboardMap = (ms: Manifest[]) =>
      ms.find((m) => m.metadata.name === "ps-paystream-grafana-dashboard");
    const cm = dashboardMap(render());
    assert.ok(cm && cm.kind === "ConfigMap");
    assert.equal(cm.metadata.labels.grafana_dashboard, "1");
    assert.equal(cm.data["paystream.json"], readFileSync(GRAFANA_DASHBOARD, "utf8"));

    const moved = dashboardMap(
      render([
        "grafanaDashboard.labels.grafana_dashboard=null",
        "grafanaDashboard.labels.dashboards=paystream",
        "grafanaDashboard.annotations.grafana_folder=Payments",
        "grafanaDashboard.namespace=monitoring",
      ]),
    );
    assert.equal(moved?.metadata.labels.dashboards, "paystream");
    assert.equal(moved?.metadata.labels.grafana_dashboard, undefined);
    assert.equal(moved?.metadata.annotations.grafana_folder, "Payments");
    assert.equal(moved?.metadata.namespace, "monitoring");
    assert.equal(dashboardMap(render(["grafanaDashboard.enabled=false"])), undefined);
  });

  it("builds an Alertmanager config Secret from monitoring/'s routing: critical alerts page and reach Slack", () => {
    const SLACK = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXX";
    const secret = render([
      "alertmanagerConfig.enabled=true",
      `alertmanagerConfig.slack.webhookUrl=${SLACK}`,
      "alertmanagerConfig.pagerduty.existingSecret=paystream-pagerduty",
    ]).find((m) => m.kind === "Secret");
    assert.ok(secret, "a Secret");
    assert.equal(secret.metadata.name, "ps-paystream-alertmanager");
    const text = Buffer.from(secret.data["alertmanager.yaml"], "base64").toString("utf8");
    const cfg = parseYaml(text) as Manifest;
    const source = parseYaml(readFileSync(ALERTMANAGER, "utf8")) as Manifest;
    assert.deepEqual(cfg.route, source.route, "the routes of monitoring/alertmanager/alertmanager.yml");
    assert.deepEqual(cfg.inhibit_rules, source.inhibit_rules);

    const dir = mkdtempSync(join(tmpdir(), "ps-am-"));
    try {
      const file = join(dir, "alertmanager.yaml");
      writeFileSync(file, text);
      const amtool = amtoolBin();
      const check = run(amtool, ["check-config", file]);
      assert.equal(check.code, 0, check.out + check.err);
      assert.match(check.out, /SUCCESS/);
      const receivers = (labels: string[]) => {
        const r = run(amtool, ["config", "routes", "test", `--config.file=${file}`, ...labels]);
        assert.equal(r.code, 0, r.err);
        return r.out
          .trim()
          .split(",")
          .map((name) => (cfg.receivers as Manifest[]).find((x) => x.name === name.trim())!);
      };
      const alerts = [...RULE_FILES.values()]
        .flat()
        .flatMap((g) => (g.rules as Manifest[]).filter((r) => r.alert));
      assert.ok(alerts.some((a) => a.labels.severity === "critical"));
      for (const a of alerts) {
        const got = receivers([
          `alertname=${a.alert}`,
          `severity=${a.labels.severity}`,
          "namespace=paystream",
        ]);
        const slack = got.flatMap((r) => r.slack_configs ?? []);
        assert.ok(
          slack.length > 0 && slack.every((c: Manifest) => c.api_url === SLACK),
          `${a.alert} reaches Slack`,
        );
        if (a.labels.severity === "critical") {
          assert.deepEqual(
            got.flatMap((r) => r.pagerduty_configs ?? []).map((c: Manifest) => c.routing_key_file),
            ["/etc/alertmanager/secrets/paystream-pagerduty/pagerduty-routing-key"],
            `${a.alert} pages, with the key from the mounted Secret`,
          );
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // The other way round: Slack from a mounted Secret, the PagerDuty key as a value; elsewhere.
    const other = render([
      "alertmanagerConfig.enabled=true",
      "alertmanagerConfig.slack.existingSecret=slack",
      "alertmanagerConfig.slack.channel=#payments-oncall",
      "alertmanagerConfig.pagerduty.routingKey=0123456789abcdef0123456789abcdef",
      "alertmanagerConfig.namespace=monitoring",
    ]).find((m) => m.kind === "Secret")!;
    assert.equal(other.metadata.namespace, "monitoring", "beside the Alertmanager that reads it");
    const otherCfg = parseYaml(
      Buffer.from(other.data["alertmanager.yaml"], "base64").toString("utf8"),
    ) as Manifest;
    for (const r of otherCfg.receivers as Manifest[]) {
      for (const c of r.slack_configs) {
        assert.deepEqual(
          [c.api_url, c.api_url_file, c.channel],
          [undefined, "/etc/alertmanager/secrets/slack/slack-webhook-url", "#payments-oncall"],
        );
      }
      for (const c of r.pagerduty_configs ?? []) {
        assert.deepEqual(
          [c.routing_key, c.routing_key_file],
          ["0123456789abcdef0123456789abcdef", undefined],
        );
      }
    }

    // Never a default credential, never two.
    const on = "alertmanagerConfig.enabled=true";
    const pd = "alertmanagerConfig.pagerduty.existingSecret=pd";
    refuses(
      [on, pd],
      /alertmanagerConfig\.slack\.webhookUrl or alertmanagerConfig\.slack\.existingSecret is required/,
    );
    refuses(
      [on, "alertmanagerConfig.slack.existingSecret=slack"],
      /alertmanagerConfig\.pagerduty\.routingKey or alertmanagerConfig\.pagerduty\.existingSecret is required/,
    );
    refuses(
      [
        on,
        pd,
        `alertmanagerConfig.slack.webhookUrl=${SLACK}`,
        "alertmanagerConfig.slack.existingSecret=slack",
      ],
      /alertmanagerConfig\.slack: set webhookUrl or existingSecret, not both/,
    );
    refuses(
      [on, pd, "alertmanagerConfig.slack.webhookUrl=http://hooks.slack.com/x"],
      /alertmanagerConfig\/slack\/webhookUrl/,
    );
  });
});

describe("Helm chart: dashboard Ingress", () => {
  const controller = (peer: Manifest) =>
    peer.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"] === "ingress-nginx";

  it("serves the dashboard over HTTPS through an Ingress when asked, and lets only then the controller in", () => {
    assert.ok(!render().some((m) => m.kind === "Ingress"));
    assert.ok(!find(render(), "NetworkPolicy", "dashboard").spec.ingress[0].from.some(controller));

    const host = "paystream.example.com";
    const ms = render([
      "dashboard.ingress.enabled=true",
      `dashboard.ingress.host=${host}`,
      "dashboard.ingress.className=nginx",
      "dashboard.allowedHosts=dashboard.internal",
    ]);
    const ing = find(ms, "Ingress", "dashboard");
    assert.equal(ing.spec.ingressClassName, "nginx");
    assert.deepEqual(ing.spec.tls, [{ hosts: [host], secretName: "ps-paystream-dashboard-tls" }]);
    assert.equal(ing.spec.rules[0].host, host);
    const backend = ing.spec.rules[0].http.paths[0].backend.service;
    const svc = find(ms, "Service", "dashboard");
    assert.equal(backend.name, svc.metadata.name);
    assert.ok(
      svc.spec.ports.some((p: Manifest) => p.name === backend.port.name),
      "a port of the Service",
    );
    assert.ok(find(ms, "NetworkPolicy", "dashboard").spec.ingress[0].from.some(controller));
    const env = envOf(find(ms, "Deployment", "dashboard").spec.template.spec.containers[0]);
    assert.equal(
      env.get("PAYSTREAM_ALLOWED_HOSTS")?.value,
      `dashboard.internal,${host}`,
      "the Ingress host is answered",
    );

    const plain = find(
      render([
        "dashboard.ingress.enabled=true",
        `dashboard.ingress.host=${host}`,
        "dashboard.ingress.tls.enabled=false",
      ]),
      "Ingress",
      "dashboard",
    );
    assert.equal(plain.spec.tls, undefined);
    refuses(["dashboard.ingress.enabled=true"], /dashboard\.ingress\.host is required/);
    refuses(
      ["dashboard.ingress.enabled=true", "dashboard.ingress.host=https://x"],
      /dashboard\/ingress\/host/,
    );
  });
});

describe("container image", () => {
  const dockerfile = readFileSync(join(ROOT, "deploy/Dockerfile"), "utf8");
  let app = "";

  before(() => {
    app = mkdtempSync(join(tmpdir(), "ps-image-"));
  });
  after(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it("builds on node:24-slim, installs production dependencies only and runs as a non-root user", () => {
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(froms.length > 0 && froms.every((f) => f === "node:24-slim"), froms.join(", "));
    assert.match(dockerfile, /^RUN npm ci --omit=dev\b/m);
    const user = /^USER (\d+)(?::(\d+))?$/m.exec(dockerfile);
    assert.ok(user && Number(user[1]) > 0, "USER is a numeric non-root uid");
    assert.match(dockerfile, /^ENTRYPOINT \["node", "src\/cli\/main\.ts"\]$/m);
    const ignore = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const p of ["node_modules", ".git", "data"]) assert.ok(ignore.includes(p), `.dockerignore: ${p}`);
    for (const p of ["src", "config", "package.json", "package-lock.json"]) {
      assert.ok(!ignore.includes(p), `.dockerignore keeps ${p}`);
    }
  });

  it("runs every command from the files the Dockerfile copies with `npm ci --omit=dev`", () => {
    // The final stage's COPY lines (other than --from=deps), then the deps stage's install.
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) (\S+)$/gm)) {
      for (const src of m[1]!.split(/\s+/)) cpSync(join(ROOT, src), join(app, src), { recursive: true });
    }
    cpSync(join(ROOT, "package-lock.json"), join(app, "package-lock.json"));
    const path = `${dirname(NODE)}:${process.env.PATH}`;
    const ci = spawnSync("npm", ["ci", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline"], {
      cwd: app,
      encoding: "utf8",
      env: { ...process.env, PATH: path },
    });
    assert.equal(ci.status, 0, ci.stderr);
    for (const dev of ["typescript", "@biomejs/biome", "node"]) {
      assert.ok(!existsSync(join(app, "node_modules", dev)), `dev dependency ${dev} not installed`);
    }
    for (const command of ["processor", "collector", "up", "verify", "topics", "dashboard"]) {
      const r = spawnSync(NODE, ["src/cli/main.ts", command, "--help"], { cwd: app, encoding: "utf8" });
      assert.equal(r.status, 0, `${command} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`Usage: paystream ${command}`));
    }
    const duck = spawnSync(NODE, ["-e", "await import('@duckdb/node-api')"], {
      cwd: app,
      encoding: "utf8",
      env: { ...process.env, NODE_OPTIONS: "--input-type=module" },
    });
    assert.equal(duck.status, 0, `DuckDB's native binding loads: ${duck.stderr}`);
    const rules = parseYaml(readFileSync(join(app, "config/rules.default.yaml"), "utf8")) as {
      rules: unknown[];
    };
    assert.ok(rules.rules.length > 0, "the default rules file is in the image");
  });
});
