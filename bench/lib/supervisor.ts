/**
 * A local stand-in for KEDA + the Horizontal Pod Autoscaler, for `npm run spike`: processor
 * replicas are processes instead of pods, and the replica count follows the consumer group's
 * lag by the same arithmetic the chart sets up (deploy/helm/paystream/templates/
 * processor-scaledobject.yaml):
 *
 * - KEDA's Kafka trigger hands the HPA the group's total lag as an external metric with an
 *   AverageValue target of `lagThreshold`, capped at partitions × lagThreshold because the
 *   chart sets allowIdleConsumers: "false";
 * - the HPA turns that into ceil(lag / lagThreshold) replicas, unless the ratio to the current
 *   count is within its 10% tolerance;
 * - the chart's `behavior` (templates/_helpers.tpl, paystream.processor.behavior) then shapes it: stabilization windows (scale-up 0 s, scale-down
 *   `scaleDownStabilizationSeconds`) and rate policies (up: +100% per 30 s, down: −50% per
 *   60 s), replayed here as kube-controller-manager's podautoscaler does (its
 *   stabilizeRecommendationWithBehaviors and convertDesiredReplicasWithBehaviorRate).
 *
 * The model (Hpa, kedaLagMetric, hpaRawDesired) is pure, with time passed in, so the tests
 * replay a spike without processes. Supervisor drives real replicas through callbacks.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";

export interface ScalingPolicy {
  type: "Percent" | "Pods";
  value: number;
  periodSeconds: number;
}

/** One direction of the HPA's `behavior`; selectPolicy is the default (Max change). */
export interface ScalingRules {
  stabilizationWindowSeconds: number;
  policies: ScalingPolicy[];
}

export interface ScalerConfig {
  /** Records of lag per replica (KEDA's lagThreshold). */
  lagThreshold: number;
  minReplicas: number;
  maxReplicas: number;
  /** Partitions of the input topic: replicas beyond them would sit idle. */
  partitions: number;
  scaleUp: ScalingRules;
  scaleDown: ScalingRules;
  /** The HPA's --horizontal-pod-autoscaler-tolerance (default 0.1). */
  tolerance: number;
}

/** The HPA's own default tolerance: ratios within ±10% of 1 change nothing. */
export const HPA_TOLERANCE = 0.1;

/** The policies written into the chart's ScaledObject template (not values: the template fixes them). */
export const CHART_SCALE_UP_POLICIES: ScalingPolicy[] = [{ type: "Percent", value: 100, periodSeconds: 30 }];
export const CHART_SCALE_DOWN_POLICIES: ScalingPolicy[] = [{ type: "Percent", value: 50, periodSeconds: 60 }];

export interface ChartAutoscaling {
  lagThreshold: number;
  scaleDownStabilizationSeconds: number;
  pollingInterval: number;
  minReplicaCount: number;
  maxReplicaCount: number;
  partitions: number;
}

/** processor.autoscaling from the chart's values.yaml, so the harness follows the chart when it changes. */
export function readChartAutoscaling(valuesPath: string): ChartAutoscaling {
  const doc = parse(readFileSync(valuesPath, "utf8")) as {
    processor?: { autoscaling?: Record<string, unknown> };
  };
  const a = doc.processor?.autoscaling;
  if (!a) throw new Error(`${valuesPath}: no processor.autoscaling`);
  const num = (k: string): number => {
    const v = Number(a[k]);
    if (!Number.isFinite(v)) throw new Error(`${valuesPath}: processor.autoscaling.${k} is not a number`);
    return v;
  };
  return {
    lagThreshold: num("lagThreshold"),
    scaleDownStabilizationSeconds: num("scaleDownStabilizationSeconds"),
    pollingInterval: num("pollingInterval"),
    minReplicaCount: num("minReplicaCount"),
    maxReplicaCount: num("maxReplicaCount"),
    partitions: num("partitions"),
  };
}

/** The metric KEDA's Kafka scaler reports: total lag, capped so the HPA never asks for more replicas than partitions. */
export function kedaLagMetric(totalLag: number, lagThreshold: number, partitions: number): number {
  const lag = Math.max(0, totalLag);
  return lag / lagThreshold > partitions ? partitions * lagThreshold : lag;
}

/** The HPA's replica count for an external metric with an AverageValue target (before behaviour and bounds). */
export function hpaRawDesired(
  metric: number,
  target: number,
  current: number,
  tolerance = HPA_TOLERANCE,
): number {
  if (current <= 0) return Math.ceil(metric / target);
  const ratio = metric / (target * current);
  if (Math.abs(1 - ratio) <= tolerance) return current;
  return Math.ceil(metric / target);
}

