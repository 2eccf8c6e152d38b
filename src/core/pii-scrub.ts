/**
 * Scrubbing free text that must leave the process but cannot be masked field by field: the
 * DLQ's copy of a record that does not parse, and the `detail` a parser or a database wrote
 * about it. Card numbers are pan.ts's job (redactPans); this adds emails and IP addresses,
 * and the values of known JSON fields found in text that is not valid JSON.
 *
 * Like redactPans, every function errs on the side of cutting: a DLQ entry a bit harder to
 * read is a small price, a leaked address is not. Each is one linear pass without regular
 * expressions over the text (no backtracking on hostile input); look-arounds are bounded
 * (an email's local part to 64 characters, its domain to 255), so a text made only of '@'
 * stays linear.
 */
import { redactPans } from "./pan.ts";

export const EMAIL_MARK = "[email]";
export const IP_MARK = "[ip]";

export interface Scrubbed {
  text: string;
  /** Card-like digit runs, emails and IP addresses cut. */
  pans: number;
  emails: number;
  ips: number;
}

/** Longest local part (RFC 5321) and domain looked at around an '@'. */
const MAX_LOCAL = 64;
const MAX_DOMAIN = 255;

const LETTER_OR_DIGIT = /^[\p{L}\p{N}]$/u;

function isAsciiAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** Non-ASCII letters and digits count: "josé@exämple.de" is an address. */
function isWideAlnum(c: number): boolean {
  return c >= 128 && LETTER_OR_DIGIT.test(String.fromCharCode(c));
}

/** Characters of an email's local part (RFC 5322 atext and '.'; not the JSON structure characters). */
function isLocalChar(c: number): boolean {
  if (isAsciiAlnum(c)) return true;
  // . _ % + - ' ! # $ & * = ? ^ ` ~ /
  if (
    c === 46 ||
    c === 95 ||
    c === 37 ||
    c === 43 ||
    c === 45 ||
    c === 39 ||
    c === 33 ||
    c === 35 ||
    c === 36 ||
    c === 38 ||
    c === 42 ||
    c === 61 ||
    c === 63 ||
    c === 94 ||
    c === 96 ||
    c === 126 ||
    c === 47
  )
    return true;
  return isWideAlnum(c);
}

function isDomainChar(c: number): boolean {
  return isAsciiAlnum(c) || c === 46 || c === 45 || isWideAlnum(c);
}

/**
 * Replaces every `local@domain` with EMAIL_MARK. Anything with at least one address
 * character on each side of an '@' counts (no TLD required: "root@localhost" is cut too).
 */
export function scrubEmails(text: string): { text: string; redacted: number } {
  let at = text.indexOf("@");
  if (at < 0) return { text, redacted: 0 };
  let out = "";
  let copied = 0;
  let redacted = 0;
  while (at >= 0) {
    let start = at;
    const leftLimit = Math.max(copied, at - MAX_LOCAL);
    while (start > leftLimit && isLocalChar(text.charCodeAt(start - 1))) start--;
    let end = at + 1;
    const rightLimit = Math.min(text.length, at + 1 + MAX_DOMAIN);
    while (end < rightLimit && isDomainChar(text.charCodeAt(end))) end++;
    // A sentence's full stop or a trailing hyphen is not part of the domain.
    while (end > at + 1 && (text.charCodeAt(end - 1) === 46 || text.charCodeAt(end - 1) === 45)) end--;
    if (start < at && end > at + 1) {
      out += text.slice(copied, start) + EMAIL_MARK;
      copied = end;
      redacted++;
      at = text.indexOf("@", end);
    } else {
      at = text.indexOf("@", at + 1);
    }
  }
  if (redacted === 0) return { text, redacted };
  return { text: out + text.slice(copied), redacted };
}

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** a.b.c.d, each 0-255 written in 1 to 3 digits. */
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (p.length < 1 || p.length > 3) return false;
    for (let i = 0; i < p.length; i++) if (!isDigit(p.charCodeAt(i))) return false;
    if (Number(p) > 255) return false;
  }
  return true;
}

/**
 * An IPv6 address in text form (RFC 4291 2.2): eight groups of 1-4 hex digits, or fewer
 * with one "::", the last two groups optionally written as an IPv4 address. Times
 * ("10:00:00.123") and MAC addresses are not.
 */
