/**
 * The fraud rules' public surface: rule documents (types, parseRules: rule-document.ts) and
 * the per-event evaluator (evaluate: evaluate.ts). Services import the rules from here.
 * haversineKm (geo.ts) is here too because the traffic generator models the same travel.
 */
export { evaluate } from "./evaluate.ts";
export { haversineKm } from "./geo.ts";
export * from "./rule-document.ts";