export interface Decision {
  /** Seconds, on the caller's clock. */
  t: number;
  lag: number;
  current: number;
  /** ceil(lag / threshold) after KEDA's cap and the HPA tolerance. */
  raw: number;
  /** After the stabilization windows. */
  stabilized: number;
  /** After the rate policies and min/max: what the supervisor applies. */
  desired: number;
  /** Why desired differs from raw, when it does. */
  limitedBy?: "stabilization" | "scale-up policy" | "scale-down policy" | "min" | "max";
}

interface Timed {
  t: number;
  n: number;
}

/** The HPA's decision loop for one target, with the behaviour's memory (recommendations, scale events). */
export class Hpa {
  readonly cfg: ScalerConfig;
  readonly #recommendations: Timed[] = [];
  /** Replica changes: positive n added, negative removed. */
  readonly #events: Timed[] = [];

  constructor(cfg: ScalerConfig) {
    if (!(cfg.lagThreshold > 0)) throw new Error("lagThreshold must be positive");
    if (cfg.minReplicas < 1 || cfg.minReplicas > cfg.maxReplicas)
      throw new Error("need 1 <= min <= max replicas");
    this.cfg = cfg;
  }

  get max(): number {
    return Math.min(this.cfg.maxReplicas, this.cfg.partitions);
  }

