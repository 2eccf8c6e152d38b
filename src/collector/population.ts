/**
 * The simulated world behind the traffic: cardholders (accounts) and merchants.
 *
 * Sized for a million accounts in a collector pod: what the per-transaction path needs
 * (home city, spending scale, activity, card/device counts) lives in typed arrays; the PII
 * (name, email, ip, PANs, device ids) is never stored but re-derived on demand from a
 * per-account random stream, and the JSON fragments built from it sit in a bounded
 * direct-mapped cache. Every value is a pure function of (seed, account index), so two
 * processes with the same seed agree on every account without sharing anything.
 *
 * The static tables (cities, merchant categories, name pools...) are world.ts; the PII
 * derivation is identity.ts.
 */
import { checkInt } from "./checks.ts";
import { type Identity, IdentityDeriver } from "./identity.ts";
import { AliasTable, hashSeed, Rng } from "./random.ts";
import {
  CAT_CHARM,
  CAT_FACTOR,
  CAT_SHIFT,
  CAT_SIGMA,
  CITIES,
  type City,
  CP_CATEGORIES,
  MERCHANT_CATEGORIES,
  type MerchantCategory,
  MIN_MERCHANTS,
  MIX_MEAN,
  NCAT,
  ONLINE_CATEGORIES,
  ONLINE_SEED_MERCHANTS,
} from "./world.ts";

export type { Identity } from "./identity.ts";

export const DEFAULT_ACCOUNTS = 100_000;
export const DEFAULT_MERCHANTS = 5_000;
/** PAN bodies are a bijection of the account index that stays exact in a float64 up to here. */
export const MAX_ACCOUNTS = 10_000_000;

/** Normal amounts never go below this (minor units), so "tiny" amounts (<= 2.00) mean card testing. */
export const NORMAL_AMOUNT_FLOOR_MINOR = 250;
/** Normal amounts at or above this (minor units) are held to HIGH_AMOUNT_MAX_MEAN_MULTIPLE x the account mean. */
export const HIGH_AMOUNT_MINOR = 50_000;
export const HIGH_AMOUNT_MAX_MEAN_MULTIPLE = 3;

const DEG = Math.PI / 180;

export interface AccountProfile extends Identity {
  readonly index: number;
  readonly accountId: string;
  readonly city: City;
  readonly lat: number;
  readonly lon: number;
  readonly currency: string;
  /** Scale of the account's amounts in minor units; see MerchantCategory.factor. */
  readonly typicalAmountMinor: number;
  readonly meanAmountMinor: number;
  /** Relative transaction rate (log-normal, so a few accounts are heavy and most light). */
  readonly activity: number;
}

export interface MerchantProfile {
  readonly index: number;
  readonly merchantId: string;
  readonly category: MerchantCategory;
  /** null for online merchants. */
  readonly city: City | null;
  readonly lat: number;
  readonly lon: number;
}

export interface PopulationOptions {
  seed?: number | string;
  /** Default 100 000; at most 10 000 000. */
  accounts?: number;
  /** Default 5 000; at least MIN_MERCHANTS. */
  merchants?: number;
  /** Fragment-cache slots (rounded up to a power of two). Default: one per account, at most 2^18. */
  cacheSlots?: number;
}

interface MerchantList {
  readonly members: Int32Array;
  readonly table: AliasTable;
}

const STREAM_ACCOUNTS = 1;
const STREAM_MERCHANTS = 2;
const HOME_RADIUS_KM = 12;
const MERCHANT_RADIUS_KM = 10;
const DEFAULT_MAX_CACHE_SLOTS = 1 << 18;
const SLOT_STRIDE = 6;

function pointNear(rng: Rng, lat: number, lon: number, radiusKm: number): [number, number] {
  const r = radiusKm * Math.sqrt(rng.float());
  const theta = rng.float() * 2 * Math.PI;
  const dLat = (r * Math.cos(theta)) / 111.32;
  const dLon = (r * Math.sin(theta)) / (111.32 * Math.cos(lat * DEG));
  return [lat + dLat, lon + dLon];
}

function locationFragment(c: City, lat: number, lon: number): string {
  return (
    `"country":"${c.country}","city":${JSON.stringify(c.name)},` +
    `"lat":${lat.toFixed(4)},"lon":${lon.toFixed(4)},"event_time":"`
  );
}

/**
 * A flat copy of a concatenated string. V8 keeps `a + b` as a rope; a cached fragment that
 * stays a rope is re-walked leaf by leaf every time a record containing it is encoded.
 * Slicing flattens the source first and the slice is a single leaf over that flat copy.
 * (The `Number(s)` trick of the flatstr package is not reliable here: optimised code may
 * drop the unused conversion.)
 */
