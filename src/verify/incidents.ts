/**
 * The scenario incidents verify expects alerts for. The labels topic holds the ground truth
 * of every run that used it; an incident belongs to this run when its transactions are in U
 * (the unique valid transaction_ids of the input read). Each incident of a checked rule
 * expects exactly one alert: the rule fires on one of its transactions, and the alert id is
 * a pure function of (rule, account, transaction), so the candidates are known in advance.
 */
import type { Label, ScenarioLabel } from "../contracts/labels.ts";
import { alertId } from "../core/alert.ts";
import { isNonEmptyString, parseJson } from "./tally.ts";

/** Parses one labels-topic value; only scenario labels matter to verify (others: undefined). */
export function parseScenarioLabel(text: string): ScenarioLabel | undefined {
  const l = parseJson(text) as Partial<Label> | null | undefined;
  if (l?.type !== "scenario") return undefined;
  const s = l as Partial<ScenarioLabel>;
  if (!isNonEmptyString(s.scenario_id) || !isNonEmptyString(s.expected_rule)) return undefined;
  if (!isNonEmptyString(s.account_id)) return undefined;
  if (!Array.isArray(s.transaction_ids) || !s.transaction_ids.every(isNonEmptyString)) return undefined;
  return s as ScenarioLabel;
}

export interface Incident {
  label: ScenarioLabel;
  /** The alert ids the expected rule would give on each of the incident's transactions. */
  candidateAlertIds: string[];
}

export interface IncidentSelection {
  /** Incidents of this run whose rule is checked: every transaction of theirs is in U. */
  incidents: Incident[];
  /** Incidents of this run with only some of their transactions in U (WARN, not checked). */
  partial: ScenarioLabel[];
  /** Incidents of this run whose expected rule is not in the checked set. */
  uncheckedRule: number;
  /** Scenario labels with none of their transactions in U: another run's. */
  foreign: number;
  /** Scenario labels read more than once (same scenario_id). */
  labelResends: number;
}

/** Picks the scenario labels that belong to this input (their transactions are in U). */
export function selectIncidents(
  labels: Iterable<ScenarioLabel>,
  unique: ReadonlySet<string>,
  rules: ReadonlySet<string>,
): IncidentSelection {
  const seen = new Set<string>();
  const out: IncidentSelection = {
    incidents: [],
    partial: [],
    uncheckedRule: 0,
    foreign: 0,
    labelResends: 0,
  };
  for (const l of labels) {
    if (seen.has(l.scenario_id)) {
      out.labelResends++;
      continue;
    }
    seen.add(l.scenario_id);
    let inU = 0;
    for (const id of l.transaction_ids) if (unique.has(id)) inU++;
    if (inU === 0) {
      out.foreign++;
      continue;
    }
    if (!rules.has(l.expected_rule)) {
      out.uncheckedRule++;
      continue;
    }
    if (inU < l.transaction_ids.length) {
      out.partial.push(l);
      continue;
    }
    out.incidents.push({
      label: l,
      candidateAlertIds: l.transaction_ids.map((tx) => alertId(l.expected_rule, l.account_id, tx)),
    });
  }
  return out;
}