  /** One sync: the replica count to apply now. Call record() when a change is applied. */
  decide(t: number, current: number, totalLag: number): Decision {
    const { cfg } = this;
    const metric = kedaLagMetric(totalLag, cfg.lagThreshold, cfg.partitions);
    const raw = hpaRawDesired(metric, cfg.lagThreshold, current, cfg.tolerance);
    const stabilized = this.#stabilize(t, raw, current);
    let desired = stabilized;
    let limitedBy: Decision["limitedBy"] = stabilized !== raw ? "stabilization" : undefined;
    if (desired > current) {
      const limit = Math.max(current, this.#scaleLimit(t, current, cfg.scaleUp, "up"));
      if (desired > Math.min(limit, this.max)) {
        limitedBy = limit < this.max ? "scale-up policy" : "max";
        desired = Math.min(limit, this.max);
      }
    } else if (desired < current) {
      const limit = Math.min(current, this.#scaleLimit(t, current, cfg.scaleDown, "down"));
      if (desired < Math.max(limit, cfg.minReplicas)) {
        limitedBy = limit > cfg.minReplicas ? "scale-down policy" : "min";
        desired = Math.max(limit, cfg.minReplicas);
      }
    }
    if (desired > this.max) [desired, limitedBy] = [this.max, "max"];
    if (desired < cfg.minReplicas) [desired, limitedBy] = [cfg.minReplicas, "min"];
    return { t, lag: totalLag, current, raw, stabilized, desired, ...(limitedBy ? { limitedBy } : {}) };
  }

  /** A scale event, as the HPA stores it for the rate policies. */
  record(t: number, from: number, to: number): void {
    if (to !== from) this.#events.push({ t, n: to - from });
    const keep = Math.max(
      0,
      ...[...this.cfg.scaleUp.policies, ...this.cfg.scaleDown.policies].map((p) => p.periodSeconds),
    );
    while (this.#events.length > 0 && this.#events[0]!.t <= t - keep) this.#events.shift();
  }

  /**
   * Scale-up takes the lowest recommendation of its window, scale-down the highest of its:
   * with the chart's 0 s up-window a rise acts at once, and a fall waits until every
   * recommendation of the last scaleDownStabilizationSeconds agrees.
   */
  #stabilize(t: number, raw: number, current: number): number {
    const upCutoff = t - this.cfg.scaleUp.stabilizationWindowSeconds;
    const downCutoff = t - this.cfg.scaleDown.stabilizationWindowSeconds;
    let up = raw;
    let down = raw;
    for (const r of this.#recommendations) {
      if (r.t > upCutoff) up = Math.min(up, r.n);
      if (r.t > downCutoff) down = Math.max(down, r.n);
    }
    const oldest = Math.min(upCutoff, downCutoff);
    while (this.#recommendations.length > 0 && this.#recommendations[0]!.t <= oldest)
      this.#recommendations.shift();
    this.#recommendations.push({ t, n: raw });
    let out = current;
    if (out < up) out = up;
    if (out > down) out = down;
    return out;
  }

  /** Most (up) or fewest (down) replicas the policies allow, counted from the start of each policy's period. */
  #scaleLimit(t: number, current: number, rules: ScalingRules, dir: "up" | "down"): number {
    let result = dir === "up" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
    for (const p of rules.policies) {
      let added = 0;
      let removed = 0;
      for (const e of this.#events) {
        if (e.t <= t - p.periodSeconds) continue;
        if (e.n > 0) added += e.n;
        else removed -= e.n;
      }
      const start = current - added + removed;
      let proposed: number;
      if (dir === "up") {
        proposed = p.type === "Pods" ? start + p.value : Math.ceil(start * (1 + p.value / 100));
        result = Math.max(result, proposed);
      } else {
        proposed = p.type === "Pods" ? start - p.value : Math.trunc(start * (1 - p.value / 100));
        result = Math.min(result, proposed);
      }
    }
    return Number.isFinite(result) ? result : current;
  }
}

// ----------------------------------------------------------------------------- driving replicas

export interface ScaleEvent {
  t: number;
  from: number;
  to: number;
  lag: number;
  raw: number;
  limitedBy?: Decision["limitedBy"];
}

export interface SupervisorDeps<R> {
  /** The group's total lag from the brokers (what KEDA reads). */
  lag(): Promise<number>;
  /** Starts replica number `index`; may resolve only when it is ready (the count includes it at once). */
  start(index: number): Promise<R>;
  /** Graceful stop (SIGTERM: drain, commit, leave the group). */
  stop(replica: R): Promise<void>;
  /** Seconds on the run's clock. */
  now(): number;
  log(message: string): void;
}

interface Slot<R> {
  index: number;
  started: number;
  replica: Promise<R>;
  /** Set once the replica is ready. */
  ready?: R;
}

/**
 * Applies Hpa decisions to real replicas every pollS seconds. A replica counts from the
 * moment it is started, ready or not (a pod counts once created); scale-down stops the
 * newest first, as a ReplicaSet deletes the youngest pod, and does not wait for it to exit.
 */
export class Supervisor<R> {
  readonly hpa: Hpa;
  readonly events: ScaleEvent[] = [];
  readonly decisions: Decision[] = [];
  readonly #deps: SupervisorDeps<R>;
  readonly #slots: Slot<R>[] = [];
  readonly #stopping = new Set<Promise<void>>();
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> = Promise.resolve();
  #error: unknown;

  constructor(hpa: Hpa, deps: SupervisorDeps<R>) {
    this.hpa = hpa;
    this.#deps = deps;
  }

  get replicas(): number {
    return this.#slots.length;
  }

  /** Ready replicas' handles (those still starting are left out). */
  async live(): Promise<R[]> {
    return this.#slots.flatMap((s) => (s.ready === undefined ? [] : [s.ready]));
  }

  /** Starts the minimum and waits until they are ready. */
  async startInitial(): Promise<void> {
    this.#grow(this.hpa.cfg.minReplicas);
    await Promise.all(this.#slots.map((s) => s.replica));
  }

  /** Polls every pollS seconds until stop(); a failed start or stop ends the loop and is thrown by stop(). */
  run(pollS: number): void {
    const tick = () => {
      this.#busy = this.poll()
        .catch((err) => {
          this.#error = err;
        })
        .then(() => {
          if (this.#timer !== undefined && this.#error === undefined)
            this.#timer = setTimeout(tick, pollS * 1000);
        });
    };
    this.#timer = setTimeout(tick, pollS * 1000);
  }

  async poll(): Promise<Decision> {
    const lag = await this.#deps.lag();
    const t = this.#deps.now();
    const current = this.#slots.length;
    const d = this.hpa.decide(t, current, lag);
    this.decisions.push(d);
    if (d.desired !== current) {
      this.hpa.record(t, current, d.desired);
      this.events.push({
        t,
        from: current,
        to: d.desired,
        lag,
        raw: d.raw,
        ...(d.limitedBy ? { limitedBy: d.limitedBy } : {}),
      });
      this.#deps.log(
        `scale ${current} → ${d.desired} replicas at lag ${lag.toLocaleString("en-US")} (ceil(lag/threshold) ${d.raw}${d.limitedBy ? `, limited by ${d.limitedBy}` : ""})`,
      );
      if (d.desired > current) this.#grow(d.desired - current);
      else this.#shrink(current - d.desired);
    } else {
      this.hpa.record(t, current, current);
    }
    return d;
  }

  /** Stops polling (scaling ends); replicas keep running. Throws what failed in the loop. */
  async halt(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#busy;
    if (this.#error !== undefined) throw this.#error;
  }

  /** Stops every replica gracefully, and waits for those scale-down already stopped. */
  async stopAll(): Promise<void> {
    await this.halt().catch(() => {});
    this.#shrink(this.#slots.length);
    await Promise.all(this.#stopping);
  }

  #grow(n: number): void {
    for (let i = 0; i < n; i++) {
      const index = this.#next++;
      const slot: Slot<R> = { index, started: this.#deps.now(), replica: this.#deps.start(index) };
      // A failed start ends the loop (halt() throws it); it must not be an unhandled rejection.
      slot.replica.then(
        (r) => {
          slot.ready = r;
        },
        (err) => {
          this.#error ??= err;
        },
      );
      this.#slots.push(slot);
    }
  }

  #shrink(n: number): void {
    for (let i = 0; i < n; i++) {
      const slot = this.#slots.pop();
      if (!slot) return;
      const p = slot.replica.then(
        (r) => this.#deps.stop(r),
        () => {},
      );
      const done = p.finally(() => this.#stopping.delete(done));
      this.#stopping.add(done);
    }
  }
}
