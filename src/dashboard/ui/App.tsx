/// <reference lib="dom" />
/**
 * The dashboard: one snapshot per second over Server-Sent Events (`api/events`), rendered as
 * cards, and two working pages behind hash routes: `#/rules` (RulesPage.tsx) and `#/cases`
 * (CasesPage.tsx). The live page's only write is the collector rate form, which posts to
 * `api/collector/rate` and shows the collector's own reason when it refuses a value.
 *
 * Credentials: when the server asks (401), the UI asks for the dashboard's token, keeps it in
 * this tab's sessionStorage (gone when the tab closes; never in localStorage or a cookie) and
 * sends it as `Authorization: Bearer`. The event stream is read with fetch rather than
 * EventSource, which cannot send that header. With --basic-auth the browser asks for the login
 * itself and sends it on every request; in `paystream up` on loopback nothing is asked.
 */
import { type FormEvent, type ReactNode, useCallback, useEffect, useState } from "react";
import type { DashboardSnapshot, FeedAlert, HealthItem, HistoryPoint } from "../model.ts";
import { authHeaders, useRoute } from "./api.ts";
import { CasesPage } from "./CasesPage.tsx";
import { RulesPage } from "./RulesPage.tsx";

const nf = new Intl.NumberFormat("en-US");
const fmt = (n: number | null | undefined): string => (n === null || n === undefined ? "–" : nf.format(n));
const ms = (n: number | null): string =>
  n === null ? "–" : n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(1)} ms`;
const clock = (iso: string): string => (iso.length >= 19 ? iso.slice(11, 19) : iso);

const TOKEN_KEY = "paystream.dashboard.token";

function readToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: the token lives for this page only
  }
}

/** The dashboard token of this tab, kept in sessionStorage. */
function useToken(): [string | null, (t: string | null) => void] {
  const [token, setTokenState] = useState<string | null>(readToken);
  const setToken = (t: string | null) => {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage disabled: keep it in memory only
    }
    setTokenState(t);
  };
  return [token, setToken];
}

/** The `data:` of an `event: snapshot` frame, or undefined for other frames (retry, comments). */
function snapshotData(frame: string): string | undefined {
  let event = "message";
  const data: string[] = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return event === "snapshot" && data.length > 0 ? data.join("\n") : undefined;
}

/** What the server asked for on a 401: its token (Bearer), or only a browser login (Basic). */
type AuthNeeded = "token" | "login" | null;

function useSnapshot(token: string | null): {
  snap: DashboardSnapshot | null;
  live: boolean;
  needsAuth: AuthNeeded;
} {
  const [snap, setSnap] = useState<DashboardSnapshot | null>(null);
  const [live, setLive] = useState(false);
  const [needsAuth, setNeedsAuth] = useState<AuthNeeded>(null);
  useEffect(() => {
    const abort = new AbortController();
    let retry: ReturnType<typeof setTimeout> | undefined;
    const connect = async () => {
      try {
        const res = await fetch("api/events", {
          headers: authHeaders(token),
          cache: "no-store",
          signal: abort.signal,
        });
        if (res.status === 401) {
          // No retry: a new token (or a browser login) starts the next attempt.
          const challenge = res.headers.get("www-authenticate") ?? "";
          setNeedsAuth(/bearer/i.test(challenge) || !/basic/i.test(challenge) ? "token" : "login");
          setLive(false);
          return;
        }
        setNeedsAuth(null);
        if (!res.ok || !res.body) throw new Error(`status ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replaceAll("\r\n", "\n");
          for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
            const data = snapshotData(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (data !== undefined) {
              setSnap(JSON.parse(data) as DashboardSnapshot);
              setLive(true);
            }
          }
        }
      } catch {
        if (abort.signal.aborted) return;
      }
      if (abort.signal.aborted) return;
      // Closed, refused (503: too many streams) or unreachable: try again shortly.
      setLive(false);
      retry = setTimeout(() => void connect(), 2000);
    };
    void connect();
    return () => {
      abort.abort();
      clearTimeout(retry);
    };
  }, [token]);
  return { snap, live, needsAuth };
}

