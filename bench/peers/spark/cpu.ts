/**
 * Whole-box CPU accounting for the Spark peer benchmark: every process on the machine is
 * sampled from /proc every 250 ms (utime + stime, parent, name) together with the
 * machine's busy ticks, so that any window afterwards can be split into the engine (a
 * process tree: the processor, or Spark's Python driver and its JVM), the broker, Redis,
 * PostgreSQL (every `postgres` process) and everything else, and the machine's total.
 *
 * A process born inside a window counts from zero; one that exits inside it counts up to
 * its last sample (at most 250 ms of its CPU is lost).
 */
import { readdirSync, readFileSync } from "node:fs";
import { clockTicks, machineCpu } from "../../lib/proc.ts";

interface ProcInfo {
  ppid: number;
  comm: string;
  /** utime + stime in clock ticks. */
  ticks: number;
}

interface Sample {
  /** Epoch ms, the clock Spark's progress events use too. */
  t: number;
  busy: number;
  total: number;
  procs: Map<number, ProcInfo>;
}

function readProcs(): Map<number, ProcInfo> {
  const out = new Map<number, ProcInfo>();
  for (const entry of readdirSync("/proc")) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    let s: string;
    try {
      s = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    const close = s.lastIndexOf(")");
    const f = s.slice(close + 2).split(" ");
    out.set(Number(entry), {
      ppid: Number(f[1]),
      comm: s.slice(s.indexOf("(") + 1, close),
      ticks: Number(f[11]) + Number(f[12]),
    });
  }
  return out;
}

export interface Groups {
  /** Root of the engine's process tree (its descendants count as the engine). */
  engine?: number;
  broker?: number;
  redis?: number;
}

export interface CpuWindow {
  /** Seconds between the two samples that bracket the window. */
  elapsed: number;
  /** CPU seconds per group: engine, broker, redis, postgres, other (everything else). */
  cpu: Record<"engine" | "broker" | "redis" | "postgres" | "other", number>;
  /** CPU seconds of the whole machine (busy ticks of every CPU: all processes and the kernel). */
  machine: number;
  /** Share of all CPUs busy over the window, 0..1. */
  machineBusy: number;
}

export class BoxSampler {
  readonly #samples: Sample[] = [];
  #timer: NodeJS.Timeout | undefined;

  start(intervalMs = 250): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  sample(): void {
    const m = machineCpu();
    this.#samples.push({ t: Date.now(), busy: m.busy, total: m.total, procs: readProcs() });
    // Keep ~20 minutes: enough for one run, bounded if the sampler is left on.
    if (this.#samples.length > 5000) this.#samples.splice(0, this.#samples.length - 5000);
  }

  /** CPU use between epoch-ms t0 and t1, bracketed by the nearest samples outside them. */
  window(t0: number, t1: number, groups: Groups): CpuWindow {
    this.sample();
    const s = this.#samples;
    let i0 = 0;
    for (let i = 0; i < s.length; i++) if (s[i]!.t <= t0) i0 = i;
    let i1 = s.length - 1;
    for (let i = s.length - 1; i >= i0; i--) if (s[i]!.t >= t1) i1 = i;
    const a = s[i0]!;
    const b = s[i1]!;
    const first = new Map<number, number>();
    const last = new Map<number, { ticks: number; comm: string; ppid: number }>();
    for (const [pid, p] of a.procs) first.set(pid, p.ticks);
    for (let i = i0; i <= i1; i++) {
      for (const [pid, p] of s[i]!.procs) {
        if (!first.has(pid)) first.set(pid, 0);
        last.set(pid, p);
      }
    }
    // Engine tree: descendants of the root, from the parent links seen in the window.
    const tree = new Set<number>();
    if (groups.engine !== undefined) {
      tree.add(groups.engine);
      let grew = true;
      while (grew) {
        grew = false;
        for (const [pid, p] of last) {
          if (!tree.has(pid) && tree.has(p.ppid)) {
            tree.add(pid);
            grew = true;
          }
        }
      }
    }
    const hzv = clockTicks();
    const cpu = { engine: 0, broker: 0, redis: 0, postgres: 0, other: 0 };
    for (const [pid, p] of last) {
      const d = (p.ticks - (first.get(pid) ?? 0)) / hzv;
      if (d <= 0) continue;
      if (tree.has(pid)) cpu.engine += d;
      else if (pid === groups.broker) cpu.broker += d;
      else if (pid === groups.redis) cpu.redis += d;
      else if (p.comm === "postgres" || p.comm === "postmaster") cpu.postgres += d;
      else cpu.other += d;
    }
    const ticks = b.total - a.total;
    return {
      elapsed: (b.t - a.t) / 1000,
      cpu,
      machine: (b.busy - a.busy) / hzv,
      machineBusy: ticks > 0 ? (b.busy - a.busy) / ticks : 0,
    };
  }
}
