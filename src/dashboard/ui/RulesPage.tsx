/// <reference lib="dom" />
/**
 * The rules page (`#/rules`): the live version and an editable copy of its document. Nothing
 * changes for the processors until "Publish": Validate and Backtest run on the copy as it is,
 * so a change can be checked against recorded traffic before it goes live. The server is the
 * one validator (the same parser as the processors): the page sends what was typed, numbers as
 * numbers, and shows the parser's field-level messages next to the rule they name.
 */
import { type ReactNode, useCallback, useEffect, useState } from "react";
import type { BacktestReport, RuleResultJson as RuleResult } from "../backtest-api.ts";
import { api, fmt, pct, refusal, when } from "./api.ts";

interface RuleVersionJson {
  version: number;
  document: RulesDocument;
  sha256: string;
  published_at: string;
  author: string;
  source: string;
  comment?: string;
  rollback_of?: number;
}

type RuleDoc = Record<string, unknown> & { id: string; type: string };
interface RulesDocument {
  version: number;
  rules: RuleDoc[];
}

interface RulesAnswer {
  current: RuleVersionJson | null;
  history: RuleVersionJson[];
  shadow: { by_rule: Record<string, number> };
}

interface DiffAnswer {
  from: number;
  to: number;
  changes: {
    rule_id: string;
    kind: "added" | "removed" | "changed";
    fields: { field: string; from: unknown; to: unknown }[];
  }[];
}

export interface PrecisionRow {
  rule_id: string;
  fraud: number;
  legitimate: number;
  precision: number | null;
}

/** How a field is typed in and sent: docs/rules.md lists each type's fields. */
type FieldKind = "int" | "number" | "amount" | "nullable-int" | "nullable-number";
interface FieldSpec {
  name: string;
  kind: FieldKind;
  hint: string;
}

const COMMON_FIELDS: FieldSpec[] = [
  { name: "windowMs", kind: "int", hint: "60000" },
  { name: "cooldownMs", kind: "int", hint: "300000" },
];

export const FIELDS_BY_TYPE: Record<string, FieldSpec[]> = {
  velocity_count: [{ name: "threshold", kind: "int", hint: "10" }],
  amount_sum: [{ name: "threshold", kind: "amount", hint: "10000.00" }],
  card_testing: [
    { name: "minSmallCount", kind: "int", hint: "5" },
    { name: "smallAmountMax", kind: "amount", hint: "2.00" },
    { name: "largeAmountMin", kind: "amount", hint: "100.00" },
  ],
  geo_velocity: [
    { name: "maxSpeedKmh", kind: "nullable-number", hint: "900" },
    { name: "minDistanceKm", kind: "int", hint: "500" },
    { name: "minDistinctCountries", kind: "nullable-int", hint: "3" },
  ],
  merchant_spread: [{ name: "threshold", kind: "int", hint: "6" }],
  amount_spike: [
    { name: "multiplier", kind: "number", hint: "10" },
    { name: "minAmount", kind: "amount", hint: "500.00" },
    { name: "minHistory", kind: "int", hint: "5" },
  ],
};
const RULE_TYPES = Object.keys(FIELDS_BY_TYPE);
const SEVERITIES = ["low", "medium", "high", "critical"];

/**
 * What a typed value becomes in the document: nothing (the default applies) when empty, a
 * number when it reads as one (amounts stay the decimal strings the docs recommend), else the
 * text as typed, so that the parser says what is wrong with it rather than the page guessing.
 */
function fromInput(kind: FieldKind, text: string): unknown {
  const t = text.trim();
  if (t === "") return undefined;
  if (kind === "amount") return t;
  return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
}

const clone = <T,>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const show = (v: unknown): string =>
  v === undefined ? "(default)" : v === null ? "off" : typeof v === "string" ? v : JSON.stringify(v);

/** Parser messages that name a rule, by rule id; the rest (document-level) under "". */
function errorsByRule(errors: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of errors) {
    const m = /^rule "([^"]*)"/.exec(e);
    const key = m ? m[1]! : "";
    out.set(key, [...(out.get(key) ?? []), e]);
  }
  return out;
}

