/**
 * Cardholder PII, never stored: name, e-mail, IP address, card numbers and device ids are
 * re-derived on demand from a per-account random stream, so a million accounts cost no
 * memory for them and two processes with the same seed agree on every one. Derivation
 * happens on a fragment-cache miss (see Population), so it writes into scratch fields
 * instead of allocating an object per call.
 */
import { luhnCheckDigit } from "../core/schema.ts";
import { AliasTable, Rng } from "./random.ts";
import { BRAND_BIN_COUNT, BRAND_WEIGHTS, CITY_ISP, CITY_NAMES, MAIL_DOMAINS, MAIL_WEIGHTS } from "./world.ts";

/** Account-level PII derived on demand; allocated only on a fragment-cache miss. */
export interface Identity {
  readonly cardholderName: string;
  readonly email: string;
  readonly ipAddress: string;
  readonly cards: readonly string[];
  readonly devices: readonly string[];
}

const STREAM_BINS = 3;
const STREAM_PII = 0x10000000;

// 3^18: coprime with 10, so i -> i * PAN_MULTIPLIER mod 10^k is a bijection (unique PANs).
const PAN_MULTIPLIER = 387_420_489;

/** A BIN (issuer prefix) in the brand's published range: Visa, Mastercard, American Express. */
function makeBin(rng: Rng, brand: number): string {
  const digits = (n: number) => String(rng.below(10 ** n)).padStart(n, "0");
  if (brand === 0) return "4" + digits(5);
  if (brand === 1)
    return rng.chance(0.7) ? String(rng.int(51, 55)) + digits(4) : String(rng.int(2221, 2720)) + digits(2);
  return (rng.chance(0.5) ? "34" : "37") + digits(4);
}

export class IdentityDeriver {
  // Scratch output of derive(): no object per derivation.
  name = "";
  email = "";
  ip = "";
  card = "";
  device = "";

  readonly #seed: number;
  readonly #bins: string[][];
  readonly #binTables: AliasTable[];
  readonly #brandTable = new AliasTable(BRAND_WEIGHTS);
  readonly #mailTable = new AliasTable(MAIL_WEIGHTS);
  readonly #rng = new Rng(0);

  constructor(seed: number) {
    this.#seed = seed;
    const binRng = new Rng(seed, STREAM_BINS);
    this.#bins = BRAND_BIN_COUNT.map((count, brand) =>
      Array.from({ length: count }, () => makeBin(binRng, brand)),
    );
    // A few big issuers hold most cards.
    this.#binTables = BRAND_BIN_COUNT.map(
      (count) => new AliasTable(Array.from({ length: count }, () => binRng.logNormal(0, 1))),
    );
  }

  /**
   * Re-derives an account's PII from its own random stream into the scratch fields, building
   * strings only for the requested card and device (the others are drawn, so every value
   * keeps its place in the stream, but not formatted).
   */
  derive(account: number, city: number, cards: number, devices: number, card: number, device: number): void {
    const rng = this.#rng;
    rng.reseed(this.#seed, STREAM_PII + account);
    const c = city;
    const names = CITY_NAMES[c]!;
    const fi = rng.below(names.first.length);
    const li = rng.below(names.last.length);
    const f = names.firstKey[fi]!;
    const l = names.lastKey[li]!;
    const style = rng.below(5);
    let local =
      style === 0
        ? f + "." + l
        : style === 1
          ? f + l
          : style === 2
            ? f[0] + l
            : style === 3
              ? f + "_" + l
              : l + "." + f;
    if (rng.chance(0.6)) local += rng.chance(0.5) ? rng.below(100) : rng.int(1950, 2006);
    const isp = CITY_ISP[c]!;
    const domain = isp !== "" && rng.chance(0.25) ? isp : MAIL_DOMAINS[this.#mailTable.sample(rng)]!;
    if (rng.chance(0.1)) {
      const t = rng.below(10);
      this.ip = `2a0${t}:${rng.below(65536).toString(16)}:${rng.below(65536).toString(16)}:${rng.below(65536).toString(16)}::${rng.below(65536).toString(16)}`;
    } else {
      let o1 = 0;
      // Skip private, loopback, link-local, CGNAT and documentation-heavy first octets.
      do o1 = rng.int(1, 223);
      while (o1 === 10 || o1 === 100 || o1 === 127 || o1 === 169 || o1 === 172 || o1 === 192 || o1 === 198);
      this.ip = o1 + "." + rng.below(256) + "." + rng.below(256) + "." + rng.int(1, 254);
    }
    this.name = names.first[fi]! + " " + names.last[li]!;
    this.email = local + "@" + domain;
    for (let k = 0; k < cards; k++) {
      const brand = this.#brandTable.sample(rng);
      const bin = this.#bins[brand]![this.#binTables[brand]!.sample(rng)]!;
      if (k !== card) continue;
      const bodyLen = brand === 2 ? 8 : 9; // Amex 15 digits, Visa and Mastercard 16
      const mod = bodyLen === 8 ? 1e8 : 1e9;
      const body = ((account * 2 + k) * PAN_MULTIPLIER + (this.#seed % mod)) % mod;
      const partial = bin + String(body).padStart(bodyLen, "0");
      this.card = partial + luhnCheckDigit(partial);
    }
    for (let k = 0; k < devices; k++) {
      const hi = rng.hex32();
      const lo = rng.hex32();
      if (k === device) this.device = "dev_" + hi + lo;
    }
  }

  /** An account's PII as a plain object (tests, debugging; not for the hot path). */
  identity(account: number, city: number, cards: number, devices: number): Identity {
    const cardList: string[] = [];
    const deviceList: string[] = [];
    for (let k = 0; k < Math.max(cards, devices); k++) {
      this.derive(account, city, cards, devices, k, k);
      if (k < cards) cardList.push(this.card);
      if (k < devices) deviceList.push(this.device);
    }
    return {
      cardholderName: this.name,
      email: this.email,
      ipAddress: this.ip,
      cards: cardList,
      devices: deviceList,
    };
  }
}
