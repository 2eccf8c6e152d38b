/**
 * The spike harness's stand-in for KEDA + the HPA: the lag formula, the HPA's tolerance, the
 * chart's behaviour (stabilization windows, rate policies), replayed with fake time, and the
 * Supervisor applying decisions to fake replicas.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  CHART_SCALE_DOWN_POLICIES,
  CHART_SCALE_UP_POLICIES,
  HPA_TOLERANCE,
  Hpa,
  hpaRawDesired,
  kedaLagMetric,
  readChartAutoscaling,
  type ScalerConfig,
  Supervisor,
} from "../../../bench/lib/supervisor.ts";

function config(over: Partial<ScalerConfig> = {}): ScalerConfig {
  return {
    lagThreshold: 50_000,
    minReplicas: 1,
    maxReplicas: 4,
    partitions: 24,
    scaleUp: { stabilizationWindowSeconds: 0, policies: CHART_SCALE_UP_POLICIES },
    scaleDown: { stabilizationWindowSeconds: 300, policies: CHART_SCALE_DOWN_POLICIES },
    tolerance: HPA_TOLERANCE,
    ...over,
  };
}

/** Runs decide → record like the supervisor does; returns the replica count after each step. */
function replay(hpa: Hpa, steps: [t: number, lag: number][], start = 1): number[] {
  let current = start;
  return steps.map(([t, lag]) => {
    const d = hpa.decide(t, current, lag);
    hpa.record(t, current, d.desired);
    current = d.desired;
    return current;
  });
}

describe("KEDA's Kafka lag metric and the HPA's raw count", () => {
  it("is ceil(total lag / lagThreshold)", () => {
    assert.equal(hpaRawDesired(kedaLagMetric(0, 50_000, 24), 50_000, 1), 0);
    assert.equal(hpaRawDesired(kedaLagMetric(50_001, 50_000, 24), 50_000, 3), 2);
    assert.equal(hpaRawDesired(kedaLagMetric(175_000, 50_000, 24), 50_000, 1), 4);
  });

  it("caps the lag at partitions × threshold (allowIdleConsumers: false)", () => {
    assert.equal(kedaLagMetric(10_000_000, 50_000, 24), 24 * 50_000);
    assert.equal(kedaLagMetric(-5, 50_000, 24), 0);
  });

  it("keeps the current count within the 10% tolerance", () => {
    // 2 replicas, 105,000 lag: ratio 1.05 → no change, although ceil would say 3.
    assert.equal(hpaRawDesired(105_000, 50_000, 2), 2);
    assert.equal(hpaRawDesired(111_000, 50_000, 2), 3);
    assert.equal(hpaRawDesired(89_000, 50_000, 2), 2);
  });
});

describe("Hpa with the chart's behaviour", () => {
  it("doubles at most every 30 s on the way up", () => {
    const hpa = new Hpa(config());
    // A lag that asks for the maximum at once.
    const n = replay(hpa, [
      [0, 1_000_000],
      [5, 1_000_000],
      [29, 1_000_000],
      [31, 1_000_000],
    ]);
    assert.deepEqual(n, [2, 2, 2, 4]);
    const d = hpa.decide(35, 4, 1_000_000);
    assert.equal(d.desired, 4);
    assert.equal(d.raw, 20);
    assert.equal(d.limitedBy, "max");
  });

  it("reports the scale-up policy as the limit", () => {
    const hpa = new Hpa(config());
    const d = hpa.decide(0, 1, 1_000_000);
    assert.equal(d.desired, 2);
    assert.equal(d.limitedBy, "scale-up policy");
  });

  it("waits out the scale-down stabilization window, then halves at most every 60 s", () => {
    const hpa = new Hpa(config());
    const steps: [number, number][] = [
      [0, 1_000_000],
      [31, 1_000_000],
    ];
    // Lag gone from t = 40 on, polled every 5 s.
    for (let t = 40; t <= 500; t += 5) steps.push([t, 0]);
    const n = replay(hpa, steps);
    const at = (t: number) => n[steps.findIndex(([s]) => s === t)]!;
    assert.equal(at(31), 4);
    // The high recommendation of t = 31 is in the 300 s window until t = 331.
    assert.equal(at(330), 4);
    assert.equal(at(335), 2);
    // −50% per 60 s, counted from the last scale-down.
    assert.equal(at(390), 2);
    assert.equal(at(395), 1);
    assert.equal(at(500), 1);
  });

  it("never goes below min or above min(max, partitions)", () => {
    const hpa = new Hpa(config({ minReplicas: 2, maxReplicas: 8, partitions: 3 }));
    assert.equal(hpa.decide(0, 2, 0).desired, 2);
    const n = replay(
      hpa,
      [
        [100, 10_000_000],
        [200, 10_000_000],
      ],
      2,
    );
    assert.deepEqual(n, [3, 3]);
  });

  it("with a 0 s scale-down window follows the lag down at the policy's pace", () => {
    const hpa = new Hpa(
      config({ scaleDown: { stabilizationWindowSeconds: 0, policies: CHART_SCALE_DOWN_POLICIES } }),
    );
    const n = replay(
      hpa,
      [
        [0, 0],
        [10, 0],
        [70, 0],
      ],
      4,
    );
    assert.deepEqual(n, [2, 2, 1]);
  });

  it("refuses a config that cannot work", () => {
    assert.throws(() => new Hpa(config({ lagThreshold: 0 })), /lagThreshold/);
    assert.throws(() => new Hpa(config({ minReplicas: 5, maxReplicas: 4 })), /min/);
  });
});

