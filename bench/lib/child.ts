/** Entry point of runIsolated(): node child.ts <module> <export> <args-json> <out-file>. */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [modulePath, exportName, argsJson, outFile] = process.argv.slice(2);
if (!modulePath || !exportName || argsJson === undefined || !outFile) {
  process.stderr.write("usage: child.ts <module> <export> <args-json> <out-file>\n");
  process.exit(2);
}
const mod = (await import(pathToFileURL(resolve(modulePath)).href)) as Record<string, unknown>;
const fn = mod[exportName];
if (typeof fn !== "function") throw new Error(`${modulePath} exports no function ${exportName}`);
const result = await (fn as (a: unknown) => unknown)(JSON.parse(argsJson));
writeFileSync(outFile, JSON.stringify(result));
// Pools and clients a benchmark opened must not keep the process (and the orchestrator) waiting.
process.exit(0);