function flatString(s: string): string {
  return (" " + s).slice(1);
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function checkIndex(what: string, index: number, size: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= size) {
    throw new RangeError(`${what} index ${index} is outside [0, ${size})`);
  }
}

export class Population {
  readonly seed: number;
  readonly accounts: number;
  readonly merchants: number;
  /** Prefix that keeps ids of populations with different seeds apart (e.g. two collector replicas). */
  readonly idTag: string;

  /**
   * Per account, packed so the per-record path takes one cache miss instead of four at a
   * million accounts: bits 0-5 home city, bit 6 second card, bit 7 second device, bits 8-31
   * typical ticket in minor units. Read through cityOf / cardsOf / devicesOf / typicalMinorOf.
   */
  private readonly profile: Uint32Array;
  readonly homeLat: Float32Array;
  readonly homeLon: Float32Array;
  readonly activity: Float32Array;

  readonly merchantCategory: Uint8Array;
  /** City index, or -1 for online merchants. */
  readonly merchantCity: Int16Array;
  readonly merchantLat: Float32Array;
  readonly merchantLon: Float32Array;

  private readonly activityTable: AliasTable;
  private readonly categoryTable: AliasTable;
  private readonly lists: MerchantList[];
  private readonly merchantIds: string[];
  private readonly merchantFragments: string[];
  private readonly pii: IdentityDeriver;

  private readonly cacheMask: number;
  /** Which account each slot holds (-1: none). */
  private readonly slotAccount: Int32Array;
  /**
   * SLOT_STRIDE strings per slot, side by side so one record's lookups share a cache line:
   * account id, home fragment, then the identity fragment per (card 0|1) x (device 0|1).
   * "" = not built yet.
   */
  private readonly slotStrings: string[];

  constructor(options: PopulationOptions = {}) {
    this.seed = hashSeed(options.seed ?? 0);
    this.accounts = checkInt("accounts", options.accounts ?? DEFAULT_ACCOUNTS, 1, MAX_ACCOUNTS);
    this.merchants = checkInt("merchants", options.merchants ?? DEFAULT_MERCHANTS, MIN_MERCHANTS, 1_000_000);
    this.idTag = this.seed.toString(16).padStart(8, "0");
    const n = this.accounts;

    this.pii = new IdentityDeriver(this.seed);
    this.categoryTable = new AliasTable(MERCHANT_CATEGORIES.map((c) => c.share));

    const rng = new Rng(this.seed, STREAM_ACCOUNTS);
    const cityTable = new AliasTable(CITIES.map((c) => c.weight));
    this.profile = new Uint32Array(n);
    this.homeLat = new Float32Array(n);
    this.homeLon = new Float32Array(n);
    this.activity = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const c = cityTable.sample(rng);
      const home = CITIES[c]!;
      const [lat, lon] = pointNear(rng, home.lat, home.lon, HOME_RADIUS_KM);
      this.homeLat[i] = lat;
      this.homeLon[i] = lon;
      // Typical ticket: median 30.00, clamped so no account is absurdly poor or rich.
      const typical = Math.min(40_000, Math.max(400, Math.round(rng.logNormal(Math.log(3000), 0.7))));
      this.activity[i] = rng.logNormal(0, 1);
      const twoCards = rng.chance(0.35) ? 64 : 0;
      const twoDevices = rng.chance(0.45) ? 128 : 0;
      this.profile[i] = c | twoCards | twoDevices | (typical << 8);
    }
    this.activityTable = new AliasTable(this.activity);

    const m = this.merchants;
    const mrng = new Rng(this.seed, STREAM_MERCHANTS);
    this.merchantCategory = new Uint8Array(m);
    this.merchantCity = new Int16Array(m);
    this.merchantLat = new Float32Array(m);
    this.merchantLon = new Float32Array(m);
    this.merchantIds = new Array<string>(m);
    this.merchantFragments = new Array<string>(m);
    const popularity = new Float64Array(m);
    // Every city gets every card-present category and every online category a few
    // merchants first, so scenario code never finds an empty list; the rest follow the mix.
    let j = 0;
    for (let c = 0; c < CITIES.length; c++)
      for (const k of CP_CATEGORIES) this.placeMerchant(mrng, j++, k, c);
    for (const k of ONLINE_CATEGORIES)
      for (let r = 0; r < ONLINE_SEED_MERCHANTS; r++) this.placeMerchant(mrng, j++, k, -1);
    while (j < m) {
      const k = this.categoryTable.sample(mrng);
      this.placeMerchant(mrng, j++, k, MERCHANT_CATEGORIES[k]!.online ? -1 : cityTable.sample(mrng));
    }
    for (let i = 0; i < m; i++) popularity[i] = mrng.logNormal(0, 0.8);
    const buckets: number[][] = Array.from({ length: (CITIES.length + 1) * NCAT }, () => []);
    for (let i = 0; i < m; i++)
      buckets[this.listIndex(this.merchantCategory[i]!, this.merchantCity[i]!)]!.push(i);
    this.lists = buckets.map((members) => {
      const arr = Int32Array.from(members);
      return {
        members: arr,
        table: new AliasTable(members.length > 0 ? Array.from(arr, (x) => popularity[x]!) : [1]),
      };
    });

