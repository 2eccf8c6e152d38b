/**
 * job.py as a child process: started in its own process group (Python driver + its JVM),
 * its progress lines ("PSPARK {...}" on stdout) parsed into events, stopped with SIGTERM to
 * the group and SIGKILL after a grace period, also on Ctrl-C or an error (deferCleanup).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { deferCleanup, tail } from "../../lib/proc.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
export const SETUP = join(HERE, "setup.sh");
const JOB = join(HERE, "job.py");

export interface StateOp {
  op: string;
  rows: number;
  updated: number;
  removed: number;
  dropped: number;
  memBytes: number;
}

export interface Progress {
  ev: "progress";
  query: string;
  batch: number;
  /** Trigger start, epoch ms. */
  start: number;
  /** Batch duration, ms. */
  ms: number;
  rows: number;
  durations: Record<string, number>;
  watermark?: string;
  /** Per topic: sum of the end offsets over its partitions after this batch. */
  end: Record<string, number>;
  state: StateOp[];
  /** When the listener emitted it (the batch's end), epoch ms. */
  t: number;
}

export interface SparkSettings {
  driverMemory: string;
  shufflePartitions: number;
  maxOffsetsPerTrigger: number;
  trigger: string;
  distinctRules: boolean;
  extra?: string[];
}

/** The venv's python and the connector jars, installing them first if needed (setup.sh is idempotent). */
export function sparkInstall(quiet: boolean): { python: string; jars: string[] } {
  execFileSync("bash", [SETUP], { stdio: quiet ? "ignore" : ["ignore", "inherit", "inherit"] });
  const out = execFileSync("bash", [SETUP, "--print"], { encoding: "utf8" });
  const python = /^python=(.+)$/m.exec(out)?.[1];
  const jars = [...out.matchAll(/^jar=(.+)$/gm)].map((m) => m[1]!);
  if (!python || jars.length === 0) throw new Error(`setup.sh --print gave no python or jars:\n${out}`);
  return { python, jars };
}

export class SparkJob {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  readonly progress: Progress[] = [];
  readonly events: Record<string, unknown>[] = [];
  startedAt: number | undefined;
  sparkVersion: string | undefined;
  error: string | undefined;
  #exited = false;
  readonly #exit: Promise<void>;
  readonly #waiters = new Set<() => void>();
  readonly #unregister: () => void;

  constructor(
    install: { python: string; jars: string[] },
    opts: {
      name: string;
      runDir: string;
      bootstrap: string;
      topic: string;
      alertsTopic: string;
      startingOffsets: "earliest" | "latest";
      settings: SparkSettings;
    },
  ) {
    this.logFile = join(opts.runDir, `${opts.name}.log`);
    const s = opts.settings;
    const args = [
      JOB,
      "--bootstrap",
      opts.bootstrap,
      "--topic",
      opts.topic,
      "--alerts-topic",
      opts.alertsTopic,
      "--rows-dir",
      join(opts.runDir, `${opts.name}-rows`),
      "--checkpoint-dir",
      join(opts.runDir, `${opts.name}-checkpoints`),
      "--jars",
      install.jars.join(","),
      "--driver-memory",
      s.driverMemory,
      "--shuffle-partitions",
      String(s.shufflePartitions),
      "--max-offsets-per-trigger",
      String(s.maxOffsetsPerTrigger),
      "--trigger",
      s.trigger,
      "--starting-offsets",
      opts.startingOffsets,
      ...(s.distinctRules ? ["--distinct-rules"] : []),
      ...(s.extra ?? []),
    ];
    const err = openSync(this.logFile, "a");
    this.proc = spawn(install.python, args, {
      detached: true,
      stdio: ["ignore", "pipe", err],
      env: {
        ...process.env,
        SPARK_PEER_SALT: randomBytes(24).toString("hex"),
        // Spark's scratch space (shuffle files, RocksDB working copies) inside the run directory.
        SPARK_LOCAL_DIRS: join(opts.runDir, `${opts.name}-local`),
        PYTHONUNBUFFERED: "1",
      },
    });
    closeSync(err);
    if (this.proc.pid === undefined) throw new Error("could not start job.py");
    this.pid = this.proc.pid;
    this.#exit = new Promise((resolve) => {
      this.proc.once("exit", () => {
        this.#exited = true;
        this.#wake();
        resolve();
      });
    });
    const kill = () => {
      try {
        process.kill(-this.pid, "SIGKILL");
      } catch {
        // gone
      }
    };
    process.once("exit", kill);
    const unregisterCleanup = deferCleanup(() => this.stop(5000));
    this.#unregister = () => {
      process.removeListener("exit", kill);
      unregisterCleanup();
    };
    const rl = createInterface({ input: this.proc.stdout! });
    rl.on("line", (line) => {
      if (!line.startsWith("PSPARK ")) return;
      let e: Record<string, unknown>;
      try {
        e = JSON.parse(line.slice(7)) as Record<string, unknown>;
      } catch {
        return;
      }
      if (e.ev === "progress") this.progress.push(e as unknown as Progress);
      else {
        this.events.push(e);
        if (e.ev === "started") {
          this.startedAt = Number(e.t);
          this.sparkVersion = String(e.spark);
        }
        if (e.ev === "failed" || (e.ev === "terminated" && e.error)) this.error = String(e.error);
      }
      this.#wake();
    });
  }

  get done(): boolean {
    return this.#exited;
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /** Resolves when pred() holds (checked on every event), rejects on exit, error or timeout. */
  async until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (pred()) return;
      if (this.error) throw new Error(`Spark job failed while waiting for ${what}: ${this.error}`);
      if (this.#exited) {
        throw new Error(`Spark job exited while waiting for ${what}:\n${tail(this.logFile, 40)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Spark job: no ${what} within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 1000));
        this.#waiters.add(done);
      });
    }
  }

  waitStarted(timeoutMs = 180_000): Promise<void> {
    return this.until(() => this.startedAt !== undefined, timeoutMs, "start");
  }

  /** The latest end offset (sum over partitions) each query has committed for `topic`. */
  consumed(topic: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.progress) out[p.query] = Math.max(out[p.query] ?? 0, p.end[topic] ?? 0);
    return out;
  }

  /** Waits until every query has processed `total` records of `topic`; returns when the last one finished (epoch ms). */
  async waitConsumed(topic: string, total: number, queries: string[], timeoutMs: number): Promise<number> {
    const reached = () => queries.every((q) => (this.consumed(topic)[q] ?? 0) >= total);
    await this.until(reached, timeoutMs, `${total.toLocaleString("en-US")} records consumed by ${queries}`);
    let t = 0;
    for (const q of queries) {
      const first = this.progress.find((p) => p.query === q && (p.end[topic] ?? 0) >= total);
      t = Math.max(t, first?.t ?? 0);
    }
    return t;
  }

  async stop(graceMs = 30_000): Promise<void> {
    if (!this.#exited) {
      try {
        process.kill(-this.pid, "SIGTERM");
      } catch {
        // gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-this.pid, "SIGKILL");
        } catch {
          // gone
        }
      }, graceMs);
      await this.#exit;
      clearTimeout(timer);
    }
    this.#unregister();
  }
}
