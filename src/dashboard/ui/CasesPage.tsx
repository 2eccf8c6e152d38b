/// <reference lib="dom" />
/**
 * The cases page (`#/cases`, `#/cases/<id>`): the analyst's queue in the order the API gives
 * (unresolved first, then severity, then the oldest), refreshed every few seconds and whenever
 * the live feed counts a new alert; a case's detail with its rule hits on a timeline of masked
 * transactions, its status history, and the status actions the API allows from its status.
 */
import { useCallback, useEffect, useState } from "react";
import { api, fmt, pct, refusal, when } from "./api.ts";
import type { PrecisionRow } from "./RulesPage.tsx";

const STATUSES = ["open", "acknowledged", "resolved_fraud", "resolved_legitimate"] as const;
type CaseStatus = (typeof STATUSES)[number];

interface CaseHitJson {
  alert_id: string;
  rule_id: string;
  rule_type: string;
  severity: string;
  transaction_id: string;
  event_time: string;
  detected_at: string;
  rule_set_version?: number | null;
  figures: Record<string, number | string>;
  masked_card?: { bin?: string; last4?: string } | string | null;
}

interface CaseJson {
  case_id: string;
  account_id: string;
  status: CaseStatus;
  severity: string;
  first_seen: string;
  last_seen: string;
  rule_ids: string[];
  hits: CaseHitJson[];
  history: { status: CaseStatus; by: string; at: string; note?: string }[];
}

const STATUS_LABEL: Record<CaseStatus, string> = {
  open: "open",
  acknowledged: "acknowledged",
  resolved_fraud: "resolved: fraud",
  resolved_legitimate: "resolved: legitimate",
};

/** The transitions the API accepts (docs/cases.md), as the buttons offered from each status. */
const ACTIONS: Record<CaseStatus, { to: CaseStatus; label: string; testId: string }[]> = {
  open: [
    { to: "acknowledged", label: "Acknowledge", testId: "case-acknowledge" },
    { to: "resolved_fraud", label: "Resolve as fraud", testId: "case-resolve-fraud" },
    { to: "resolved_legitimate", label: "Resolve as legitimate", testId: "case-resolve-legitimate" },
  ],
  acknowledged: [
    { to: "resolved_fraud", label: "Resolve as fraud", testId: "case-resolve-fraud" },
    { to: "resolved_legitimate", label: "Resolve as legitimate", testId: "case-resolve-legitimate" },
  ],
  resolved_fraud: [{ to: "open", label: "Reopen", testId: "case-reopen" }],
  resolved_legitimate: [{ to: "open", label: "Reopen", testId: "case-reopen" }],
};

/** BIN and last digits only: anything else the API might carry (a token) is not shown. */
function cardText(c: CaseHitJson["masked_card"]): string {
  if (!c) return "–";
  if (typeof c === "string") return c;
  return c.bin && c.last4 ? `${c.bin} •••••• ${c.last4}` : "–";
}

function figuresText(f: Record<string, number | string>): string {
  return Object.entries(f)
    .filter(([k]) => k !== "sumMinor")
    .map(([k, v]) => `${k} ${typeof v === "number" ? fmt(v) : v}`)
    .join(" · ");
}

