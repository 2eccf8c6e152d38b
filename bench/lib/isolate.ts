/**
 * Runs one exported benchmark function in a fresh Node process: in-process benchmarks then
 * start from a clean heap and cold JIT, never inherit the orchestrator's garbage, and can
 * get V8 flags (--expose-gc) of their own. The result comes back as JSON through a file,
 * so the function may print progress freely.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnNode } from "./proc.ts";

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

export async function runIsolated<T>(
  runDir: string,
  modulePath: string,
  exportName: string,
  args: unknown,
  nodeFlags: string[] = [],
): Promise<T> {
  const out = join(runDir, `isolated-${exportName}-${Date.now()}.json`);
  const child = spawnNode(exportName, [CHILD, modulePath, exportName, JSON.stringify(args), out], {
    nodeFlags,
  });
  const { code, signal } = await child.exited;
  if (code !== 0) throw new Error(`${exportName} (${modulePath}) failed: exit ${code ?? signal}`);
  return JSON.parse(readFileSync(out, "utf8")) as T;
}
