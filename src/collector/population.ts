/**
 * The simulated world behind the traffic: cardholders (accounts) and merchants.
 *
 * Sized for a million accounts in a collector pod: what the per-transaction path needs
 * (home city, spending scale, activity, card/device counts) lives in typed arrays; the PII
 * (name, email, ip, PANs, device ids) is never stored but re-derived on demand from a
 * per-account random stream, and the JSON fragments built from it sit in a bounded
 * direct-mapped cache. Every value is a pure function of (seed, account index), so two
 * processes with the same seed agree on every account without sharing anything.
 */
import { ConfigError } from "../core/errors.ts";
import { haversineKm } from "../core/rules.ts";
import { luhnCheckDigit } from "../core/schema.ts";
import { AliasTable, hashSeed, Rng } from "./random.ts";

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

type NamePool =
  | "en"
  | "es"
  | "pt"
  | "fr"
  | "de"
  | "nl"
  | "it"
  | "fi"
  | "gr"
  | "ja"
  | "ko"
  | "zh"
  | "hi"
  | "ar"
  | "za";

interface Country {
  /**
   * The agreed rules compare raw amounts (500.00, 2.00...) across accounts, so amounts are
   * on one USD-like scale everywhere; countries whose currency is far from that scale
   * (JPY, INR, BRL...) bill in USD, as many cross-border and multi-currency cards do.
   */
  currency: string;
  names: NamePool;
  /** A national mail provider, used for some addresses next to the global ones. */
  isp: string | null;
}

const COUNTRIES: Record<string, Country> = {
  US: { currency: "USD", names: "en", isp: "comcast.net" },
  CA: { currency: "CAD", names: "en", isp: "rogers.com" },
  GB: { currency: "GBP", names: "en", isp: "btinternet.com" },
  IE: { currency: "EUR", names: "en", isp: "eircom.net" },
  FR: { currency: "EUR", names: "fr", isp: "orange.fr" },
  DE: { currency: "EUR", names: "de", isp: "web.de" },
  NL: { currency: "EUR", names: "nl", isp: "ziggo.nl" },
  BE: { currency: "EUR", names: "fr", isp: "skynet.be" },
  ES: { currency: "EUR", names: "es", isp: "telefonica.net" },
  IT: { currency: "EUR", names: "it", isp: "libero.it" },
  PT: { currency: "EUR", names: "pt", isp: "sapo.pt" },
  CH: { currency: "CHF", names: "de", isp: "bluewin.ch" },
  AT: { currency: "EUR", names: "de", isp: "gmx.at" },
  FI: { currency: "EUR", names: "fi", isp: "elisa.fi" },
  GR: { currency: "EUR", names: "gr", isp: "otenet.gr" },
  JP: { currency: "USD", names: "ja", isp: "yahoo.co.jp" },
  KR: { currency: "USD", names: "ko", isp: "naver.com" },
  HK: { currency: "USD", names: "zh", isp: "netvigator.com" },
  SG: { currency: "SGD", names: "zh", isp: "singnet.com.sg" },
  AU: { currency: "AUD", names: "en", isp: "bigpond.com" },
  NZ: { currency: "NZD", names: "en", isp: "xtra.co.nz" },
  IN: { currency: "USD", names: "hi", isp: "rediffmail.com" },
  AE: { currency: "USD", names: "ar", isp: "eim.ae" },
  BR: { currency: "USD", names: "pt", isp: "uol.com.br" },
  MX: { currency: "USD", names: "es", isp: "prodigy.net.mx" },
  AR: { currency: "USD", names: "es", isp: "fibertel.com.ar" },
  ZA: { currency: "USD", names: "za", isp: "telkomsa.net" },
};

export interface City {
  readonly name: string;
  /** ISO 3166-1 alpha-2. */
  readonly country: string;
  readonly currency: string;
  readonly lat: number;
  readonly lon: number;
  /** Relative share of accounts and merchants (roughly the metro population in millions). */
  readonly weight: number;
}

function city(name: string, country: string, lat: number, lon: number, weight: number): City {
  return { name, country, currency: COUNTRIES[country]!.currency, lat, lon, weight };
}