describe("readChartAutoscaling", () => {
  it("reads the chart's processor.autoscaling values", () => {
    const path = fileURLToPath(new URL("../../../deploy/helm/paystream/values.yaml", import.meta.url));
    const a = readChartAutoscaling(path);
    assert.ok(a.lagThreshold > 0);
    assert.ok(a.scaleDownStabilizationSeconds >= 0);
    assert.ok(a.maxReplicaCount <= a.partitions);
  });
});

describe("Supervisor", () => {
  function fake() {
    let now = 0;
    let lag = 0;
    const started: number[] = [];
    const stopped: number[] = [];
    const sup = new Supervisor<{ id: number }>(
      new Hpa(config({ scaleDown: { stabilizationWindowSeconds: 0, policies: CHART_SCALE_DOWN_POLICIES } })),
      {
        lag: async () => lag,
        start: async (index) => {
          started.push(index);
          return { id: index };
        },
        stop: async (r) => {
          stopped.push(r.id);
        },
        now: () => now,
        log: () => {},
      },
    );
    return {
      sup,
      started,
      stopped,
      set(t: number, l: number) {
        now = t;
        lag = l;
      },
    };
  }

  it("starts the minimum, grows on lag and stops the newest replicas first", async () => {
    const f = fake();
    await f.sup.startInitial();
    assert.deepEqual(f.started, [0]);
    f.set(5, 400_000);
    await f.sup.poll();
    f.set(40, 400_000);
    await f.sup.poll();
    assert.equal(f.sup.replicas, 4);
    assert.deepEqual(f.started, [0, 1, 2, 3]);
    assert.equal((await f.sup.live()).length, 4);
    // −50% per 60 s counts from the replicas at the start of the period: 4 − 3 added = 1.
    f.set(50, 0);
    await f.sup.poll();
    assert.equal(f.sup.replicas, 1);
    assert.deepEqual(f.stopped, [3, 2, 1]);
    await f.sup.stopAll();
    assert.deepEqual(f.stopped, [3, 2, 1, 0]);
    assert.deepEqual(
      f.sup.events.map((e) => [e.from, e.to]),
      [
        [1, 2],
        [2, 4],
        [4, 1],
      ],
    );
  });

  it("counts a replica that is still starting, and leaves it out of live()", async () => {
    let release: (r: { id: number }) => void = () => {};
    const sup = new Supervisor<{ id: number }>(new Hpa(config()), {
      lag: async () => 200_000,
      start: (index) =>
        index === 0 ? Promise.resolve({ id: 0 }) : new Promise((resolve) => (release = resolve)),
      stop: async () => {},
      now: () => 1,
      log: () => {},
    });
    await sup.startInitial();
    await sup.poll();
    assert.equal(sup.replicas, 2);
    assert.equal((await sup.live()).length, 1);
    release({ id: 1 });
    await new Promise((r) => setImmediate(r));
    assert.equal((await sup.live()).length, 2);
  });
});
