/**
 * Deployment as code: the Helm chart (helm lint, helm template, and the facts users rely on:
 * env var names the commands really read, probes on real paths, the PII key only from a Secret,
 * KEDA bounded by the partition count, non-root read-only pods) and the container image
 * (Dockerfile facts, and its /app assembled from the Dockerfile's COPY lines with
 * `npm ci --omit=dev` running the commands).
 *
 * Needs helm on PATH (or /usr/local/bin, ~/go/bin): `go install helm.sh/helm/v3/cmd/helm@v3.22.0`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { CONSUMER_GROUP, TopicLayout, Topics } from "../../src/contracts/topics.ts";
import { createServiceHttp, resolveAccess } from "../../src/lib/http.ts";
import { createRegistry } from "../../src/lib/metrics.ts";
import { loadRulesFile } from "../../src/processor/rules-file.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CHART = join(ROOT, "deploy/helm/paystream");
const NODE = process.execPath;
const PARTITIONS = TopicLayout[Topics.transactions].partitions;

/** The values without which the chart refuses to render. */
const REQUIRED = [
  "kafka.brokers=kafka-0.kafka:9092\\,kafka-1.kafka:9092",
  "redis.url=redis://redis:6379",
  "piiKey.existingSecret=paystream-pii",
  "processor.warehouse.url=postgres://paystream@pg:5432/paystream",
  "collector.apiToken.existingSecret=paystream-collector-api",
  "dashboard.auth.existingSecret=paystream-dashboard-auth",
];

function helmBin(): string {
  const candidates = [
    spawnSync("sh", ["-c", "command -v helm"], { encoding: "utf8" }).stdout.trim(),
    // Where scripts/services.sh builds it.
    join(
      process.env.PAYSTREAM_CACHE_DIR ??
        join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "paystream"),
      "bin/helm",
    ),
    "/usr/local/bin/helm",
    join(homedir(), "go/bin/helm"),
  ];
  const found = candidates.find((c) => c && existsSync(c));
  assert.ok(found, "helm not found: `bash scripts/services.sh up` builds it (needs Go)");
  return found;
}