export const CITIES: readonly City[] = [
  city("New York", "US", 40.7128, -74.006, 19),
  city("Los Angeles", "US", 34.0522, -118.2437, 13),
  city("Chicago", "US", 41.8781, -87.6298, 9),
  city("Houston", "US", 29.7604, -95.3698, 7),
  city("San Francisco", "US", 37.7749, -122.4194, 5),
  city("Miami", "US", 25.7617, -80.1918, 6),
  city("Seattle", "US", 47.6062, -122.3321, 4),
  city("Boston", "US", 42.3601, -71.0589, 5),
  city("Toronto", "CA", 43.6532, -79.3832, 6),
  city("Vancouver", "CA", 49.2827, -123.1207, 2.6),
  city("Montreal", "CA", 45.5019, -73.5674, 4.2),
  city("London", "GB", 51.5074, -0.1278, 9),
  city("Manchester", "GB", 53.4808, -2.2426, 2.8),
  city("Dublin", "IE", 53.3498, -6.2603, 1.4),
  city("Paris", "FR", 48.8566, 2.3522, 11),
  city("Lyon", "FR", 45.764, 4.8357, 2.3),
  city("Berlin", "DE", 52.52, 13.405, 3.7),
  city("Munich", "DE", 48.1351, 11.582, 2.6),
  city("Frankfurt", "DE", 50.1109, 8.6821, 2.3),
  city("Amsterdam", "NL", 52.3676, 4.9041, 2.5),
  city("Brussels", "BE", 50.8503, 4.3517, 2.1),
  city("Madrid", "ES", 40.4168, -3.7038, 6.7),
  city("Barcelona", "ES", 41.3874, 2.1686, 5.6),
  city("Rome", "IT", 41.9028, 12.4964, 4.3),
  city("Milan", "IT", 45.4642, 9.19, 3.2),
  city("Lisbon", "PT", 38.7223, -9.1393, 2.9),
  city("Zurich", "CH", 47.3769, 8.5417, 1.4),
  city("Vienna", "AT", 48.2082, 16.3738, 1.9),
  city("Helsinki", "FI", 60.1699, 24.9384, 1.3),
  city("Athens", "GR", 37.9838, 23.7275, 3.1),
  city("Tokyo", "JP", 35.6762, 139.6503, 14),
  city("Osaka", "JP", 34.6937, 135.5023, 8.8),
  city("Seoul", "KR", 37.5665, 126.978, 9.7),
  city("Hong Kong", "HK", 22.3193, 114.1694, 7.5),
  city("Singapore", "SG", 1.3521, 103.8198, 5.6),
  city("Sydney", "AU", -33.8688, 151.2093, 5.3),
  city("Melbourne", "AU", -37.8136, 144.9631, 5.1),
  city("Auckland", "NZ", -36.8485, 174.7633, 1.7),
  city("Mumbai", "IN", 19.076, 72.8777, 12),
  city("Bengaluru", "IN", 12.9716, 77.5946, 8.4),
  city("Dubai", "AE", 25.2048, 55.2708, 3.3),
  city("São Paulo", "BR", -23.5505, -46.6333, 12),
  city("Rio de Janeiro", "BR", -22.9068, -43.1729, 6.7),
  city("Mexico City", "MX", 19.4326, -99.1332, 9.2),
  city("Buenos Aires", "AR", -34.6037, -58.3816, 3.1),
  city("Johannesburg", "ZA", -26.2041, 28.0473, 5.6),
  city("Cape Town", "ZA", -33.9249, 18.4241, 4.6),
];

/** Minimum distance of the second city in a geo_velocity incident. */
export const GEO_MIN_KM = 2_000;

const FAR_CITIES: readonly (readonly number[])[] = CITIES.map((a) =>
  CITIES.flatMap((b, j) => (haversineKm(a.lat, a.lon, b.lat, b.lon) >= GEO_MIN_KM ? [j] : [])),
);

/** Indexes of the cities at least GEO_MIN_KM from `cityIndex` (never empty for the built-in table). */
export function farCities(cityIndex: number): readonly number[] {
  return FAR_CITIES[cityIndex] ?? [];
}

export interface MerchantCategory {
  readonly key: string;
  readonly mcc: string;
  /** Probability that a normal transaction falls in this category. */
  readonly share: number;
  /** Online merchants have no premises: the transaction takes the cardholder's location. */
  readonly online: boolean;
  /**
   * Amounts are log-normal around the account's own typical ticket T:
   * ln(amount) ~ N(ln(T * factor) - sigma^2 / 2, sigma), so the mean is T * factor. Keeping
   * factors within ~7x of each other keeps one account's amounts from looking like spikes
   * against its own history.
   */
  readonly factor: number;
  readonly sigma: number;
  /** Prices end in .99. */
  readonly charmPrice: boolean;
}

function category(
  key: string,
  mcc: string,
  share: number,
  online: boolean,
  factor: number,
  sigma: number,
  charmPrice = false,
): MerchantCategory {
  return { key, mcc, share, online, factor, sigma, charmPrice };
}

