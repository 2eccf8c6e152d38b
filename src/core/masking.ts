/**
 * PII masking for everything that leaves the processor (warehouse rows, alerts, logs).
 *
 * Card numbers become BIN + last digits + a token; name, email, IP and device become tokens
 * (keyed HMAC-SHA256 per kind: pii-tokens.ts). Masked rows are all any sink receives.
 *
 * Cost: five tokens per transaction sit on the hot path and each HMAC costs ~2-3 µs
 * (node:crypto), so maskRow memoises per account (a bounded two-generation cache): card,
 * name, email, IP and device rarely change for an account, so a hit is one Map lookup plus
 * five string comparisons and no HMAC. An account that switches between two cards, IPs or
 * devices (a second card, phone and laptop, home and mobile) finds the previous one in the
 * memo too, so that costs no HMAC either. Measured on the traffic generator's records: a
 * per-kind value cache consulted on memo misses cost more in Map inserts and garbage than
 * the shared values it found (maskRow 22.7 vs 19.5 µs per record at 1M accounts, 11.7 vs
 * 10.9 at 100K), so the row path goes straight to the HMAC on a miss. token() and maskCard(), used off the row path, have per-value caches.
 * The caches hold raw values as keys: they live only in this process's memory, are bounded,
 * and are never serialised (clearCache() drops them).
 *
 * Coordinates are coarsened in the row (2 decimals, ~1 km, by default): a home latitude and
 * longitude to the metre next to account_id locates a person. Rules never see the row: they
 * run on the transaction in the window, at full precision, before and apart from masking.
 */
import type { MaskedCard } from "../contracts/alert.ts";
import type { MaskedTransaction, RowPlacement } from "../contracts/rows.ts";
import type { Transaction } from "../contracts/transaction.ts";
import { ErrorCodes, PaystreamError } from "./errors.ts";
import { PiiTokenizer, TOKEN_KINDS, type TokenKind } from "./pii-tokens.ts";
import { formatMinor } from "./schema.ts";
import { type CacheStats, TwoGenerationCache } from "./token-cache.ts";

export { MIN_KEY_BYTES, TOKEN_KINDS, type TokenKind } from "./pii-tokens.ts";

/**
 * 64K per generation. With node:crypto a memo miss costs ~2x what the hand-written HMAC did,
 * so the memo was doubled to win it back where accounts repeat: on the traffic generator's
 * 100K accounts the steady-state hit rate goes from 68% (32K) to 92%, and maskRow from 8.4 to
 * 4.9 µs per record, what the hand-written HMAC cost at 32K (4.7 µs). Where every account is
 * new (1M accounts, each seen once) nothing can be cached: ~18 µs instead of ~10.
 */
export const DEFAULT_CACHE_ENTRIES = 65_536;

/**
 * Decimal places of lat/lon kept in warehouse rows. 2 decimals is ~1.1 km of latitude: a
 * town district, enough for geographic analysis of fraud, not enough to find a home.
 */
export const DEFAULT_COORDINATE_DECIMALS = 2;
/** Most decimals a row may keep: 6 is ~0.1 m, beyond any payment terminal's fix. */
export const MAX_COORDINATE_DECIMALS = 6;

/**
 * Last values seen for an account and their masks (internal memo of maskRow), and for the
 * fields accounts switch back and forth (card, IP, device) the value before.
 */
interface AccountMasks {
  pan: string;
  card: MaskedCard;
  prevPan: string;
  prevCard: MaskedCard;
  name: string;
  nameToken: string;
  email: string;
  emailToken: string;
  ip: string;
  ipToken: string;
  prevIp: string;
  prevIpToken: string;
  device: string;
  deviceToken: string;
  prevDevice: string;
  prevDeviceToken: string;
}

export interface MaskerOptions {
  /**
   * Entries per generation in each cache (accounts in maskRow's memo; values of each kind
   * and masked cards for token() and maskCard()); a cache holds at most twice this. Size it
   * to the accounts active within a few minutes. A memoised account costs ~700 B (measured)
   * plus the raw strings it keeps alive (~150 B), so the default, 65 536, holds up to 128K
   * accounts in ~110 MB.
   */
  cacheEntries?: number;
  /**
   * Decimal places of lat/lon in rows (0-6, default DEFAULT_COORDINATE_DECIMALS). Only the
   * row is coarsened: the transaction the rules see keeps full precision.
   */
  coordinateDecimals?: number;
}

