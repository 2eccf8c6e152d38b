/**
 * Recognises "node_modules is incomplete" (an interrupted `npm ci`, a package removed by
 * hand, an image built with the wrong flags). bin/paystream already refuses to start without
 * node_modules; this covers the half-installed case, where the first import of a missing
 * package would otherwise print a Node stack trace that does not say what to do.
 *
 * Imports nothing: it must work when the packages it is about are the ones missing.
 */

const NODE_MODULES = "/node_modules/";

/**
 * The missing package or file under node_modules, when `err` is a failed import of one;
 * undefined otherwise. A missing file of our own (a relative or absolute path outside
 * node_modules) is a bug, not an installation problem: its stack trace is what is needed.
 */
export function missingDependency(err: unknown, depth = 0): string | undefined {
  if (!(err instanceof Error)) return undefined;
  // A failed lazy import may arrive wrapped (a PaystreamError whose cause is the import error).
  const inCause = () => (depth < 5 ? missingDependency(err.cause, depth + 1) : undefined);
  const code = (err as NodeJS.ErrnoException).code;
  // ERR_MODULE_NOT_FOUND from `import`, MODULE_NOT_FOUND from a package's own `require`.
  if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") return inCause();
  const name = /Cannot find (?:package|module) '([^']+)'/.exec(err.message)?.[1];
  if (name === undefined) return inCause();
  const under = name.lastIndexOf(NODE_MODULES);
  if (under >= 0) return name.slice(under + NODE_MODULES.length);
  const isPath = name.startsWith(".") || name.startsWith("/") || name.startsWith("file:");
  return isPath ? undefined : name;
}