function Precision({ rows }: { rows: PrecisionRow[] | null }) {
  if (rows === null) return <p className="muted">loading…</p>;
  if (rows.length === 0) return <p className="muted">no case resolved yet</p>;
  return (
    <table className="feed" data-testid="precision">
      <thead>
        <tr>
          <th>rule</th>
          <th className="num">fraud</th>
          <th className="num">legitimate</th>
          <th className="num">precision</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.rule_id} data-testid="precision-row" data-rule-id={r.rule_id}>
            <td className="mono">{r.rule_id}</td>
            <td className="num">{fmt(r.fraud)}</td>
            <td className="num">{fmt(r.legitimate)}</td>
            <td className="num" data-testid="precision-value">
              {pct(r.precision)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function CaseDetail(props: {
  c: CaseJson;
  token: string | null;
  onUnauthorized: () => void;
  onChanged: (c: CaseJson) => void;
}) {
  const { c } = props;
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const hits = [...c.hits].sort((a, b) => a.event_time.localeCompare(b.event_time));

  async function act(to: CaseStatus) {
    setBusy(true);
    setError(null);
    try {
      const a = await api<CaseJson>("POST", `api/cases/${encodeURIComponent(c.case_id)}`, props.token, {
        status: to,
        ...(note.trim() ? { note: note.trim() } : {}),
      });
      if (a.status === 401) return props.onUnauthorized();
      if (a.status === 200) {
        setNote("");
        props.onChanged(a.body);
      } else setError(refusal(a).join("; "));
    } catch (err) {
      setError(`request failed: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card full" data-testid="case-detail" data-case-id={c.case_id}>
      <h2>
        Case <span className="mono">{c.case_id}</span>
      </h2>
      <p>
        <a href="#/cases">← back to the queue</a>
      </p>
      <div className="stats">
        <div className="stat">
          <div className="stat-value mono">{c.account_id}</div>
          <div className="stat-label">account</div>
        </div>
        <div className="stat">
          <div className="stat-value">
            <span className={`sev sev-${c.severity}`}>{c.severity}</span>
          </div>
          <div className="stat-label">severity (highest hit)</div>
        </div>
        <div className="stat">
          <div className="stat-value" data-testid="case-status" data-status={c.status}>
            {STATUS_LABEL[c.status] ?? c.status}
          </div>
          <div className="stat-label">status</div>
        </div>
        <div className="stat">
          <div className="stat-value mono small">{when(c.first_seen)}</div>
          <div className="stat-label">first seen</div>
        </div>
        <div className="stat">
          <div className="stat-value mono small">{when(c.last_seen)}</div>
          <div className="stat-label">last seen</div>
        </div>
      </div>
      <div className="inline-form">
        <input
          data-testid="case-note"
          placeholder="note (optional)"
          value={note}
          onChange={(e) => setNote(e.target.value)}
        />
        {(ACTIONS[c.status] ?? []).map((a) => (
          <button
            key={a.to}
            type="button"
            data-testid={a.testId}
            disabled={busy}
            onClick={() => void act(a.to)}
          >
            {a.label}
          </button>
        ))}
      </div>
      {error ? (
        <p className="error" data-testid="case-error">
          {error}
        </p>
      ) : null}
      <h2>Timeline: rule hits and their transactions</h2>
      <table className="feed" data-testid="case-timeline">
        <thead>
          <tr>
            <th>event time</th>
            <th>rule</th>
            <th>severity</th>
            <th>transaction</th>
            <th>card</th>
            <th>figures</th>
            <th className="num">rule set</th>
          </tr>
        </thead>
        <tbody>
          {hits.map((h) => (
            <tr key={h.alert_id} data-testid="case-hit" data-rule-id={h.rule_id}>
              <td className="mono">{when(h.event_time)}</td>
              <td>{h.rule_id}</td>
              <td>
                <span className={`sev sev-${h.severity}`}>{h.severity}</span>
              </td>
              <td className="mono">{h.transaction_id}</td>
              <td className="mono" data-testid="case-hit-card">
                {cardText(h.masked_card)}
              </td>
              <td className="figures">{figuresText(h.figures)}</td>
              <td className="num mono">{h.rule_set_version ?? "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Status history</h2>
      {c.history.length === 0 ? (
        <p className="muted">untouched since it was opened</p>
      ) : (
        <ol className="history" data-testid="case-history">
          {c.history.map((h) => (
            <li key={`${h.at}-${h.status}`} data-testid="case-history-item">
              <span className="mono">{when(h.at)}</span> {STATUS_LABEL[h.status] ?? h.status} by{" "}
              <span className="mono">{h.by}</span>
              {h.note ? <span className="muted"> — {h.note}</span> : null}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

export function CasesPage(props: {
  token: string | null;
  onUnauthorized: () => void;
  caseId: string | undefined;
  /** The live feed's alert count: a change means cases may have changed. */
  alertsSeen: number;
}) {
  const { token, onUnauthorized, caseId, alertsSeen } = props;
  const [status, setStatus] = useState<CaseStatus | "">("");
  const [cases, setCases] = useState<CaseJson[] | null>(null);
  const [detail, setDetail] = useState<CaseJson | null | "missing">(null);
  const [precision, setPrecision] = useState<PrecisionRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const q = status ? `?status=${status}&limit=100` : "?limit=100";
      const [list, prec, one] = await Promise.all([
        api<{ cases: CaseJson[] }>("GET", `api/cases${q}`, token),
        api<{ rules: PrecisionRow[] }>("GET", "api/cases/precision", token),
        caseId === undefined
          ? Promise.resolve(undefined)
          : api<CaseJson>("GET", `api/cases/${encodeURIComponent(caseId)}`, token),
      ]);
      if (list.status === 401) return onUnauthorized();
      if (list.status === 200 && Array.isArray(list.body.cases)) {
        setCases(list.body.cases);
        setError(null);
      } else setError(refusal(list).join("; "));
      if (prec.status === 200 && Array.isArray(prec.body.rules)) setPrecision(prec.body.rules);
      if (one) setDetail(one.status === 200 ? one.body : one.status === 404 ? "missing" : null);
    } catch (err) {
      setError(`request failed: ${(err as Error).message}`);
    }
  }, [token, onUnauthorized, status, caseId]);

  useEffect(() => {
    if (caseId === undefined) setDetail(null);
  }, [caseId]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: alertsSeen is the trigger, not an input
  useEffect(() => {
    void load();
  }, [load, alertsSeen]);
  useEffect(() => {
    const t = setInterval(() => void load(), 3000);
    return () => clearInterval(t);
  }, [load]);

  return (
    <div className="grid">
      {caseId !== undefined ? (
        detail === "missing" ? (
          <section className="card full">
            <p className="error">no case {caseId}</p>
            <a href="#/cases">← back to the queue</a>
          </section>
        ) : detail ? (
          <CaseDetail
            c={detail}
            token={token}
            onUnauthorized={onUnauthorized}
            onChanged={(c) => {
              setDetail(c);
              void load();
            }}
          />
        ) : (
          <section className="card full">
            <p className="muted">loading case…</p>
          </section>
        )
      ) : null}
      <section className="card full">
        <h2>Precision per rule (analyst resolutions: fraud ÷ resolved)</h2>
        <Precision rows={precision} />
      </section>
      <section className="card full" data-testid="cases-queue">
        <h2>Queue</h2>
        <div className="inline-form">
          <label>
            status{" "}
            <select
              data-testid="cases-filter"
              value={status}
              onChange={(e) => setStatus(e.target.value as CaseStatus | "")}
            >
              <option value="">all</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {STATUS_LABEL[s]}
                </option>
              ))}
            </select>
          </label>
          <span className="muted small">unresolved first, then by severity, then the oldest</span>
        </div>
        {error ? (
          <p className="error" data-testid="cases-error">
            {error}
          </p>
        ) : null}
        {cases === null ? (
          <p className="muted">loading cases…</p>
        ) : cases.length === 0 ? (
          <p className="muted" data-testid="cases-empty">
            no cases{status ? ` ${STATUS_LABEL[status]}` : ""}
          </p>
        ) : (
          <table className="feed">
            <thead>
              <tr>
                <th>status</th>
                <th>severity</th>
                <th>account</th>
                <th>rules hit</th>
                <th className="num">hits</th>
                <th>first seen</th>
                <th>last seen</th>
              </tr>
            </thead>
            <tbody>
              {cases.map((c) => (
                <tr
                  key={c.case_id}
                  data-testid="case-row"
                  data-case-id={c.case_id}
                  className={`clickable ${c.case_id === caseId ? "selected" : ""}`}
                  onClick={() => {
                    window.location.hash = `#/cases/${encodeURIComponent(c.case_id)}`;
                  }}
                >
                  <td>
                    <a href={`#/cases/${encodeURIComponent(c.case_id)}`} data-testid="case-link">
                      {STATUS_LABEL[c.status] ?? c.status}
                    </a>
                  </td>
                  <td>
                    <span className={`sev sev-${c.severity}`}>{c.severity}</span>
                  </td>
                  <td className="mono">{c.account_id}</td>
                  <td>{c.rule_ids.join(", ")}</td>
                  <td className="num">{fmt(c.hits.length)}</td>
                  <td className="mono">{when(c.first_seen)}</td>
                  <td className="mono">{when(c.last_seen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
