/**
 * Validation of the traffic model's numeric settings. A bad value is a configuration error
 * that names its field, raised when the setting is made rather than found later as odd
 * traffic.
 */
import { ConfigError } from "../core/errors.ts";

/** A finite number in [0, max]. */
export function checkRate(field: string, value: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    throw new ConfigError(field, `must be a number in [0, ${max}], got ${value}`);
  }
  return value;
}

/** An integer in [min, max]. */
export function checkInt(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(field, `must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}
