/**
 * Reads a V8 .cpuprofile (node --cpu-prof) into self time per function and per area
 * (a src/ file, a dependency, GC, ...), optionally only the samples of one time window.
 * Profile timestamps are microseconds of the monotonic clock process.hrtime() also reads,
 * so the orchestrator can pass the window it measured.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./proc.ts";
import type { BenchContext } from "./types.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled time in the window, idle excluded. */
  busyMs: number;
  idleMs: number;
  windowed: boolean;
  top: { fn: string; where: string; selfMs: number; pct: number }[];
  areas: { area: string; selfMs: number; pct: number }[];
}

function area(fn: string, url: string): string {
  if (url === "") return fn === "(garbage collector)" || fn === "(program)" ? fn : "(native)";
  const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return nm[1]!;
  const src = /\/(src\/.+)$/.exec(url);
  if (src) return src[1]!;
  if (url.startsWith("node:")) return "node: (runtime)";
  return url.replace(/^.*\//, "");
}

function where(url: string, line: number): string {
  if (url === "") return "";
  const short = url.replace(/^file:\/\//, "").replace(/^.*\/(src|node_modules)\//, "$1/");
  return `${short}:${line + 1}`;
}

export function summarizeProfile(path: string, windowUs?: [number, number], top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  let kept = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one.
    const dur = p.timeDeltas[i + 1] ?? 0;
    if (windowUs && (t < windowUs[0] || t > windowUs[1])) continue;
    kept++;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dur);
  }
  // A window that matches nothing means the clocks disagree: fall back to the whole profile.
  if (windowUs && kept === 0) return summarizeProfile(path, undefined, top);

  const fns = new Map<string, { fn: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === "(idle)") {
      idle += us;
      continue;
    }
    busy += us;
    // No name and no script: native code (Buffer's UTF-8 copy, for one) called from JavaScript.
    const fn = functionName || (url ? "(anonymous)" : "(native code)");
    const key = `${fn}@${url}:${lineNumber}`;
    const e = fns.get(key) ?? { fn, where: where(url, lineNumber), us: 0 };
    e.us += us;
    fns.set(key, e);
    const a = area(fn, url);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((1000 * us) / busy) / 10;
  return {
    busyMs: Math.round(busy / 1000),
    idleMs: Math.round(idle / 1000),
    windowed: windowUs !== undefined,
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ fn: e.fn, where: e.where, selfMs: Math.round(e.us / 1000), pct: pct(e.us) })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([a, us]) => ({ area: a, selfMs: Math.round(us / 1000), pct: pct(us) })),
  };
}

/**
 * Summarises the .cpuprofile a child wrote into dir (restricted to windowUs), prints its top,
 * and moves the file to bench/results/tmp/<name>.cpuprofile (git-ignored) for DevTools.
 */
export function keepProfile(
  ctx: BenchContext,
  dir: string,
  name: string,
  windowUs: [number, number],
): ProfileSummary | undefined {
  let file: string | undefined;
  try {
    file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  } catch {
    return undefined;
  }
  if (!file) return undefined;
  const profile = summarizeProfile(join(dir, file), windowUs);
  const keep = join(ROOT, "bench/results/tmp");
  mkdirSync(keep, { recursive: true });
  const dest = join(keep, `${name}.cpuprofile`);
  renameSync(join(dir, file), dest);
  ctx.log(`CPU profile: ${dest} (${profile.busyMs} ms busy in the window)`);
  for (const a of profile.areas.slice(0, 8)) ctx.log(`  ${String(a.pct).padStart(5)}%  ${a.area}`);
  ctx.log("  top functions by self time:");
  for (const f of profile.top.slice(0, 12)) ctx.log(`  ${String(f.pct).padStart(5)}%  ${f.fn}  ${f.where}`);
  return profile;
}