export function isIPv6(s: string): boolean {
  const dbl = s.indexOf("::");
  if (dbl >= 0 && s.indexOf("::", dbl + 1) >= 0) return false;
  const groupsOf = (part: string, last: boolean): number => {
    if (part === "") return 0;
    const gs = part.split(":");
    let n = 0;
    for (let i = 0; i < gs.length; i++) {
      const g = gs[i]!;
      if (g.includes(".")) {
        // Only the very last group may be an IPv4 address.
        if (!last || i !== gs.length - 1 || !isIPv4(g)) return -1;
        n += 2;
        continue;
      }
      if (g.length < 1 || g.length > 4) return -1;
      for (let k = 0; k < g.length; k++) if (!isHexDigit(g.charCodeAt(k))) return -1;
      n++;
    }
    return n;
  };
  const head = dbl >= 0 ? s.slice(0, dbl) : "";
  const tail = dbl >= 0 ? s.slice(dbl + 2) : s;
  const h = groupsOf(head, false);
  const t = groupsOf(tail, true);
  if (h < 0 || t < 0) return false;
  return dbl >= 0 ? h + t <= 7 : t === 8;
}

function isIpRunChar(c: number): boolean {
  return isHexDigit(c) || c === 58 || c === 46;
}

/**
 * The IPv6 address within a run of hex digits, ':' and '.', if there is one: the run
 * itself, or the run without a stray ':' or '.' at either end ("ip:fe80::1" leaves
 * ":fe80::1" after the letters). Returns [start, end) relative to the run, or undefined.
 */
function ipv6Within(run: string): [number, number] | undefined {
  let a = 0;
  let b = run.length;
  for (let tries = 0; tries < 3; tries++) {
    const s = run.slice(a, b);
    if (s.length >= 2 && isIPv6(s)) return [a, b];
    if (b - a > 2 && run.charCodeAt(b - 1) === 46) b--;
    else if (b - a > 2 && run.charCodeAt(b - 1) === 58 && run.charCodeAt(b - 2) !== 58) b--;
    else if (b - a > 2 && run.charCodeAt(a) === 58 && run.charCodeAt(a + 1) !== 58) a++;
    else return undefined;
  }
  return undefined;
}

/**
 * Replaces IPv6 and IPv4 addresses with IP_MARK. IPv6 first, so "::ffff:192.0.2.1" goes as
 * one address. An IPv4 address is four dotted octets anywhere in a run of digits and dots
 * ("1.2.3.4.5" is cut whole: a version number that looks like an address is cut too).
 */
export function scrubIps(text: string): { text: string; redacted: number } {
  let redacted = 0;
  // IPv6: runs of [0-9A-Fa-f:.] with at least two ':'.
  let out = "";
  let copied = 0;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (!isIpRunChar(c)) {
      i++;
      continue;
    }
    const start = i;
    let colons = 0;
    while (i < n && isIpRunChar(text.charCodeAt(i))) {
      if (text.charCodeAt(i) === 58) colons++;
      i++;
    }
    if (colons < 2) continue;
    const found = ipv6Within(text.slice(start, i));
    if (!found) continue;
    out += text.slice(copied, start + found[0]) + IP_MARK;
    copied = start + found[1];
    redacted++;
  }
  const v6 = redacted === 0 ? text : out + text.slice(copied);
  // IPv4: maximal runs of digits and dots holding four dotted octets.
  out = "";
  copied = 0;
  let v4 = 0;
  i = 0;
  const m = v6.length;
  while (i < m) {
    if (!isDigit(v6.charCodeAt(i))) {
      i++;
      continue;
    }
    const start = i;
    while (i < m && (isDigit(v6.charCodeAt(i)) || v6.charCodeAt(i) === 46)) i++;
    const parts = v6.slice(start, i).split(".");
    let hit = false;
    for (let k = 0; k + 4 <= parts.length && !hit; k++) hit = isIPv4(parts.slice(k, k + 4).join("."));
    if (!hit) continue;
    out += v6.slice(copied, start) + IP_MARK;
    copied = i;
    v4++;
  }
  redacted += v4;
  return { text: v4 === 0 ? v6 : out + v6.slice(copied), redacted };
}

/** Card-like digit runs (pan.ts), then emails, then IP addresses. */
export function scrubText(text: string): Scrubbed {
  const pans = redactPans(text);
  const emails = scrubEmails(pans.text);
  const ips = scrubIps(emails.text);
  return { text: ips.text, pans: pans.redacted, emails: emails.redacted, ips: ips.redacted };
}