/**
 * `value` rounded to the decimals `scale` (10^decimals) stands for: the nearest double to
 * a number with that many decimals, so it is stored and printed as such (51.51, not
 * 51.510000000000005). Half rounds up; -0 becomes 0.
 */
export function coarsenCoordinate(value: number, scale: number): number {
  return Math.round(value * scale) / scale + 0;
}

export type MaskerCacheStats = CacheStats;

export class Masker {
  readonly #tokens: PiiTokenizer;
  readonly #values: Record<TokenKind, TwoGenerationCache<string>>;
  readonly #cards: TwoGenerationCache<MaskedCard>;
  readonly #accounts: TwoGenerationCache<AccountMasks>;
  /** 10^coordinateDecimals. */
  readonly #coordinateScale: number;

  /** key: the masking secret (>= 16 bytes, from a secret store; there is no default). */
  constructor(key: Uint8Array, options: MaskerOptions = {}) {
    this.#tokens = new PiiTokenizer(key);
    const limit = options.cacheEntries ?? DEFAULT_CACHE_ENTRIES;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new PaystreamError(ErrorCodes.CONFIG_INVALID, "masking cacheEntries must be a positive integer");
    }
    this.#values = {
      card: new TwoGenerationCache(limit),
      name: new TwoGenerationCache(limit),
      email: new TwoGenerationCache(limit),
      ip: new TwoGenerationCache(limit),
      device: new TwoGenerationCache(limit),
    };
    this.#cards = new TwoGenerationCache(limit);
    this.#accounts = new TwoGenerationCache(limit);
    const decimals = options.coordinateDecimals ?? DEFAULT_COORDINATE_DECIMALS;
    if (!Number.isInteger(decimals) || decimals < 0 || decimals > MAX_COORDINATE_DECIMALS) {
      throw new PaystreamError(
        ErrorCodes.CONFIG_INVALID,
        `masking coordinateDecimals must be an integer from 0 to ${MAX_COORDINATE_DECIMALS}`,
      );
    }
    this.#coordinateScale = 10 ** decimals;
  }

  /**
   * Keyed token of a value. Emails and IPs are case-insensitive (mailbox domains, IPv6
   * hex), so they are trimmed and lowercased first; other kinds are tokenised as given.
   */
  token(kind: TokenKind, value: string): string {
    const cache = this.#values[kind];
    let tok = cache.get(value);
    if (tok === undefined) {
      tok = this.#tokens.token(kind, value);
      cache.set(value, tok);
    }
    return tok;
  }

  /**
   * BIN + last digits + token. PCI DSS allows at most the first 6 and last 4 digits to be
   * shown; for PANs under 15 digits fewer trailing digits are kept so that at least 5 stay
   * hidden (6 + 4 of a 12-digit PAN would leave 2 unknown digits, one of them fixed by
   * the Luhn check).
   */
  maskCard(pan: string): MaskedCard {
    let card = this.#cards.get(pan);
    if (card === undefined) {
      card = this.#computeCard(pan);
      this.#cards.set(pan, card);
    }
    return card;
  }

  #computeCard(pan: string): MaskedCard {
    const shown = Math.max(0, Math.min(4, pan.length - 6 - 5));
    return Object.freeze({
      bin: pan.slice(0, 6),
      last4: shown === 0 ? "" : pan.slice(pan.length - shown),
      token: this.#tokens.token("card", pan),
    });
  }

  /**
   * The masked card of a transaction, from maskRow's memo: for an alert on a transaction
   * just masked into its row, one Map lookup and no token.
   */
  cardOf(tx: Transaction): MaskedCard {
    return this.#identity(tx).card;
  }

  /** The masked transaction (no placement fields): maskRow without them, for tests and tools. */
  maskTransaction(tx: Transaction): MaskedTransaction {
    const {
      kafka_partition: _p,
      kafka_offset: _o,
      processed_at_ms: _t,
      is_late: _l,
      ...row
    } = this.maskRow(tx, 0, "0", 0, false);
    return row;
  }

  /**
   * The warehouse row of a validated transaction, placement included, built as one object
   * literal (one allocation, one hidden class: adding fields afterwards would reshape it).
   */
  maskRow(
    tx: Transaction,
    kafkaPartition: number,
    kafkaOffset: string,
    processedAtMs: number,
    isLate: boolean,
  ): MaskedTransaction & RowPlacement {
    const m = this.#identity(tx);
    const card = m.card;
    return {
      transaction_id: tx.transaction_id,
      account_id: tx.account_id,
      schema_version: tx.schema_version,
      card_bin: card.bin,
      card_last4: card.last4,
      card_token: card.token,
      name_token: m.nameToken,
      email_token: m.emailToken,
      ip_token: m.ipToken,
      device_token: m.deviceToken,
      amount: formatMinor(tx.amountMinor),
      amount_minor: tx.amountMinor,
      currency: tx.currency,
      merchant_id: tx.merchant_id,
      merchant_category: tx.merchant_category,
      country: tx.country,
      city: tx.city,
      lat: coarsenCoordinate(tx.lat, this.#coordinateScale),
      lon: coarsenCoordinate(tx.lon, this.#coordinateScale),
      event_time: tx.event_time,
      event_time_ms: tx.eventTimeMs,
      kafka_partition: kafkaPartition,
      kafka_offset: kafkaOffset,
      processed_at_ms: processedAtMs,
      is_late: isLate,
    };
  }

  /** The account's current masks, memoised per account; only a new value costs a token. */
  #identity(tx: Transaction): AccountMasks {
    const tokens = this.#tokens;
    let m = this.#accounts.get(tx.account_id);
    if (m === undefined) {
      const card = this.#computeCard(tx.card_number);
      const ipToken = tokens.token("ip", tx.ip_address);
      const deviceToken = tokens.token("device", tx.device_id);
      m = {
        pan: tx.card_number,
        card,
        prevPan: tx.card_number,
        prevCard: card,
        name: tx.cardholder_name,
        nameToken: tokens.token("name", tx.cardholder_name),
        email: tx.email,
        emailToken: tokens.token("email", tx.email),
        ip: tx.ip_address,
        ipToken,
        prevIp: tx.ip_address,
        prevIpToken: ipToken,
        device: tx.device_id,
        deviceToken,
        prevDevice: tx.device_id,
        prevDeviceToken: deviceToken,
      };
      this.#accounts.set(tx.account_id, m);
      return m;
    }
    // Holding the latest value per field keeps the record current as an account moves to a
    // new device or IP; switching back to the previous one swaps the two.
    const pan = tx.card_number;
    if (m.pan !== pan) {
      const card = m.prevPan === pan ? m.prevCard : this.#computeCard(pan);
      m.prevPan = m.pan;
      m.prevCard = m.card;
      m.pan = pan;
      m.card = card;
    }
    if (m.name !== tx.cardholder_name) {
      m.name = tx.cardholder_name;
      m.nameToken = tokens.token("name", tx.cardholder_name);
    }
    if (m.email !== tx.email) {
      m.email = tx.email;
      m.emailToken = tokens.token("email", tx.email);
    }
    const ip = tx.ip_address;
    if (m.ip !== ip) {
      const token = m.prevIp === ip ? m.prevIpToken : tokens.token("ip", ip);
      m.prevIp = m.ip;
      m.prevIpToken = m.ipToken;
      m.ip = ip;
      m.ipToken = token;
    }
    const device = tx.device_id;
    if (m.device !== device) {
      const token = m.prevDevice === device ? m.prevDeviceToken : tokens.token("device", device);
      m.prevDevice = m.device;
      m.prevDeviceToken = m.deviceToken;
      m.device = device;
      m.deviceToken = token;
    }
    return m;
  }

  /** Tokens actually computed (HMACs run) since the Masker was made: what the caches save. */
  get tokensComputed(): number {
    return this.#tokens.computed;
  }

  cacheStats(): Record<TokenKind | "cardMask" | "account", MaskerCacheStats> {
    const v = this.#values;
    return {
      card: v.card.stats(),
      name: v.name.stats(),
      email: v.email.stats(),
      ip: v.ip.stats(),
      device: v.device.stats(),
      cardMask: this.#cards.stats(),
      account: this.#accounts.stats(),
    };
  }

  /** Drops every memoised token and card (e.g. before a heap snapshot, or on key rotation). */
  clearCache(): void {
    for (const kind of TOKEN_KINDS) this.#values[kind].clear();
    this.#cards.clear();
    this.#accounts.clear();
  }
}