function RuleEditor(props: {
  rule: RuleDoc;
  errors: string[];
  shadowCount: number | undefined;
  precision: PrecisionRow | undefined;
  onChange: (r: RuleDoc) => void;
  onRemove: () => void;
}) {
  const { rule } = props;
  const set = (name: string, value: unknown) => {
    const next = { ...rule };
    if (value === undefined) delete next[name];
    else next[name] = value;
    props.onChange(next);
  };
  const fields = [...(FIELDS_BY_TYPE[rule.type] ?? []), ...COMMON_FIELDS];
  const enabled = rule.enabled !== false;
  const shadow = rule.shadow === true;
  return (
    <li className={`rule ${enabled ? "" : "disabled"}`} data-testid="rule" data-rule-id={rule.id}>
      <div className="rule-head">
        <strong className="mono">{rule.id}</strong>
        <span className="muted">{rule.type}</span>
        {shadow ? <span className="tag">shadow</span> : null}
        {enabled ? null : <span className="tag">disabled</span>}
        <span className="muted small" data-testid="rule-shadow-count">
          shadow alerts {fmt(props.shadowCount ?? 0)}
        </span>
        <span className="muted small" data-testid="rule-precision">
          precision {pct(props.precision?.precision)}
          {props.precision ? ` (${props.precision.fraud} fraud / ${props.precision.legitimate} legit)` : ""}
        </span>
        <button type="button" className="link" onClick={props.onRemove}>
          remove
        </button>
      </div>
      <div className="rule-fields">
        <label>
          <input
            type="checkbox"
            data-testid="rule-enabled"
            checked={enabled}
            onChange={(e) => set("enabled", e.target.checked)}
          />{" "}
          enabled
        </label>
        <label>
          <input
            type="checkbox"
            data-testid="rule-shadow"
            checked={shadow}
            onChange={(e) => set("shadow", e.target.checked)}
          />{" "}
          shadow (counted, never alerted)
        </label>
        <label>
          severity{" "}
          <select
            data-testid="rule-severity"
            value={typeof rule.severity === "string" ? rule.severity : ""}
            onChange={(e) => set("severity", e.target.value === "" ? undefined : e.target.value)}
          >
            <option value="">(type default)</option>
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        {fields.map((f) => {
          const v = rule[f.name];
          const nullable = f.kind.startsWith("nullable");
          return (
            <label key={f.name}>
              {f.name}{" "}
              <input
                data-testid={`field-${f.name}`}
                placeholder={f.hint}
                disabled={v === null}
                value={v === undefined || v === null ? "" : String(v)}
                onChange={(e) => set(f.name, fromInput(f.kind, e.target.value))}
              />
              {nullable ? (
                <span className="small">
                  <input
                    type="checkbox"
                    data-testid={`field-${f.name}-off`}
                    checked={v === null}
                    onChange={(e) => set(f.name, e.target.checked ? null : undefined)}
                  />{" "}
                  off
                </span>
              ) : null}
            </label>
          );
        })}
        <label className="wide-field">
          description{" "}
          <input
            value={typeof rule.description === "string" ? rule.description : ""}
            onChange={(e) => set("description", e.target.value === "" ? undefined : e.target.value)}
          />
        </label>
      </div>
      {props.errors.length > 0 ? (
        <ul className="errors" data-testid="rule-errors">
          {props.errors.map((e) => (
            <li key={e} className="error">
              {e}
            </li>
          ))}
        </ul>
      ) : null}
    </li>
  );
}