    const slots = nextPow2(
      checkInt("cacheSlots", options.cacheSlots ?? Math.min(n, DEFAULT_MAX_CACHE_SLOTS), 1, 1 << 24),
    );
    this.cacheMask = slots - 1;
    this.slotAccount = new Int32Array(slots).fill(-1);
    this.slotStrings = new Array<string>(slots * SLOT_STRIDE).fill("");
  }

  /** Index into CITIES of the account's home. */
  cityOf(account: number): number {
    return this.profile[account]! & 63;
  }

  /** 1 or 2. */
  cardsOf(account: number): number {
    return ((this.profile[account]! >>> 6) & 1) + 1;
  }

  /** 1 or 2. */
  devicesOf(account: number): number {
    return ((this.profile[account]! >>> 7) & 1) + 1;
  }

  /** Scale of the account's amounts in minor units; see MerchantCategory.factor. */
  typicalMinorOf(account: number): number {
    return this.profile[account]! >>> 8;
  }

  private placeMerchant(rng: Rng, j: number, cat: number, cityIndex: number): void {
    const cat0 = MERCHANT_CATEGORIES[cat]!;
    const id = `mer_${this.idTag}_${String(j).padStart(6, "0")}`;
    this.merchantIds[j] = id;
    this.merchantCategory[j] = cat;
    this.merchantCity[j] = cityIndex;
    let frag = `","merchant_id":"${id}","merchant_category":"${cat0.mcc}",`;
    if (cityIndex >= 0) {
      const c = CITIES[cityIndex]!;
      const [lat, lon] = pointNear(rng, c.lat, c.lon, MERCHANT_RADIUS_KM);
      this.merchantLat[j] = lat;
      this.merchantLon[j] = lon;
      frag += locationFragment(c, this.merchantLat[j]!, this.merchantLon[j]!);
    } else {
      this.merchantLat[j] = Number.NaN;
      this.merchantLon[j] = Number.NaN;
    }
    this.merchantFragments[j] = flatString(frag);
  }

  private listIndex(cat: number, cityIndex: number): number {
    return (cityIndex < 0 ? CITIES.length : cityIndex) * NCAT + cat;
  }

  /** An account drawn by activity weight. */
  sampleAccount(rng: Rng): number {
    return this.activityTable.sample(rng);
  }

  /** A merchant for a normal transaction: category by share, then a merchant in the home city or online. */
  sampleMerchant(rng: Rng, account: number): number {
    return this.sampleMerchantOf(rng, this.categoryTable.sample(rng), this.cityOf(account));
  }

  /** A merchant of category `cat`, by popularity: in `cityIndex` if the category is card-present, else online. */
  sampleMerchantOf(rng: Rng, cat: number, cityIndex: number): number {
    const list = this.lists[this.listIndex(cat, MERCHANT_CATEGORIES[cat]!.online ? -1 : cityIndex)]!;
    return list.members[list.table.sample(rng)]!;
  }

  isOnline(merchant: number): boolean {
    return this.merchantCity[merchant]! < 0;
  }

  /** Expected amount of the account's normal transactions, in minor units. */
  meanAmountMinor(account: number): number {
    return this.typicalMinorOf(account) * MIX_MEAN;
  }

  /**
   * A normal amount in minor units for `account` at `merchant`. Always >= 2.50, and an amount
   * >= 500.00 is at most 3x the account mean (redrawn, then clamped), so normal traffic
   * cannot look like card testing or an amount spike against the account's own history.
   */
  amountMinor(rng: Rng, account: number, merchant: number): number {
    const cat = this.merchantCategory[merchant]!;
    const typical = this.typicalMinorOf(account);
    const cap = HIGH_AMOUNT_MAX_MEAN_MULTIPLE * typical * MIX_MEAN;
    let minor = 0;
    for (let attempt = 0; attempt < 4; attempt++) {
      minor = Math.round(
        typical * CAT_FACTOR[cat]! * Math.exp(CAT_SIGMA[cat]! * rng.normal() + CAT_SHIFT[cat]!),
      );
      if (CAT_CHARM[cat] === 1) minor = minor - (minor % 100) + 99;
      if (minor < HIGH_AMOUNT_MINOR || minor <= cap) break;
    }
    if (minor >= HIGH_AMOUNT_MINOR && minor > cap)
      minor = cap >= HIGH_AMOUNT_MINOR ? Math.floor(cap) : HIGH_AMOUNT_MINOR - 1;
    if (minor < NORMAL_AMOUNT_FLOOR_MINOR)
      minor = NORMAL_AMOUNT_FLOOR_MINOR + rng.below(NORMAL_AMOUNT_FLOOR_MINOR);
    return minor;
  }

  /** Offset of `account`'s strings in slotStrings, the slot (re)claimed on a miss. */
  private slot(account: number): number {
    const s = account & this.cacheMask;
    const b = s * SLOT_STRIDE;
    if (this.slotAccount[s] !== account) {
      this.slotAccount[s] = account;
      const strings = this.slotStrings;
      strings[b] = flatString(`acc_${this.idTag}_${String(account).padStart(7, "0")}`);
      for (let i = 1; i < SLOT_STRIDE; i++) strings[b + i] = "";
    }
    return b;
  }

  /** The account id (Kafka key). */
  accountId(account: number): string {
    return this.slotStrings[this.slot(account)]!;
  }

  /**
   * JSON from the closing quote of transaction_id to the opening quote of amount: account,
   * card, cardholder PII, device and currency. Constant per (account, card, device).
   */
  identityFragment(account: number, card: number, device: number): string {
    const b = this.slot(account);
    const k = b + 2 + card * 2 + device;
    const cached = this.slotStrings[k]!;
    if (cached !== "") return cached;
    this.derive(account, card, device);
    const frag =
      '","account_id":"' +
      this.slotStrings[b] +
      '","card_number":"' +
      this.pii.card +
      '","cardholder_name":"' +
      this.pii.name +
      '","email":"' +
      this.pii.email +
      '","ip_address":"' +
      this.pii.ip +
      '","device_id":"' +
      this.pii.device +
      '","currency":"' +
      CITIES[this.cityOf(account)]!.currency +
      '","amount":"';
    const flat = flatString(frag);
    this.slotStrings[k] = flat;
    return flat;
  }

  /** JSON for an online transaction's place: the cardholder's home, up to the opening quote of event_time. */
  homeFragment(account: number): string {
    const k = this.slot(account) + 1;
    const cached = this.slotStrings[k]!;
    if (cached !== "") return cached;
    const frag = locationFragment(
      CITIES[this.cityOf(account)]!,
      this.homeLat[account]!,
      this.homeLon[account]!,
    );
    const flat = flatString(frag);
    this.slotStrings[k] = flat;
    return flat;
  }

  /**
   * JSON from the closing quote of amount: merchant id and MCC, plus for card-present
   * merchants their location up to the opening quote of event_time (online ones are
   * followed by homeFragment).
   */
  merchantFragment(merchant: number): string {
    return this.merchantFragments[merchant]!;
  }

  /** Derives the account's PII into this.pii's scratch fields. */
  private derive(account: number, card: number, device: number): void {
    this.pii.derive(
      account,
      this.cityOf(account),
      this.cardsOf(account),
      this.devicesOf(account),
      card,
      device,
    );
  }

  /** An account's PII as a plain object (tests, debugging; not for the hot path). */
  deriveIdentity(account: number): Identity {
    return this.pii.identity(account, this.cityOf(account), this.cardsOf(account), this.devicesOf(account));
  }

  /** Everything about one account, as a plain object (tests, debugging; not for the hot path). */
  account(account: number): AccountProfile {
    checkIndex("account", account, this.accounts);
    const c = CITIES[this.cityOf(account)]!;
    return {
      index: account,
      accountId: this.accountId(account),
      city: c,
      lat: this.homeLat[account]!,
      lon: this.homeLon[account]!,
      currency: c.currency,
      typicalAmountMinor: this.typicalMinorOf(account),
      meanAmountMinor: this.meanAmountMinor(account),
      activity: this.activity[account]!,
      ...this.deriveIdentity(account),
    };
  }

  merchant(merchant: number): MerchantProfile {
    checkIndex("merchant", merchant, this.merchants);
    const ci = this.merchantCity[merchant]!;
    return {
      index: merchant,
      merchantId: this.merchantIds[merchant]!,
      category: MERCHANT_CATEGORIES[this.merchantCategory[merchant]!]!,
      city: ci >= 0 ? CITIES[ci]! : null,
      lat: this.merchantLat[merchant]!,
      lon: this.merchantLon[merchant]!,
    };
  }
}
