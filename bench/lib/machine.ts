/** What the numbers were measured on: they mean little without it. */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { ROOT } from "./proc.ts";
import { findKafka, postgresVersion, redisVersion } from "./services.ts";

export interface Machine {
  hostname: string;
  cpuModel: string;
  /** Logical CPUs the kernel shows (shared with the broker, Redis, PostgreSQL and other users). */
  cores: number;
  ramGiB: number;
  os: string;
  kernel: string;
  node: string;
  kafka: string;
  redis: string;
  postgres: string;
  duckdb: string;
  loadAverageAtStart: number[];
  git: { commit: string; dirty: string[]; codeHash: string };
}

function cpuInfo(): { model: string; count: number } {
  try {
    const text = readFileSync("/proc/cpuinfo", "utf8");
    const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim();
    const count = (text.match(/^processor\s*:/gm) ?? []).length;
    return { model: model ?? os.cpus()[0]?.model ?? "unknown", count: count || os.cpus().length };
  } catch {
    return { model: os.cpus()[0]?.model ?? "unknown", count: os.cpus().length };
  }
}

function osName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? os.type();
  } catch {
    return `${os.type()} ${os.release()}`;
  }
}

function packageVersion(name: string): string {
  try {
    return JSON.parse(readFileSync(`${ROOT}/node_modules/${name}/package.json`, "utf8")).version as string;
  } catch {
    return "unknown";
  }
}

/**
 * sha256 over src/, config/ and package-lock.json as they are on disk: two runs with the same
 * hash measured the same code, whatever was committed in between (others commit while we measure).
 */
function codeHash(): string {
  const h = createHash("sha256");
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else h.update(rel).update(readFileSync(join(ROOT, rel)));
    }
  };
  try {
    walk("src");
    walk("config");
    h.update(readFileSync(join(ROOT, "package-lock.json")));
  } catch {
    return "unknown";
  }
  return h.digest("hex").slice(0, 12);
}

function git(): { commit: string; dirty: string[]; codeHash: string } {
  const run = (args: string[]) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8" }).trimEnd();
  try {
    return {
      commit: run(["rev-parse", "--short", "HEAD"]),
      // Other work in progress changes what is measured: record which files differ from HEAD.
      dirty: run(["status", "--porcelain", "--untracked-files=no"])
        .split("\n")
        .filter(Boolean)
        .map((l) => l.slice(3)),
      codeHash: codeHash(),
    };
  } catch {
    return { commit: "unknown", dirty: [], codeHash: codeHash() };
  }
}

export async function describeMachine(redisUrl: string, postgresUrl: string): Promise<Machine> {
  const cpu = cpuInfo();
  return {
    hostname: os.hostname(),
    cpuModel: cpu.model,
    cores: cpu.count,
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: osName(),
    kernel: os.release(),
    node: process.version,
    kafka: findKafka().version ?? process.env.PAYSTREAM_KAFKA_VERSION ?? "unknown",
    redis: (await redisVersion(redisUrl)) ?? "unreachable",
    postgres: (await postgresVersion(postgresUrl)) ?? "unreachable",
    duckdb: `@duckdb/node-api ${packageVersion("@duckdb/node-api")}`,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    git: git(),
  };
}