export const MERCHANT_CATEGORIES: readonly MerchantCategory[] = [
  category("grocery", "5411", 0.2, false, 1.0, 0.45),
  category("fuel", "5541", 0.09, false, 1.2, 0.3),
  category("restaurants", "5812", 0.13, false, 0.9, 0.45),
  category("fast_food", "5814", 0.11, false, 0.5, 0.35),
  category("electronics", "5732", 0.03, false, 3.0, 0.55, true),
  category("pharmacy", "5912", 0.05, false, 0.6, 0.45),
  category("clothing", "5651", 0.06, false, 1.6, 0.5, true),
  category("department_stores", "5311", 0.04, false, 1.8, 0.5, true),
  category("taxi_rideshare", "4121", 0.06, false, 0.6, 0.4),
  category("airlines", "4511", 0.015, true, 3.5, 0.45),
  category("hotels", "7011", 0.015, true, 3.0, 0.45),
  category("digital_goods", "5818", 0.08, true, 0.5, 0.5, true),
  category("ecommerce", "5999", 0.08, true, 1.3, 0.6, true),
  category("utilities", "4900", 0.03, true, 1.5, 0.3),
];

/** Category indexes by key, for scenarios that need a particular kind of merchant. */
export const CATEGORY: Readonly<Record<string, number>> = Object.fromEntries(
  MERCHANT_CATEGORIES.map((c, i) => [c.key, i]),
);

const NCAT = MERCHANT_CATEGORIES.length;
const SHARE_TOTAL = MERCHANT_CATEGORIES.reduce((s, c) => s + c.share, 0);
/** Mean of factor over the category mix: account mean = typical ticket x MIX_MEAN. */
const MIX_MEAN = MERCHANT_CATEGORIES.reduce((s, c) => s + c.share * c.factor, 0) / SHARE_TOTAL;
const CAT_FACTOR = Float64Array.from(MERCHANT_CATEGORIES, (c) => c.factor);
const CAT_SIGMA = Float64Array.from(MERCHANT_CATEGORIES, (c) => c.sigma);
const CAT_SHIFT = Float64Array.from(MERCHANT_CATEGORIES, (c) => (-c.sigma * c.sigma) / 2);
const CAT_CHARM = Uint8Array.from(MERCHANT_CATEGORIES, (c) => (c.charmPrice ? 1 : 0));
const CP_CATEGORIES = MERCHANT_CATEGORIES.flatMap((c, i) => (c.online ? [] : [i]));
const ONLINE_CATEGORIES = MERCHANT_CATEGORIES.flatMap((c, i) => (c.online ? [i] : []));
const ONLINE_SEED_MERCHANTS = 4;

/** Smallest merchant count that still gives every city every card-present category. */
export const MIN_MERCHANTS =
  CITIES.length * CP_CATEGORIES.length + ONLINE_CATEGORIES.length * ONLINE_SEED_MERCHANTS;