/** Asks for the dashboard token; used by the sign-in screen and the rate form after a 401. */
function TokenForm(props: { onToken: (t: string) => void; refused: boolean }) {
  const [value, setValue] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim() === "") return;
    props.onToken(value.trim());
    setValue("");
  };
  return (
    <form className="token-form" onSubmit={submit}>
      <input
        data-testid="token-input"
        type="password"
        autoComplete="off"
        aria-label="dashboard token"
        placeholder="dashboard token"
        value={value}
        onChange={(e) => setValue(e.target.value)}
      />
      <button type="submit" data-testid="token-submit" disabled={value.trim() === ""}>
        Use token
      </button>
      {props.refused ? (
        <span className="error" data-testid="token-refused">
          that token was refused
        </span>
      ) : null}
    </form>
  );
}

function Card(props: { title: string; className?: string; children: ReactNode }) {
  return (
    <section className={`card ${props.className ?? ""}`}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

function Stat(props: { label: string; value: string; testId?: string; unit?: string }) {
  return (
    <div className="stat">
      <div className="stat-value" data-testid={props.testId}>
        {props.value}
        {props.unit ? <span className="unit">{props.unit}</span> : null}
      </div>
      <div className="stat-label">{props.label}</div>
    </div>
  );
}

function Sparkline({ points }: { points: HistoryPoint[] }) {
  const w = 320;
  const h = 64;
  if (points.length < 2) return <svg className="spark" viewBox={`0 0 ${w} ${h}`} aria-hidden="true" />;
  const max = Math.max(1, ...points.map((p) => Math.max(p.in_per_s, p.out_per_s)));
  const line = (pick: (p: HistoryPoint) => number) =>
    points
      .map(
        (p, i) =>
          `${((i / (points.length - 1)) * w).toFixed(1)},${(h - 2 - (pick(p) / max) * (h - 4)).toFixed(1)}`,
      )
      .join(" ");
  return (
    <svg
      className="spark"
      viewBox={`0 0 ${w} ${h}`}
      preserveAspectRatio="none"
      aria-label="throughput history"
    >
      <polyline className="spark-in" points={line((p) => p.in_per_s)} />
      <polyline className="spark-out" points={line((p) => p.out_per_s)} />
    </svg>
  );
}

function Bars(props: { rows: { label: string; value: number; className?: string }[]; testId?: string }) {
  const max = Math.max(1, ...props.rows.map((r) => r.value));
  if (props.rows.length === 0) return <p className="muted">none yet</p>;
  return (
    <ul className="bars" data-testid={props.testId}>
      {props.rows.map((r) => (
        <li key={r.label}>
          <span className="bar-label">{r.label}</span>
          <span className="bar-track">
            <span className={`bar ${r.className ?? ""}`} style={{ width: `${(r.value / max) * 100}%` }} />
          </span>
          <span className="bar-value">{fmt(r.value)}</span>
        </li>
      ))}
    </ul>
  );
}

function RateControl(props: {
  snap: DashboardSnapshot;
  token: string | null;
  setToken: (t: string | null) => void;
}) {
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [askToken, setAskToken] = useState(false);
  const c = props.snap.collector;

  async function submit(e: FormEvent) {
    e.preventDefault();
    const raw = value.trim();
    // Numbers go as numbers; anything else is sent as typed, and the server says what is wrong.
    const body = { messages_per_second: /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw };
    setBusy(true);
    try {
      const res = await fetch("api/collector/rate", {
        method: "POST",
        headers: { "content-type": "application/json", ...authHeaders(props.token) },
        body: JSON.stringify(body),
      });
      const answer = (await res.json().catch(() => ({}))) as {
        messages_per_second?: number;
        previous?: number;
        reason?: string;
        error?: string;
      };
      setAskToken(res.status === 401);
      if (res.ok) {
        setMessage({
          ok: true,
          text: `target set to ${fmt(answer.messages_per_second)} tx/s (was ${fmt(answer.previous)})`,
        });
        setValue("");
      } else if (res.status === 401) {
        setMessage({ ok: false, text: "401: this needs the dashboard token" });
      } else {
        setMessage({ ok: false, text: `${res.status}: ${answer.reason ?? answer.error ?? res.statusText}` });
      }
    } catch (err) {
      setMessage({ ok: false, text: `request failed: ${(err as Error).message}` });
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card title="Collector rate">
      <div className="stats">
        <Stat label="target" value={fmt(c.target_rate)} unit="tx/s" testId="target-rate" />
        <Stat label="actual (10 s mean)" value={fmt(c.actual_rate)} unit="tx/s" testId="actual-rate" />
      </div>
      {c.reachable ? null : <p className="error">collector unreachable: {c.error}</p>}
      <form className="rate-form" onSubmit={(e) => void submit(e)}>
        <input
          data-testid="rate-input"
          aria-label="new target rate (transactions per second)"
          inputMode="numeric"
          placeholder={c.max_rate === null ? "tx/s" : `0 – ${fmt(c.max_rate)} tx/s`}
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
        <button type="submit" data-testid="rate-submit" disabled={busy || value.trim() === ""}>
          Set rate
        </button>
      </form>
      {message ? (
        <p className={message.ok ? "ok-text" : "error"} data-testid="rate-message" role="status">
          {message.text}
        </p>
      ) : null}
      {askToken ? (
        <TokenForm
          refused={props.token !== null}
          onToken={(t) => {
            props.setToken(t);
            setAskToken(false);
            setMessage(null);
          }}
        />
      ) : null}
    </Card>
  );
}

function figuresText(f: FeedAlert["figures"]): string {
  return Object.entries(f)
    .filter(([k]) => k !== "sumMinor" && k !== "windowMs")
    .map(([k, v]) => `${k} ${typeof v === "number" ? nf.format(v) : v}`)
    .join(" · ");
}

function AlertFeed({ alerts }: { alerts: FeedAlert[] }) {
  if (alerts.length === 0)
    return <p className="muted">no alerts yet — incidents take up to a minute to build up</p>;
  return (
    <table className="feed">
      <thead>
        <tr>
          <th>detected</th>
          <th>rule</th>
          <th>severity</th>
          <th>account</th>
          <th>card</th>
          <th>figures</th>
          <th className="num">detection</th>
        </tr>
      </thead>
      <tbody>
        {alerts.map((a) => (
          <tr key={a.alert_id} data-testid="alert-row">
            <td className="mono">{clock(a.detected_at)}</td>
            <td>{a.rule_id}</td>
            <td>
              <span className={`sev sev-${a.severity}`}>{a.severity}</span>
            </td>
            <td className="mono">{a.account_id}</td>
            <td className="mono" data-testid="alert-card">
              {a.card ?? "–"}
            </td>
            <td className="figures">{figuresText(a.figures)}</td>
            <td className="num mono">{ms(a.detection_latency_ms)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Health({ items }: { items: HealthItem[] }) {
  return (
    <ul className="health" data-testid="health">
      {items.map((h) => (
        <li key={h.name} className={h.ok ? "up" : "down"}>
          <span className="dot" aria-hidden="true" />
          <span className="health-name">{h.name}</span>
          <span className="health-detail">{h.detail}</span>
        </li>
      ))}
    </ul>
  );
}

function SignIn(props: {
  needs: "token" | "login";
  token: string | null;
  setToken: (t: string | null) => void;
}) {
  if (props.needs === "login") {
    return (
      <main className="loading">
        <h1>paystream</h1>
        <p className="muted">This dashboard needs a login: reload the page to sign in.</p>
      </main>
    );
  }
  return (
    <main className="loading">
      <h1>paystream</h1>
      <p className="muted">This dashboard needs its token (ask whoever runs it).</p>
      <TokenForm refused={props.token !== null} onToken={props.setToken} />
    </main>
  );
}

const PAGES = [
  { route: "", label: "Live" },
  { route: "rules", label: "Rules" },
  { route: "cases", label: "Cases" },
] as const;

export function App() {
  const [token, setToken] = useToken();
  const { snap, live, needsAuth } = useSnapshot(token);
  const route = useRoute();
  const page = route[0] === "rules" || route[0] === "cases" ? route[0] : "";
  // A page's API call answered 401: ask for the token where the user is.
  const [askToken, setAskToken] = useState(false);
  const onUnauthorized = useCallback(() => setAskToken(true), []);
  if (needsAuth) return <SignIn needs={needsAuth} token={token} setToken={setToken} />;
  if (!snap && page === "") {
    return (
      <main className="loading">
        <h1>paystream</h1>
        <p className="muted">connecting…</p>
      </main>
    );
  }
  return (
    <main>
      <header>
        <h1>paystream</h1>
        <nav className="nav" data-testid="nav">
          {PAGES.map((p) => (
            <a key={p.route} href={`#/${p.route}`} className={page === p.route ? "active" : ""}>
              {p.label}
            </a>
          ))}
        </nav>
        <span className={`live ${live ? "on" : "off"}`} data-testid="live">
          {live ? "live" : "reconnecting…"}
        </span>
        {snap ? <span className="muted">updated {new Date(snap.at).toLocaleTimeString("en-GB")}</span> : null}
        {token ? (
          <button
            type="button"
            className="link"
            data-testid="token-forget"
            onClick={() => setToken(null)}
            title="remove the dashboard token from this tab"
          >
            forget token
          </button>
        ) : null}
      </header>
      {askToken ? (
        <section className="card full">
          <p className="error">401: this needs the dashboard token</p>
          <TokenForm
            refused={token !== null}
            onToken={(t) => {
              setToken(t);
              setAskToken(false);
            }}
          />
        </section>
      ) : null}
      {page === "rules" ? (
        <RulesPage token={token} onUnauthorized={onUnauthorized} />
      ) : page === "cases" ? (
        <CasesPage
          token={token}
          onUnauthorized={onUnauthorized}
          caseId={route[1]}
          alertsSeen={snap?.alerts.total ?? 0}
        />
      ) : snap ? (
        <LivePage snap={snap} token={token} setToken={setToken} />
      ) : null}
    </main>
  );
}

function LivePage(props: {
  snap: DashboardSnapshot;
  token: string | null;
  setToken: (t: string | null) => void;
}) {
  const { snap, token, setToken } = props;
  const p = snap.processed;
  const h = snap.history;
  const span = h.length > 1 ? Math.round((h.at(-1)!.t - h[0]!.t) / 1000) : 0;
  const peak = Math.max(0, ...h.map((x) => Math.max(x.in_per_s, x.out_per_s)));
  const rules = Object.entries(snap.alerts.by_rule)
    .sort((a, b) => b[1] - a[1])
    .map(([label, value]) => ({ label, value }));
  return (
    <div className="grid">
      <Card title="Throughput" className="wide">
        <div className="stats">
          <Stat label="in (collector)" value={fmt(snap.throughput.in_per_s)} unit="tx/s" testId="in-rate" />
          <Stat
            label="out (processed)"
            value={fmt(snap.throughput.out_per_s)}
            unit="tx/s"
            testId="out-rate"
          />
          <Stat label="processed total" value={fmt(p.total)} testId="processed-total" />
        </div>
        <Sparkline points={snap.history} />
        <p className="legend">
          <span className="key key-in" /> in <span className="key key-out" /> out — last {span} s, peak{" "}
          {fmt(peak)} tx/s
        </p>
      </Card>
      {/* Production runs no traffic simulator: no rate form to offer then. */}
      {snap.collector.url === null ? null : <RateControl snap={snap} token={token} setToken={setToken} />}
      <Card title="Consumer lag">
        <div className="stats">
          <Stat label="records behind" value={fmt(snap.lag_records)} testId="lag" />
        </div>
        {snap.processors.length > 1 ? (
          <ul className="plain">
            {snap.processors.map((x) => (
              <li key={x.url}>
                {x.url}: {x.reachable ? `${fmt(x.lag_records)} behind` : "unreachable"}
              </li>
            ))}
          </ul>
        ) : null}
      </Card>
      <Card title={`p99 latency (last ${snap.latency.window_s} s)`}>
        <div className="stats">
          <Stat label="append → alert stored" value={ms(snap.latency.p99_alert_ms)} testId="p99-alert" />
          <Stat label="append → row durable" value={ms(snap.latency.p99_row_ms)} testId="p99-row" />
        </div>
      </Card>
      <Card title="Processed by outcome">
        <Bars
          testId="outcomes"
          rows={[
            { label: "ok", value: p.ok, className: "ok" },
            { label: "duplicate", value: p.duplicate, className: "dup" },
            { label: "late", value: p.late, className: "late" },
            { label: "invalid → DLQ", value: p.invalid, className: "bad" },
          ]}
        />
      </Card>
      <Card title="Alerts by rule">
        <div className="stats">
          <Stat label="alerts" value={fmt(snap.alerts.total)} testId="alerts-total" />
          <Stat label="accounts alerting (5 min)" value={fmt(snap.alerts.active_accounts_5m)} />
        </div>
        <Bars rows={rules} testId="alerts-by-rule" />
      </Card>
      <Card title="Health">
        <Health items={snap.health} />
      </Card>
      <Card title="Latest alerts" className="full">
        <AlertFeed alerts={snap.alerts.latest} />
        <p className="muted small">from {snap.alerts.source}; cards show BIN and last digits only</p>
      </Card>
    </div>
  );
}
