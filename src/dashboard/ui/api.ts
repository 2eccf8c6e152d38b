/// <reference lib="dom" />
/**
 * The pages' calls to the dashboard API, with the same credentials as the live page: the
 * tab's token as `Authorization: Bearer`, or the browser's own Basic login. A 401 is an
 * answer like any other, so each page can ask for the token where the user is.
 */
import { useEffect, useState } from "react";

export function authHeaders(token: string | null): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

export interface ApiAnswer<T> {
  status: number;
  /** The parsed JSON body (an empty object when there was none). */
  body: T;
}

export async function api<T>(
  method: "GET" | "POST",
  path: string,
  token: string | null,
  body?: unknown,
): Promise<ApiAnswer<T>> {
  const res = await fetch(path, {
    method,
    cache: "no-store",
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...authHeaders(token),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const parsed = (await res.json().catch(() => ({}))) as T;
  return { status: res.status, body: parsed };
}

/** The reason an API refusal gives: `errors` (one per line), `reason` or `error`. */
export function refusal(a: ApiAnswer<unknown>): string[] {
  const b = (a.body ?? {}) as { errors?: unknown; reason?: unknown; error?: unknown };
  if (Array.isArray(b.errors) && b.errors.length > 0) return b.errors.map(String);
  if (typeof b.reason === "string") return [`${a.status}: ${b.reason}`];
  if (typeof b.error === "string") return [`${a.status}: ${b.error}`];
  return [`${a.status}`];
}

/** The location hash as a route: "#/cases/abc" → ["cases", "abc"]; "" → []. */
function readRoute(): string[] {
  return window.location.hash
    .replace(/^#\/?/, "")
    .split("/")
    .filter(Boolean)
    .map((s) => decodeURIComponent(s));
}

export function useRoute(): string[] {
  const [route, setRoute] = useState<string[]>(readRoute);
  useEffect(() => {
    const on = () => setRoute(readRoute());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

const nf = new Intl.NumberFormat("en-US");
export const fmt = (n: number | null | undefined): string =>
  n === null || n === undefined ? "–" : nf.format(n);
export const pct = (n: number | null | undefined): string =>
  n === null || n === undefined ? "–" : `${(n * 100).toFixed(1)}%`;
/** "2026-12-02 11:53:35" from an ISO time (UTC, as the API gives it). */
export const when = (iso: string | undefined): string =>
  iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "–";
