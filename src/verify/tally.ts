/**
 * Small helpers every tally of `paystream verify` uses: counting into maps, naming a source
 * record, and keeping a bounded list of examples (a report names a few ids behind a failing
 * check, never millions).
 */

/** Ids listed per failing check, by default. */
export const DEFAULT_MAX_EXAMPLES = 20;

export function bump<K>(m: Map<K, number>, k: K, by = 1): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

/** "partition:offset": how an input record is named across the input and the DLQ. */
export function sourceKey(partition: number | string, offset: bigint | string): string {
  return `${partition}:${offset}`;
}

export function pushExample<T>(list: T[], item: T, max: number): void {
  if (list.length < max) list.push(item);
}

export function isNonEmptyString(v: unknown): v is string {
  return typeof v === "string" && v.length > 0;
}

/** JSON.parse that answers undefined instead of throwing: topics may hold anything. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
