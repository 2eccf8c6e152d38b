/**
 * The one card-number (PAN) scanner: what counts as a card number in free text, for the two
 * jobs that need it.
 *
 * - redactPans() cuts card numbers out of text that must leave the process but cannot be
 *   masked field by field (the DLQ's copy of a record that failed decoding). It errs on the
 *   side of redacting: no Luhn check, no guessing what a number "really" is.
 * - findLuhnDigitRuns() reports card numbers left in an output (tests, PII scans, the
 *   dashboard's last line of defence). Outputs legitimately hold epoch milliseconds, hex ids
 *   and long decimals, so it reports only Luhn-valid numbers that are not evidently
 *   something else. Everything it reports, redactPans() cuts.
 *
 * The grammar both share:
 * - A digit is any Unicode decimal digit (\p{Nd}): "４１１１…" is as readable a card number as
 *   "4111…", and a record that fails decoding is exactly where such text turns up.
 * - A group is a maximal run of digits. Groups joined by exactly ONE separator form a run:
 *   "4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005". Separators are the
 *   space, no-break spaces (U+00A0, U+2007, U+202F), the hyphen-minus, the Unicode hyphens and
 *   dashes U+2010 to U+2015 and the minus sign U+2212. Anything else ends a run: ':', '.',
 *   ',', 'T', a tab, a newline, two separators in a row.
 * - A group of 20 or more digits is longer than any PAN: it is left alone and joins nothing.
 * - A run of 12 or more digits is card-like, Luhn-valid or not (a check digit altered by a
 *   typo or a fault still leaves the real card one computation away). 12 to 19 digits is a
 *   whole PAN; a run of 20+ digits made of several groups may be a PAN written next to other
 *   numbers ("4111 1111 1111 1111 2026"), so it is redacted as a whole.
 *
 * Redaction keeps the run's first 6 digits (the BIN) and its last 4, replaces every other
 * digit with '*' and keeps the separators: "4111111111111111" -> "411111******1111",
 * "4111 1111 1111 1111" -> "4111 11** **** 1111".
 *
 * What this means for values that are not cards (decided, not accidental):
 * - ISO 8601 times are never touched: "2026-12-02T10:11:12Z" is a run of 8 digits ("2026",
 *   "12", "02" joined by '-'), then 'T' and ':' end it; "2026-12-02 10:11:12" is 10.
 * - Epoch milliseconds (13 digits) and any other 12-19 digit number inside the redacted text
 *   ARE redacted: "1733135472000" -> "173313***2000". A 13-digit number starting with 4 is
 *   a valid Visa PAN length, and guessing "this one is a timestamp" is how a PAN gets
 *   through. The DLQ headers (source_timestamp, source_offset, ...) are written by the
 *   processor and never pass through redactPans(), so they stay exact.
 * - Canonical UUIDs (8-4-4-4-12 hex digits, e.g. transaction ids) are skipped whole: one
 *   random UUID in 30 holds a 12+ digit run by the rules above (groups of decimal-only hex
 *   joined by its dashes), and a UUID cannot carry a PAN. Any other id with a 12+ digit run
 *   (hex digests, numeric ids) is redacted.
 *
 * Both functions are one linear pass with no regular expression over the text (no
 * backtracking on hostile input) and allocate only for what they find.
 */
/** Shortest and longest PAN (ISO/IEC 7812). */
export const MIN_PAN_DIGITS = 12;
export const MAX_PAN_DIGITS = 19;
/** Digits a redacted run keeps: the BIN in front, the last four at the end (PCI DSS 3.4). */
export const KEPT_LEADING_DIGITS = 6;
export const KEPT_TRAILING_DIGITS = 4;

export interface PanRedaction {
  text: string;
  /** Card-like runs redacted (0: text is the input, unchanged). */
  redacted: number;
}

const ND = /^\p{Nd}$/u;
/** The first non-ASCII decimal digit (ARABIC-INDIC DIGIT ZERO): below it only 0-9 are digits. */
const FIRST_NON_ASCII_DIGIT = 0x660;

function isDigit(cp: number): boolean {
  if (cp < 128) return cp >= 48 && cp <= 57;
  return cp >= FIRST_NON_ASCII_DIGIT && ND.test(String.fromCodePoint(cp));
}