const NAMES: Record<NamePool, { first: readonly string[]; last: readonly string[] }> = {
  en: {
    first: [
      "James",
      "Mary",
      "John",
      "Patricia",
      "Robert",
      "Jennifer",
      "Michael",
      "Linda",
      "William",
      "Elizabeth",
      "David",
      "Sarah",
      "Emily",
      "Daniel",
      "Olivia",
      "Liam",
      "Emma",
      "Noah",
      "Ava",
      "Chloe",
    ],
    last: [
      "Smith",
      "Johnson",
      "Williams",
      "Brown",
      "Jones",
      "Miller",
      "Davis",
      "Wilson",
      "Taylor",
      "Anderson",
      "Thomas",
      "Moore",
      "Martin",
      "Clark",
      "Walker",
      "Murphy",
      "Kelly",
      "O'Brien",
      "Campbell",
      "Lee",
    ],
  },
  es: {
    first: ["Maria", "Jose", "Carmen", "Juan", "Lucia", "Carlos", "Sofia", "Javier", "Valentina", "Diego"],
    last: ["Garcia", "Rodriguez", "Martinez", "Lopez", "Gonzalez", "Hernandez", "Perez", "Sanchez", "Torres"],
  },
  pt: {
    first: ["Joao", "Ana", "Pedro", "Beatriz", "Lucas", "Mariana", "Gabriel", "Julia", "Rafael", "Larissa"],
    last: ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Ferreira", "Almeida", "Carvalho"],
  },
  fr: {
    first: ["Jean", "Marie", "Pierre", "Camille", "Louis", "Chloe", "Hugo", "Manon", "Lucas", "Lea"],
    last: ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Moreau"],
  },
  de: {
    first: ["Lukas", "Anna", "Felix", "Lena", "Jonas", "Laura", "Leon", "Mia", "Paul", "Hannah"],
    last: ["Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann"],
  },
  nl: {
    first: ["Daan", "Emma", "Sem", "Julia", "Lars", "Sanne", "Bram", "Fleur"],
    last: ["de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer"],
  },
  it: {
    first: ["Marco", "Giulia", "Luca", "Francesca", "Alessandro", "Chiara", "Matteo", "Sara", "Elena"],
    last: ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Greco"],
  },
  fi: {
    first: ["Mikko", "Aino", "Juha", "Emilia", "Matti", "Sofia", "Eero", "Helmi"],
    last: ["Korhonen", "Virtanen", "Makinen", "Nieminen", "Hamalainen", "Laine", "Heikkinen"],
  },
  gr: {
    first: ["Giorgos", "Maria", "Dimitris", "Eleni", "Nikos", "Katerina", "Kostas", "Sofia"],
    last: ["Papadopoulos", "Pappas", "Georgiou", "Nikolaidis", "Oikonomou", "Vlachos", "Karras"],
  },
  ja: {
    first: ["Haruto", "Yui", "Sota", "Hina", "Ren", "Aoi", "Yuto", "Sakura", "Takumi", "Mei"],
    last: ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kato"],
  },
  ko: {
    first: ["Min-jun", "Seo-yeon", "Ji-ho", "Ha-eun", "Do-yun", "Ji-woo", "Seo-jun", "Su-ah"],
    last: ["Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon"],
  },
  zh: {
    first: ["Wei", "Mei Ling", "Jun", "Xiu Ying", "Hao", "Li Na", "Ka Ho", "Wing Yan"],
    last: ["Chan", "Wong", "Lee", "Cheung", "Lau", "Tan", "Lim", "Ng"],
  },
  hi: {
    first: ["Aarav", "Priya", "Vivaan", "Ananya", "Arjun", "Diya", "Rohan", "Isha", "Rahul", "Neha"],
    last: ["Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta", "Rao"],
  },
  ar: {
    first: ["Mohammed", "Fatima", "Ahmed", "Aisha", "Omar", "Mariam", "Ali", "Noor"],
    last: ["Al Mansouri", "Al Hashimi", "Khan", "Haddad", "Rahman", "Saleh", "Nasser"],
  },
  za: {
    first: ["Thabo", "Naledi", "Sipho", "Lerato", "Johan", "Annelie", "Pieter", "Zanele"],
    last: ["Nkosi", "Dlamini", "Khumalo", "Mokoena", "van der Merwe", "Botha", "Naidoo", "Pillay"],
  },
};

/**
 * Per city: its name pool with e-mail-safe lowercase forms, and its national mail provider
 * ("" if none). Precomputed so deriving an account is lookups, not map access and regexes.
 * Names never contain a quote or backslash, so they go into JSON unescaped.
 */
const CITY_NAMES = CITIES.map((c) => {
  const pool = NAMES[COUNTRIES[c.country]!.names];
  const key = (x: string) => x.toLowerCase().replace(/[^a-z0-9]/g, "");
  return { first: pool.first, last: pool.last, firstKey: pool.first.map(key), lastKey: pool.last.map(key) };
});
const CITY_ISP = CITIES.map((c) => COUNTRIES[c.country]!.isp ?? "");

const MAIL_DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "hotmail.com"];
const MAIL_WEIGHTS = [0.45, 0.18, 0.12, 0.14, 0.04, 0.07];

/** Card brands by share of cards issued; BIN prefixes follow the networks' published ranges. */
const BRAND_WEIGHTS = [0.55, 0.35, 0.1]; // Visa, Mastercard, American Express
const BRAND_BIN_COUNT = [30, 20, 4];

function makeBin(rng: Rng, brand: number): string {
  const digits = (n: number) => String(rng.below(10 ** n)).padStart(n, "0");
  if (brand === 0) return "4" + digits(5);
  if (brand === 1)
    return rng.chance(0.7) ? String(rng.int(51, 55)) + digits(4) : String(rng.int(2221, 2720)) + digits(2);
  return (rng.chance(0.5) ? "34" : "37") + digits(4);
}

// 3^18: coprime with 10, so i -> i * PAN_MULTIPLIER mod 10^k is a bijection (unique PANs).
const PAN_MULTIPLIER = 387_420_489;

/** Account-level PII derived on demand; allocated only on a fragment-cache miss. */
export interface Identity {
  readonly cardholderName: string;
  readonly email: string;
  readonly ipAddress: string;
  readonly cards: readonly string[];
  readonly devices: readonly string[];
}

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
const STREAM_BINS = 3;
const STREAM_PII = 0x10000000;
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