function helm(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(helmBin(), args, { encoding: "utf8", cwd: ROOT });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

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

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field
type Manifest = Record<string, any>;

function render(set: string[] = [], extra: string[] = []): Manifest[] {
  const r = template(set, extra);
  assert.equal(r.code, 0, r.err);
  return parseAllDocuments(r.out)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
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
  it("passes helm lint --strict", () => {
    const r = helm(["lint", CHART, "--strict", ...REQUIRED.flatMap((s) => ["--set", s])]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it("renders the collector and processor Deployments, Services, PDB, rules ConfigMap and KEDA ScaledObject", () => {
    const ms = render();
    const kinds = ms.map((m) => `${m.kind}/${m.metadata.name}`).sort();
    for (const want of [
      "ConfigMap/ps-paystream-rules",
      "Deployment/ps-paystream-collector",
      "Deployment/ps-paystream-dashboard",
      "Deployment/ps-paystream-processor",
      "PodDisruptionBudget/ps-paystream-processor",
      "ScaledObject/ps-paystream-processor",
      "Service/ps-paystream-collector",
      "Service/ps-paystream-dashboard",
      "Service/ps-paystream-processor",
    ]) {
      assert.ok(kinds.includes(want), `${want} in ${kinds.join(", ")}`);
    }
    assert.ok(!ms.some((m) => m.kind === "Secret"), "the chart creates no Secret");
    const withMonitors = render(["serviceMonitor.enabled=true"]);
    assert.equal(withMonitors.filter((m) => m.kind === "ServiceMonitor").length, 2);
  });

  it("sets only env vars that `paystream processor|collector --help` lists, and the ones they need", () => {
    const ms = render(["processor.env.PAYSTREAM_MAX_BATCH=1000", "collector.env.PAYSTREAM_ACCOUNTS=50000"]);
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
    const ms = render();
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
    const ms = render(["dashboard.auth.basicAuthKey=PAYSTREAM_DASHBOARD_BASIC_AUTH"]);
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
    const noToken = template(["collector.apiToken.existingSecret="]);
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
    const ms = render();
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
    const ms = render();
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
    const toCollector = dashboard.egress.find((r: Manifest) =>
      r.to?.some((p: Manifest) => selects(p, "collector")),
    );
    assert.deepEqual(toCollector?.ports, [{ port: 5000, protocol: "TCP" }]);
    const toProcessors = dashboard.egress.find((r: Manifest) =>
      r.to?.some((p: Manifest) => selects(p, "processor")),
    );
    assert.deepEqual(toProcessors?.ports, [{ port: 9464, protocol: "TCP" }]);
    assert.ok(!egressPorts(dashboard).has("TCP/9092"), "the dashboard does not talk to Kafka");
    // Every pod can resolve names, through the cluster DNS only.
    for (const spec of [processor, collector, dashboard]) {
      const dns = spec.egress.find((r: Manifest) => r.ports.some((p: Manifest) => p.port === 53));
      assert.equal(dns.to[0].namespaceSelector.matchLabels["kubernetes.io/metadata.name"], "kube-system");
    }

    // Narrowed to CIDRs; no peers at all means nothing comes in (never "everything").
    const narrowed = render(
      ["networkPolicy.prometheus.from=null", "networkPolicy.dashboard.ingressFrom=null"],
      ["--set-json", 'networkPolicy.kafka.to=[{"ipBlock":{"cidr":"10.20.0.0/16"}}]'],
    );
    const kafka = find(narrowed, "NetworkPolicy", "collector").spec.egress.find((r: Manifest) =>
      r.ports.some((p: Manifest) => p.port === 9092),
    );
    assert.deepEqual(kafka.to, [{ ipBlock: { cidr: "10.20.0.0/16" } }]);
    assert.deepEqual(find(narrowed, "NetworkPolicy", "dashboard").spec.ingress, []);
    assert.ok(!render(["networkPolicy.enabled=false"]).some((m) => m.kind === "NetworkPolicy"));
  });

  it("runs pods as non-root with a read-only root filesystem and no privilege escalation", () => {
    const uid = /^USER (\d+)/m.exec(readFileSync(join(ROOT, "deploy/Dockerfile"), "utf8"))?.[1];
    for (const component of ["processor", "collector", "dashboard"]) {
      const pod = find(render(), "Deployment", component).spec.template.spec;
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
    const ms = render();
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
    assert.ok(!render(["dashboard.enabled=false"]).some((m) => m.metadata.name.endsWith("-dashboard")));
  });

  it("scales processors with KEDA on the group's lag, never past the partition count", () => {
    const so = find(render(), "ScaledObject", "processor");
    assert.ok(so.spec.maxReplicaCount <= PARTITIONS, `maxReplicaCount ${so.spec.maxReplicaCount}`);
    assert.equal(so.spec.scaleTargetRef.name, "ps-paystream-processor");
    const kafka = so.spec.triggers.find((t: Manifest) => t.type === "kafka");
    assert.equal(kafka.metadata.consumerGroup, CONSUMER_GROUP);
    assert.equal(kafka.metadata.topic, Topics.transactions);
    assert.equal(kafka.metadata.allowIdleConsumers, "false");
    const deploy = find(render(), "Deployment", "processor");
    assert.equal(deploy.spec.replicas, undefined, "KEDA owns the replica count");
    const tooMany = template([`processor.autoscaling.maxReplicaCount=${PARTITIONS + 1}`]);
    assert.notEqual(tooMany.code, 0, "more replicas than partitions is refused");
    const prom = find(
      render(["processor.autoscaling.prometheus.serverAddress=http://prometheus:9090"]),
      "ScaledObject",
      "processor",
    );
    assert.match(
      prom.spec.triggers.find((t: Manifest) => t.type === "prometheus").metadata.query,
      /paystream_consumer_lag_seconds/,
    );
    const fixed = find(render(["processor.autoscaling.enabled=false"]), "Deployment", "processor");
    assert.equal(fixed.spec.replicas, 2);
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
    const ms = render(["serviceMonitor.enabled=true"]);
    const labelled = new Set<string>();
    for (const sm of ms.filter((m) => m.kind === "ServiceMonitor")) {
      const component = sm.metadata.labels["app.kubernetes.io/component"];
      labelled.add(find(ms, "Service", component).metadata.labels[sm.spec.jobLabel]);
    }
    assert.deepEqual([...labelled].sort(), [...jobs].sort());
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
