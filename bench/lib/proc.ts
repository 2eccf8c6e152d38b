/**
 * Child processes of the benchmarks, and their CPU accounting.
 *
 * Every child is started in its own process group (detached) and stopped by signalling the
 * group, so anything it spawned goes too. Children are registered from spawn to exit: the
 * orchestrator's exit, SIGINT, SIGTERM and SIGHUP handlers stop whatever is still running
 * and run the registered cleanups (topics, databases), so an error or a Ctrl-C never leaves
 * a collector producing into the broker.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  logFile: string | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly done: boolean;
}

const live = new Set<Child>();
const cleanups = new Set<() => Promise<void>>();

/** Environment for a child: ours minus PAYSTREAM_* (a stray variable must not change what is measured). */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PAYSTREAM_")) env[k] = v;
  return { ...env, ...extra };
}

export function spawnNode(
  name: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; logFile?: string; nodeFlags?: string[] } = {},
): Child {
  const out = opts.logFile === undefined ? "inherit" : openSync(opts.logFile, "a");
  const proc = spawn(process.execPath, [...(opts.nodeFlags ?? []), ...args], {
    cwd: ROOT,
    env: opts.env ?? childEnv(),
    detached: true,
    stdio: ["ignore", out, out],
  });
  if (typeof out === "number") closeSync(out);
  if (proc.pid === undefined) throw new Error(`could not start ${name}`);
  let done = false;
  const child: Child = {
    name,
    pid: proc.pid,
    proc,
    logFile: opts.logFile,
    exited: new Promise((resolve) => {
      proc.once("exit", (code, signal) => {
        done = true;
        live.delete(child);
        resolve({ code, signal });
      });
    }),
    get done() {
      return done;
    },
  };
  live.add(child);
  return child;
}

function signalGroup(child: Child, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** SIGTERM (graceful: drain, commit, print totals), then SIGKILL after graceMs. */
export async function stopChild(child: Child, graceMs = 20_000): Promise<{ code: number | null }> {
  if (!child.done) {
    signalGroup(child, "SIGTERM");
    const timer = setTimeout(() => signalGroup(child, "SIGKILL"), graceMs);
    try {
      return await child.exited;
    } finally {
      clearTimeout(timer);
    }
  }
  return child.exited;
}

/** Registers an async cleanup to run on an abnormal exit; returns the unregister function. */
export function deferCleanup(fn: () => Promise<void>): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

let installed = false;
export function installCleanupHandlers(): void {
  if (installed) return;
  installed = true;
  // Last resort: nothing may outlive the orchestrator.
  process.on("exit", () => {
    for (const c of live) signalGroup(c, "SIGKILL");
  });
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping ${live.size} child process(es) and cleaning up\n`);
    void (async () => {
      await Promise.all([...live].map((c) => stopChild(c, 3000)));
      const all = [...cleanups].map((fn) => fn().catch(() => {}));
      await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, 10_000))]);
      process.exit(130);
    })();
  };
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(s, onSignal);
}

// ----------------------------------------------------------------------------- CPU accounting

let ticks: number | undefined;
/** USER_HZ: /proc reports CPU time in these ticks (100 on every Linux in practice). */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

function statFields(path: string): string[] | undefined {
  try {
    const s = readFileSync(path, "utf8");
    // comm may contain spaces and parentheses: the fields start after the last ')'.
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** user + system CPU seconds of a process (all its threads), or undefined once it is gone. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  const f = statFields(`/proc/${pid}/stat`);
  if (!f) return undefined;
  // Fields 14 and 15 of stat(5); f[0] is field 3.
  return (Number(f[11]) + Number(f[12])) / clockTicks();
}

/**
 * CPU seconds per thread name. The main thread is reported as "main" (tid = pid): for Node
 * that is the JavaScript thread, so its share says whether the event loop is the limit;
 * native threads (DuckDB, libuv pool, V8 GC helpers) show under their own names.
 */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const f = statFields(`/proc/${pid}/task/${tid}/stat`);
    if (!f) continue;
    let name = "main";
    if (Number(tid) !== pid) {
      try {
        name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim() || "?";
      } catch {
        continue;
      }
    }
    out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / clockTicks());
  }
  return out;
}

export function diffThreads(a: Map<string, number>, b: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0);
    if (d > 0.005) out[k] = Math.round(d * 100) / 100;
  }
  return out;
}

/** Machine-wide CPU ticks from /proc/stat: busy excludes idle and iowait. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Share of all CPUs busy between two machineCpu() samples, 0..1. */
export function busyShare(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  const t = b.total - a.total;
  return t > 0 ? (b.busy - a.busy) / t : 0;
}

/** CPU of several processes sampled together, for per-window accounting. */
export class CpuMeter {
  readonly #pids: Record<string, number | undefined>;
  #start: Record<string, number | undefined> = {};
  #machine = machineCpu();
  #t = performance.now();

  constructor(pids: Record<string, number | undefined>) {
    this.#pids = pids;
    this.reset();
  }

  reset(): void {
    this.#start = Object.fromEntries(Object.entries(this.#pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
    this.#machine = machineCpu();
    this.#t = performance.now();
  }

  /** CPU seconds per process since reset, elapsed seconds, and the machine's busy share. */
  read(): { cpu: Record<string, number | undefined>; elapsed: number; machineBusy: number } {
    const cpu: Record<string, number | undefined> = {};
    for (const [k, pid] of Object.entries(this.#pids)) {
      const a = this.#start[k];
      const b = cpuSeconds(pid);
      cpu[k] = a === undefined || b === undefined ? undefined : b - a;
    }
    return {
      cpu,
      elapsed: (performance.now() - this.#t) / 1000,
      machineBusy: busyShare(this.#machine, machineCpu()),
    };
  }
}

// ----------------------------------------------------------------------------- ports, HTTP, logs

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

const handedOut = new Set<number>();
/** A free port in [lo, hi], starting at a random point so concurrent runs rarely collide. */
export async function freePort(lo: number, hi: number): Promise<number> {
  const n = hi - lo + 1;
  const start = Math.floor(Math.random() * n);
  for (let i = 0; i < n; i++) {
    const port = lo + ((start + i) % n);
    if (handedOut.has(port)) continue;
    if (await portFree(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${lo}-${hi}`);
}

export function tail(file: string | undefined, lines = 20): string {
  if (!file) return "";
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** Polls url until it answers 2xx; fails early with the child's log tail if the child exits. */
export async function waitHttp(url: string, child: Child, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.done) {
      throw new Error(`${child.name} exited before ${url} answered:\n${tail(child.logFile, 30)}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${tail(child.logFile, 30)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return (await res.json()) as T;
}

export async function getText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return res.text();
}

export async function postJson<T>(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * Runs a benchmark's main and exits with its code once stdout is flushed (a crash is printed
 * and exits 1): what every runnable benchmark ends with.
 */
export function exitWithMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.stdout.write("", () => process.exit(code)),
    (err: unknown) => {
      process.stderr.write(`${name}: ${(err as Error).stack ?? String(err)}\n`);
      process.stdout.write("", () => process.exit(1));
    },
  );
}