function checkCount(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(field, `must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
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
  private readonly bins: string[][];
  private readonly binTables: AliasTable[];
  private readonly brandTable: AliasTable;
  private readonly mailTable: AliasTable;
  private readonly pii = new Rng(0);
  // Scratch output of derive(): no object per derivation.
  private dName = "";
  private dEmail = "";
  private dIp = "";
  private dCard = "";
  private dDevice = "";

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
    this.accounts = checkCount("accounts", options.accounts ?? DEFAULT_ACCOUNTS, 1, MAX_ACCOUNTS);
    this.merchants = checkCount(
      "merchants",
      options.merchants ?? DEFAULT_MERCHANTS,
      MIN_MERCHANTS,
      1_000_000,
    );
    this.idTag = this.seed.toString(16).padStart(8, "0");
    const n = this.accounts;

    const binRng = new Rng(this.seed, STREAM_BINS);
    this.bins = BRAND_BIN_COUNT.map((count, brand) =>
      Array.from({ length: count }, () => makeBin(binRng, brand)),
    );
    // A few big issuers hold most cards.
    this.binTables = BRAND_BIN_COUNT.map(
      (count) => new AliasTable(Array.from({ length: count }, () => binRng.logNormal(0, 1))),
    );
    this.brandTable = new AliasTable(BRAND_WEIGHTS);
    this.mailTable = new AliasTable(MAIL_WEIGHTS);
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
      checkCount("cacheSlots", options.cacheSlots ?? Math.min(n, DEFAULT_MAX_CACHE_SLOTS), 1, 1 << 24),
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
      this.dCard +
      '","cardholder_name":"' +
      this.dName +
      '","email":"' +
      this.dEmail +
      '","ip_address":"' +
      this.dIp +
      '","device_id":"' +
      this.dDevice +
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

  /**
   * Re-derives an account's PII from its own random stream into the scratch fields, building
   * strings only for the requested card and device (the others are drawn, so every value
   * keeps its place in the stream, but not formatted).
   */
  private derive(account: number, card: number, device: number): void {
    const rng = this.pii;
    rng.reseed(this.seed, STREAM_PII + account);
    const c = this.cityOf(account);
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
    const domain = isp !== "" && rng.chance(0.25) ? isp : MAIL_DOMAINS[this.mailTable.sample(rng)]!;
    if (rng.chance(0.1)) {
      const t = rng.below(10);
      this.dIp = `2a0${t}:${rng.below(65536).toString(16)}:${rng.below(65536).toString(16)}:${rng.below(65536).toString(16)}::${rng.below(65536).toString(16)}`;
    } else {
      let o1 = 0;
      // Skip private, loopback, link-local, CGNAT and documentation-heavy first octets.
      do o1 = rng.int(1, 223);
      while (o1 === 10 || o1 === 100 || o1 === 127 || o1 === 169 || o1 === 172 || o1 === 192 || o1 === 198);
      this.dIp = o1 + "." + rng.below(256) + "." + rng.below(256) + "." + rng.int(1, 254);
    }
    this.dName = names.first[fi]! + " " + names.last[li]!;
    this.dEmail = local + "@" + domain;
    for (let k = 0; k < this.cardsOf(account); k++) {
      const brand = this.brandTable.sample(rng);
      const bin = this.bins[brand]![this.binTables[brand]!.sample(rng)]!;
      if (k !== card) continue;
      const bodyLen = brand === 2 ? 8 : 9; // Amex 15 digits, Visa and Mastercard 16
      const mod = bodyLen === 8 ? 1e8 : 1e9;
      const body = ((account * 2 + k) * PAN_MULTIPLIER + (this.seed % mod)) % mod;
      const partial = bin + String(body).padStart(bodyLen, "0");
      this.dCard = partial + luhnCheckDigit(partial);
    }
    for (let k = 0; k < this.devicesOf(account); k++) {
      const hi = rng.hex32();
      const lo = rng.hex32();
      if (k === device) this.dDevice = "dev_" + hi + lo;
    }
  }

  /** An account's PII as a plain object (tests, debugging; not for the hot path). */
  deriveIdentity(account: number): Identity {
    const cards: string[] = [];
    const devices: string[] = [];
    for (let k = 0; k < Math.max(this.cardsOf(account), this.devicesOf(account)); k++) {
      this.derive(account, k, k);
      if (k < this.cardsOf(account)) cards.push(this.dCard);
      if (k < this.devicesOf(account)) devices.push(this.dDevice);
    }
    return { cardholderName: this.dName, email: this.dEmail, ipAddress: this.dIp, cards, devices };
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