function isSeparator(cp: number): boolean {
  return (
    cp === 0x20 ||
    cp === 0x2d ||
    cp === 0xa0 ||
    cp === 0x2007 ||
    cp === 0x202f ||
    (cp >= 0x2010 && cp <= 0x2015) ||
    cp === 0x2212
  );
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function isAsciiAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

const UUID_CHARS = 36;

/**
 * True when a canonical UUID (8-4-4-4-12 hex digits) stands at i on its own (no letter or
 * digit glued after it). Transaction ids are UUIDs, and one in 30 has a card-like run of
 * decimal-only hex: cutting it would make the DLQ record unfindable by its id, and a UUID
 * cannot hold a PAN (its groups are fixed hex widths).
 */
function uuidAt(text: string, i: number): boolean {
  if (i + UUID_CHARS > text.length) return false;
  for (let k = 0; k < UUID_CHARS; k++) {
    const c = text.charCodeAt(i + k);
    if (k === 8 || k === 13 || k === 18 || k === 23) {
      if (c !== 45) return false;
    } else if (!isHex(c)) return false;
  }
  return i + UUID_CHARS === text.length || !isAsciiAlnum(text.charCodeAt(i + UUID_CHARS));
}

/** Letters and '_': a digit run touching one is part of an identifier. */
function isWordChar(cp: number): boolean {
  return (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122) || cp === 95;
}

/** Code point at i, or -1 past the end. */
function cpAt(text: string, i: number): number {
  return i < text.length ? text.codePointAt(i)! : -1;
}

function width(cp: number): number {
  return cp > 0xffff ? 2 : 1;
}

/**
 * The value 0-9 of a decimal digit. Unicode encodes every decimal digit set as ten
 * consecutive code points starting at zero, and sets that sit back to back start on
 * multiples of ten from the first one, so the value is the distance from the start of the
 * block of digits, modulo 10.
 */
function digitValue(cp: number): number {
  if (cp < 128) return cp - 48;
  let start = cp;
  while (start - 1 >= FIRST_NON_ASCII_DIGIT && isDigit(start - 1)) start--;
  return (cp - start) % 10;
}

/**
 * Walks text once and stops at every run of digit groups (see the module comment) with at
 * least MIN_PAN_DIGITS digits; groups of more than MAX_PAN_DIGITS digits are skipped and end
 * a run. The current run is exposed as parallel arrays of group start/end (UTF-16 indices)
 * and digit counts, reused from run to run, so scanning allocates nothing per run.
 */
class RunScanner {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly digits: number[] = [];
  /** Groups in the current run. */
  size = 0;
  /** Digits in the current run. */
  total = 0;
  readonly #text: string;
  #i = 0;

  constructor(text: string) {
    this.#text = text;
  }

  get start(): number {
    return this.starts[0]!;
  }

  get end(): number {
    return this.ends[this.size - 1]!;
  }

  /** Advances to the next card-like run; false at the end of the text. */
  next(): boolean {
    const text = this.#text;
    const n = text.length;
    this.size = 0;
    this.total = 0;
    let i = this.#i;
    while (i < n) {
      let cp = text.charCodeAt(i);
      if (isHex(cp) && (i === 0 || !isAsciiAlnum(text.charCodeAt(i - 1))) && uuidAt(text, i)) {
        // It ends any run before it; the scan resumes here and skips it on the next call.
        if (this.#found(i)) return true;
        i += UUID_CHARS;
        continue;
      }
      // Fast path: nothing below '0' or between '9' and the first non-ASCII digit starts a group.
      if (cp < 48 || (cp > 57 && cp < FIRST_NON_ASCII_DIGIT)) {
        i++;
        continue;
      }
      cp = text.codePointAt(i)!;
      if (!isDigit(cp)) {
        i += width(cp);
        continue;
      }
      const start = i;
      let digits = 0;
      for (let c = cp; c >= 0 && isDigit(c); c = cpAt(text, i)) {
        digits++;
        i += width(c);
      }
      if (digits > MAX_PAN_DIGITS) {
        if (this.#found(i)) return true;
        continue;
      }
      this.starts[this.size] = start;
      this.ends[this.size] = i;
      this.digits[this.size] = digits;
      this.size++;
      this.total += digits;
      // Exactly one separator, then a digit: the run goes on. Anything else ends it.
      const sep = cpAt(text, i);
      if (sep >= 0 && isSeparator(sep)) {
        const next = cpAt(text, i + width(sep));
        if (next >= 0 && isDigit(next)) {
          i += width(sep);
          continue;
        }
      }
      if (this.#found(i)) return true;
    }
    return this.#found(n);
  }

  /** Ends the current run at text index i: true if it is card-like, else it is dropped. */
  #found(i: number): boolean {
    this.#i = i;
    if (this.size > 0 && this.total >= MIN_PAN_DIGITS) return true;
    this.size = 0;
    this.total = 0;
    return false;
  }
}

/**
 * Redacts every card-like run (12+ digits, grouped or not, Luhn-valid or not) to its first 6
 * and last 4 digits with '*' in between. See the module comment for exactly what is cut.
 */
export function redactPans(text: string): PanRedaction {
  const runs = new RunScanner(text);
  let out = "";
  let copied = 0;
  let redacted = 0;
  while (runs.next()) {
    out += text.slice(copied, runs.start);
    const keepFrom = runs.total - KEPT_TRAILING_DIGITS;
    let d = 0;
    for (let g = 0; g < runs.size; g++) {
      if (g > 0) out += text.slice(runs.ends[g - 1]!, runs.starts[g]!);
      for (let i = runs.starts[g]!; i < runs.ends[g]!; ) {
        const w = width(text.codePointAt(i)!);
        out += d < KEPT_LEADING_DIGITS || d >= keepFrom ? text.slice(i, i + w) : "*";
        d++;
        i += w;
      }
    }
    copied = runs.end;
    redacted++;
  }
  if (redacted === 0) return { text, redacted };
  return { text: out + text.slice(copied), redacted };
}

/**
 * True when the run is evidently part of something that is not a card number: glued to a
 * letter, '_' or a dash that is not between two digit groups (hex ids, base64url tokens, UUID
 * segments, "id-123..."), or to a decimal point with digits on its other side (the fraction
 * or the integer part of a decimal such as -73.98565700000001).
 */
function gluedToNonCard(text: string, run: RunScanner): boolean {
  const s = run.start;
  const e = run.end;
  const before = s > 0 ? text.charCodeAt(s - 1) : 32;
  const after = e < text.length ? text.charCodeAt(e) : 32;
  if (isWordChar(before) || isWordChar(after) || before === 45 || after === 45) return true;
  if (before === 46 && s > 1 && isDigit(cpAt(text, s - 2))) return true;
  if (after === 46 && e + 1 < text.length && isDigit(cpAt(text, e + 1))) return true;
  return false;
}

/**
 * Card numbers still present in text, as ASCII digit strings (separators removed): every
 * Luhn-valid 12-19 digit number written as one group or as consecutive groups of a run (so
 * "4111 1111 1111 1111" is found, and so is a PAN inside a longer run). To stay usable on
 * real output, where one random 12-19 digit number in ten passes Luhn, it skips:
 * - runs glued to an identifier or a decimal (see gluedToNonCard);
 * - a single 13-digit group starting with 1-3: epoch milliseconds (2001-2096). No network
 *   issues 13-digit PANs outside Visa's 4-series.
 * A PAN glued to letters ("card4111...") is therefore not reported; search for the known
 * PANs when that matters. redactPans() cuts all of these regardless.
 */
export function findLuhnDigitRuns(text: string): string[] {
  const found: string[] = [];
  const runs = new RunScanner(text);
  /** Digit values of the current run, and the index of each group's first digit in it. */
  const values: number[] = [];
  const firsts: number[] = [];
  while (runs.next()) {
    if (gluedToNonCard(text, runs)) continue;
    let n = 0;
    for (let g = 0; g < runs.size; g++) {
      firsts[g] = n;
      for (let i = runs.starts[g]!; i < runs.ends[g]!; ) {
        const cp = text.codePointAt(i)!;
        values[n++] = digitValue(cp);
        i += width(cp);
      }
    }
    firsts[runs.size] = n;
    // Every window of whole consecutive groups holding 12-19 digits.
    for (let from = 0; from < runs.size; from++) {
      for (let to = from; to < runs.size; to++) {
        const a = firsts[from]!;
        const b = firsts[to + 1]!;
        const digits = b - a;
        if (digits > MAX_PAN_DIGITS) break;
        if (digits < MIN_PAN_DIGITS) continue;
        if (from === to && digits === 13 && values[a]! >= 1 && values[a]! <= 3) continue;
        if (!luhnValidRange(values, a, b)) continue;
        let pan = "";
        for (let k = a; k < b; k++) pan += String.fromCharCode(48 + values[k]!);
        found.push(pan);
      }
    }
  }
  return found;
}

/** Luhn check of digit values [from, to). */
function luhnValidRange(values: number[], from: number, to: number): boolean {
  let sum = 0;
  let double = false;
  for (let i = to - 1; i >= from; i--) {
    let d = values[i]!;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}