/** text cut to at most maxChars UTF-16 units without splitting a surrogate pair. */
export function truncateText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  let end = maxChars;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return text.slice(0, end);
}

/**
 * How far past a cut the text is scrubbed before cutting: a card number (at most 37
 * characters with separators) or an email (at most 64 + 1 + 255) that straddles the cut is
 * then seen whole and cut whole, instead of leaving the part before the cut readable.
 */
const SCRUB_MARGIN = 512;

/** scrubText of at most maxChars of text (the scrub looks a margin past the cut). */
export function scrubTruncated(text: string, maxChars: number): Scrubbed & { truncated: boolean } {
  const truncated = text.length > maxChars;
  const window = truncated ? truncateText(text, maxChars + SCRUB_MARGIN) : text;
  const s = scrubText(window);
  return { ...s, text: truncated ? truncateText(s.text, maxChars) : s.text, truncated };
}

// ---- known fields in text that is not JSON -------------------------------------------------------

/**
 * The end (exclusive) of the JSON string literal opening at `open` (a '"'), or the text's end
 * when it is never closed (a truncated record): its value then runs to the end.
 */
function stringEnd(text: string, open: number): { end: number; closed: boolean } {
  let i = open + 1;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 92) i += 2;
    else if (c === 34) return { end: i + 1, closed: true };
    else i++;
  }
  return { end: n, closed: false };
}

/** The string a literal stands for: JSON's reading when it is one, else its characters as written. */
function literalValue(text: string, open: number, end: number, closed: boolean): string {
  const body = text.slice(open, end);
  if (closed) {
    try {
      return JSON.parse(body) as string;
    } catch {
      // An invalid escape: take it as written.
    }
    return body.slice(1, -1);
  }
  return body.slice(1);
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

/** End of a bare JSON value (number, true, ...): up to ',', '}', ']', whitespace or a quote. */
function bareEnd(text: string, from: number): number {
  let i = from;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 44 || c === 125 || c === 93 || c === 34 || isSpace(c)) break;
    i++;
  }
  return i;
}

export interface FieldHit {
  field: string;
  /** The value as written (a string's content, or a bare token such as 4111111111111111). */
  value: string;
}

/**
 * Finds `"field": value` pairs in text that may not be valid JSON (truncated, a stray
 * character, a wrong type) and replaces each value of a field named in `fields` with
 * `replace(field, value)`, written as a JSON string. String values and bare values
 * (numbers, literals) are replaced; an object or array value is left to the other
 * scrubbers. A string never closed runs to the end of the text and is replaced whole.
 * `onField` also sees fields not replaced (to read a transaction_id).
 */
export function maskFieldsInText(
  text: string,
  fields: ReadonlySet<string>,
  replace: (field: string, value: string) => string,
  onField?: (hit: FieldHit) => void,
): { text: string; masked: string[] } {
  const masked: string[] = [];
  let out = "";
  let copied = 0;
  let i = text.indexOf('"');
  while (i >= 0 && i < text.length) {
    const key = stringEnd(text, i);
    if (!key.closed) break;
    let j = key.end;
    while (j < text.length && isSpace(text.charCodeAt(j))) j++;
    if (text.charCodeAt(j) !== 58) {
      // Not a key: this literal was a value (or stray); go on after it.
      i = text.indexOf('"', key.end);
      continue;
    }
    const name = literalValue(text, i, key.end, true);
    j++;
    while (j < text.length && isSpace(text.charCodeAt(j))) j++;
    if (j >= text.length) break;
    const c = text.charCodeAt(j);
    let valueEnd: number;
    let value: string;
    if (c === 34) {
      const v = stringEnd(text, j);
      valueEnd = v.end;
      value = literalValue(text, j, v.end, v.closed);
    } else if (c === 123 || c === 91) {
      // An object or array: its own keys are found as the scan goes on.
      i = text.indexOf('"', j);
      continue;
    } else {
      valueEnd = bareEnd(text, j);
      value = text.slice(j, valueEnd);
    }
    onField?.({ field: name, value });
    if (fields.has(name) && valueEnd > j) {
      out += text.slice(copied, j) + JSON.stringify(replace(name, value));
      copied = valueEnd;
      masked.push(name);
    }
    i = valueEnd >= text.length ? -1 : text.indexOf('"', valueEnd);
  }
  if (masked.length === 0) return { text, masked };
  return { text: out + text.slice(copied), masked };
}