function AddRule(props: { existing: string[]; onAdd: (r: RuleDoc) => void }) {
  const [type, setType] = useState(RULE_TYPES[0]!);
  const [id, setId] = useState("");
  const taken = props.existing.includes(id.trim());
  return (
    <form
      className="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (id.trim() === "" || taken) return;
        // A new rule starts in shadow: it is counted before it can alert anyone.
        props.onAdd({ id: id.trim(), type, enabled: true, shadow: true });
        setId("");
      }}
    >
      <select data-testid="add-rule-type" value={type} onChange={(e) => setType(e.target.value)}>
        {RULE_TYPES.map((t) => (
          <option key={t} value={t}>
            {t}
          </option>
        ))}
      </select>
      <input
        data-testid="add-rule-id"
        placeholder="new rule id"
        value={id}
        onChange={(e) => setId(e.target.value)}
      />
      <button type="submit" data-testid="add-rule" disabled={id.trim() === "" || taken}>
        Add rule
      </button>
      {taken ? <span className="error">that id is taken</span> : null}
    </form>
  );
}

function Diff({ diff }: { diff: DiffAnswer }) {
  if (diff.changes.length === 0) return <p className="muted">no rule changed</p>;
  return (
    <ul className="diff" data-testid="diff">
      {diff.changes.map((c) => (
        <li key={`${c.kind}-${c.rule_id}`}>
          <span className={`tag diff-${c.kind}`}>{c.kind}</span> <span className="mono">{c.rule_id}</span>
          {c.fields.length > 0 ? (
            <ul>
              {c.fields.map((f) => (
                <li key={f.field} className="mono small">
                  {f.field}: {show(f.from)} → {show(f.to)}
                </li>
              ))}
            </ul>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

function BacktestTable({ report }: { report: BacktestReport }) {
  const ids = [
    ...new Set([
      ...report.candidate.rules.map((r) => r.rule_id),
      ...(report.current?.rules ?? []).map((r) => r.rule_id),
    ]),
  ];
  const cand = new Map(report.candidate.rules.map((r) => [r.rule_id, r]));
  const cur = new Map((report.current?.rules ?? []).map((r) => [r.rule_id, r]));
  const cells = (r: RuleResult | undefined) => [
    <td key="a" className="num">
      {r ? fmt(r.alerts) : "–"}
    </td>,
    <td key="b" className="num">
      {r ? fmt(r.accounts) : "–"}
    </td>,
    <td key="c" className="num">
      {pct(r?.recall)}
    </td>,
    <td key="d" className="num">
      {pct(r?.precision)}
    </td>,
  ];
  return (
    <div data-testid="backtest-result">
      <p className="muted small" data-testid="backtest-span">
        {fmt(report.span.records)} records from {when(report.span.from)} to {when(report.span.to)}
        {report.span.truncated ? " (truncated at the record limit)" : ""};{" "}
        {report.labelled ? "recall and precision against the collector's labels" : "no labels in this span"}
      </p>
      <table className="feed">
        <thead>
          <tr>
            <th rowSpan={2}>rule</th>
            <th colSpan={4}>
              edited (candidate{report.candidate.version ? ` v${report.candidate.version}` : ""})
            </th>
            <th colSpan={4}>current{report.current?.version ? ` v${report.current.version}` : ""}</th>
          </tr>
          <tr>
            <th className="num">alerts</th>
            <th className="num">accounts</th>
            <th className="num">recall</th>
            <th className="num">precision</th>
            <th className="num">alerts</th>
            <th className="num">accounts</th>
            <th className="num">recall</th>
            <th className="num">precision</th>
          </tr>
        </thead>
        <tbody>
          {ids.map((id) => (
            <tr key={id} data-testid="backtest-row" data-rule-id={id}>
              <td className="mono">
                {id}
                {cand.get(id)?.shadow ? <span className="tag">shadow</span> : null}
              </td>
              {cells(cand.get(id))}
              {cells(cur.get(id))}
            </tr>
          ))}
          <tr className="total" data-testid="backtest-total">
            <td>all rules</td>
            <td className="num">{fmt(report.candidate.total_alerts)}</td>
            <td className="num">{fmt(report.candidate.accounts)}</td>
            <td className="num">{pct(report.candidate.recall)}</td>
            <td className="num">{pct(report.candidate.precision)}</td>
            <td className="num">{fmt(report.current?.total_alerts)}</td>
            <td className="num">{fmt(report.current?.accounts)}</td>
            <td className="num">{pct(report.current?.recall)}</td>
            <td className="num">{pct(report.current?.precision)}</td>
          </tr>
        </tbody>
      </table>
    </div>
  );
}

function Section(props: { title: string; children: ReactNode; testId?: string }) {
  return (
    <section className="card full" data-testid={props.testId}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

export function RulesPage(props: { token: string | null; onUnauthorized: () => void }) {
  const { token, onUnauthorized } = props;
  const [data, setData] = useState<RulesAnswer | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [draft, setDraft] = useState<RulesDocument | null>(null);
  const [errors, setErrors] = useState<string[]>([]);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [precision, setPrecision] = useState<Map<string, PrecisionRow>>(new Map());
  const [diffs, setDiffs] = useState<Map<number, DiffAnswer | string>>(new Map());
  const [minutes, setMinutes] = useState("60");
  const [backtest, setBacktest] = useState<BacktestReport | null>(null);
  const [backtestError, setBacktestError] = useState<string[]>([]);
  const [backtesting, setBacktesting] = useState(false);

  const load = useCallback(
    async (resetDraft: boolean) => {
      try {
        const a = await api<RulesAnswer>("GET", "api/rules", token);
        if (a.status === 401) return onUnauthorized();
        if (a.status !== 200) {
          setLoadError(refusal(a).join("; "));
          return;
        }
        setLoadError(null);
        setData(a.body);
        if (resetDraft) setDraft(a.body.current ? clone(a.body.current.document) : { version: 1, rules: [] });
        const p = await api<{ rules: PrecisionRow[] }>("GET", "api/cases/precision", token);
        if (p.status === 200 && Array.isArray(p.body.rules))
          setPrecision(new Map(p.body.rules.map((r) => [r.rule_id, r])));
      } catch (err) {
        setLoadError(`request failed: ${(err as Error).message}`);
      }
    },
    [token, onUnauthorized],
  );

  useEffect(() => {
    void load(true);
  }, [load]);
  // Shadow counts and precision move while the page is open; the draft is left alone.
  useEffect(() => {
    const t = setInterval(() => void load(false), 5000);
    return () => clearInterval(t);
  }, [load]);

  if (loadError && !data)
    return (
      <p className="error" data-testid="rules-error">
        {loadError}
      </p>
    );
  if (!data || !draft) return <p className="muted">loading rules…</p>;

  const current = data.current;
  const dirty = JSON.stringify(draft) !== JSON.stringify(current?.document ?? { version: 1, rules: [] });
  const byRule = errorsByRule(errors);
  const ids = draft.rules.map((r) => r.id);
  const setRule = (i: number, r: RuleDoc) => {
    const rules = [...draft.rules];
    rules[i] = r;
    setDraft({ ...draft, rules });
  };

  async function validate(): Promise<boolean> {
    const a = await api<{ ok?: boolean; rules?: string[] }>("POST", "api/rules/validate", token, {
      document: draft,
    });
    if (a.status === 401) {
      onUnauthorized();
      return false;
    }
    if (a.status === 200 && a.body.ok) {
      setErrors([]);
      setMessage({ ok: true, text: `valid: ${(a.body.rules ?? []).length} rules` });
      return true;
    }
    setErrors(refusal(a));
    setMessage({ ok: false, text: "not valid: see the messages next to the rules" });
    return false;
  }

  async function publish() {
    setBusy(true);
    try {
      const a = await api<{ version?: RuleVersionJson; unchanged?: boolean }>("POST", "api/rules", token, {
        document: draft,
        ...(comment.trim() ? { comment: comment.trim() } : {}),
      });
      if (a.status === 401) return onUnauthorized();
      if ((a.status === 201 || a.status === 200) && a.body.version) {
        setErrors([]);
        setComment("");
        setMessage({
          ok: true,
          text: a.body.unchanged
            ? `unchanged: version ${a.body.version.version} is already this document`
            : `published version ${a.body.version.version}`,
        });
        await load(true);
      } else {
        setErrors(refusal(a));
        setMessage({ ok: false, text: "not published: see the messages next to the rules" });
      }
    } catch (err) {
      setMessage({ ok: false, text: `request failed: ${(err as Error).message}` });
    } finally {
      setBusy(false);
    }
  }

  async function runValidate() {
    setBusy(true);
    try {
      await validate();
    } catch (err) {
      setMessage({ ok: false, text: `request failed: ${(err as Error).message}` });
    } finally {
      setBusy(false);
    }
  }

  async function rollback(version: number) {
    setBusy(true);
    try {
      const a = await api<{ version?: RuleVersionJson }>("POST", "api/rules/rollback", token, {
        version,
        comment: `rollback to version ${version} from the dashboard`,
      });
      if (a.status === 401) return onUnauthorized();
      if (a.status === 201 && a.body.version) {
        setMessage({ ok: true, text: `rolled back: version ${a.body.version.version} restores ${version}` });
        await load(true);
      } else setMessage({ ok: false, text: refusal(a).join("; ") });
    } finally {
      setBusy(false);
    }
  }

  async function toggleDiff(v: RuleVersionJson, predecessor: number) {
    if (diffs.has(v.version)) {
      const next = new Map(diffs);
      next.delete(v.version);
      setDiffs(next);
      return;
    }
    const a = await api<DiffAnswer>("GET", `api/rules/diff?from=${predecessor}&to=${v.version}`, token);
    if (a.status === 401) return onUnauthorized();
    setDiffs(new Map(diffs).set(v.version, a.status === 200 ? a.body : refusal(a).join("; ")));
  }

  async function runBacktest() {
    setBacktesting(true);
    setBacktestError([]);
    try {
      const n = Number(minutes);
      const a = await api<BacktestReport>("POST", "api/rules/backtest", token, {
        document: draft,
        last_minutes: Number.isInteger(n) ? n : minutes,
      });
      if (a.status === 401) return onUnauthorized();
      if (a.status === 200) setBacktest(a.body);
      else {
        setBacktest(null);
        setBacktestError(refusal(a));
      }
    } catch (err) {
      setBacktestError([`request failed: ${(err as Error).message}`]);
    } finally {
      setBacktesting(false);
    }
  }

  return (
    <div className="grid">
      <Section title="Live rule set" testId="rules-current">
        {current ? (
          <p>
            version{" "}
            <strong data-testid="current-version" data-version={current.version}>
              {current.version}
            </strong>{" "}
            · published {when(current.published_at)} by <span className="mono">{current.author}</span> ·{" "}
            {current.source}
            {current.comment ? ` · “${current.comment}”` : ""}
          </p>
        ) : (
          <p className="muted" data-testid="current-version">
            no version published yet
          </p>
        )}
        <ul className="rule-summary" data-testid="live-rules">
          {(current?.document.rules ?? []).map((r) => (
            <li key={r.id} data-testid="live-rule" data-rule-id={r.id}>
              <span className="mono">{r.id}</span> <span className="muted">{r.type}</span>
              {r.enabled === false ? <span className="tag">disabled</span> : null}
              {r.shadow === true ? <span className="tag">shadow</span> : null}
              <span className="muted small">
                {" "}
                shadow alerts {fmt(data.shadow.by_rule[r.id] ?? 0)} · precision{" "}
                {pct(precision.get(r.id)?.precision)}
              </span>
            </li>
          ))}
        </ul>
      </Section>

      <Section title={`Edit${dirty ? " (unpublished changes)" : ""}`} testId="rules-editor">
        {byRule.get("") ? (
          <ul className="errors" data-testid="document-errors">
            {byRule.get("")!.map((e) => (
              <li key={e} className="error">
                {e}
              </li>
            ))}
          </ul>
        ) : null}
        <ul className="rules">
          {draft.rules.map((r, i) => (
            <RuleEditor
              // biome-ignore lint/suspicious/noArrayIndexKey: ids can be edited and repeated; position is the identity here
              key={i}
              rule={r}
              errors={byRule.get(r.id) ?? []}
              shadowCount={data.shadow.by_rule[r.id]}
              precision={precision.get(r.id)}
              onChange={(n) => setRule(i, n)}
              onRemove={() => setDraft({ ...draft, rules: draft.rules.filter((_, j) => j !== i) })}
            />
          ))}
        </ul>
        <AddRule existing={ids} onAdd={(r) => setDraft({ ...draft, rules: [...draft.rules, r] })} />
        <div className="inline-form publish">
          <button
            type="button"
            data-testid="rules-validate"
            disabled={busy}
            onClick={() => void runValidate()}
          >
            Validate
          </button>
          <input
            data-testid="rules-comment"
            placeholder="comment (why this change)"
            value={comment}
            onChange={(e) => setComment(e.target.value)}
          />
          <button
            type="button"
            data-testid="rules-publish"
            disabled={busy || !dirty}
            onClick={() => void publish()}
          >
            Publish
          </button>
          <button
            type="button"
            className="secondary"
            disabled={busy || !dirty}
            onClick={() => {
              setDraft(current ? clone(current.document) : { version: 1, rules: [] });
              setErrors([]);
              setMessage(null);
            }}
          >
            Discard changes
          </button>
        </div>
        {message ? (
          <p className={message.ok ? "ok-text" : "error"} data-testid="rules-message" role="status">
            {message.text}
          </p>
        ) : null}
      </Section>

      <Section title="Backtest the edited rules" testId="backtest">
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            void runBacktest();
          }}
        >
          <label>
            last{" "}
            <input
              data-testid="backtest-minutes"
              inputMode="numeric"
              size={6}
              value={minutes}
              onChange={(e) => setMinutes(e.target.value)}
            />{" "}
            minutes of recorded traffic
          </label>
          <button type="submit" data-testid="backtest-run" disabled={backtesting}>
            {backtesting ? "Running…" : "Run backtest"}
          </button>
        </form>
        {backtestError.length > 0 ? (
          <ul className="errors" data-testid="backtest-error">
            {backtestError.map((e) => (
              <li key={e} className="error">
                {e}
              </li>
            ))}
          </ul>
        ) : null}
        {backtest ? <BacktestTable report={backtest} /> : null}
      </Section>

      <Section title="History" testId="rules-history">
        <table className="feed">
          <thead>
            <tr>
              <th>version</th>
              <th>published</th>
              <th>by</th>
              <th>source</th>
              <th>comment</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {data.history.map((v, i) => {
              const predecessor = data.history[i + 1]?.version;
              const diff = diffs.get(v.version);
              return [
                <tr key={v.version} data-testid="history-row" data-version={v.version}>
                  <td className="mono">
                    {v.version}
                    {v.version === current?.version ? <span className="tag">live</span> : null}
                  </td>
                  <td className="mono">{when(v.published_at)}</td>
                  <td className="mono">{v.author}</td>
                  <td>
                    {v.source}
                    {v.rollback_of ? ` of v${v.rollback_of}` : ""}
                  </td>
                  <td>{v.comment ?? ""}</td>
                  <td className="actions">
                    {predecessor === undefined ? null : (
                      <button
                        type="button"
                        className="link"
                        data-testid="history-diff"
                        onClick={() => void toggleDiff(v, predecessor)}
                      >
                        {diff ? "hide diff" : `diff from v${predecessor}`}
                      </button>
                    )}
                    {v.version === current?.version ? null : (
                      <button
                        type="button"
                        className="link"
                        data-testid="history-rollback"
                        disabled={busy}
                        onClick={() => void rollback(v.version)}
                      >
                        Roll back to this version
                      </button>
                    )}
                  </td>
                </tr>,
                diff ? (
                  <tr key={`${v.version}-diff`}>
                    <td colSpan={6}>
                      {typeof diff === "string" ? <p className="error">{diff}</p> : <Diff diff={diff} />}
                    </td>
                  </tr>
                ) : null,
              ];
            })}
          </tbody>
        </table>
      </Section>
    </div>
  );
}
