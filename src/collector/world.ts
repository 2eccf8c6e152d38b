/**
 * The static world the traffic happens in: countries, cities (with their share of
 * cardholders and merchants), merchant categories (MCC, share of spend, amount shape), the
 * name pools cardholders are drawn from, mail providers and card networks. Data and the
 * lookup tables derived from it once at load; no randomness here (population.ts draws from
 * these), so the tables can be read and edited on their own.
 */
import { haversineKm } from "../core/rules.ts";

// ----------------------------------------------------------------------------- places

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

// ----------------------------------------------------------------------------- merchants

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

// ----------------------------------------------------------------------------- category tables

/** Category figures as flat typed arrays: the amount model reads them on every record. */
export const NCAT = MERCHANT_CATEGORIES.length;
const SHARE_TOTAL = MERCHANT_CATEGORIES.reduce((s, c) => s + c.share, 0);
/** Mean of factor over the category mix: account mean = typical ticket x MIX_MEAN. */
export const MIX_MEAN = MERCHANT_CATEGORIES.reduce((s, c) => s + c.share * c.factor, 0) / SHARE_TOTAL;
export const CAT_FACTOR = Float64Array.from(MERCHANT_CATEGORIES, (c) => c.factor);
export const CAT_SIGMA = Float64Array.from(MERCHANT_CATEGORIES, (c) => c.sigma);
export const CAT_SHIFT = Float64Array.from(MERCHANT_CATEGORIES, (c) => (-c.sigma * c.sigma) / 2);
export const CAT_CHARM = Uint8Array.from(MERCHANT_CATEGORIES, (c) => (c.charmPrice ? 1 : 0));
export const CP_CATEGORIES = MERCHANT_CATEGORIES.flatMap((c, i) => (c.online ? [] : [i]));
export const ONLINE_CATEGORIES = MERCHANT_CATEGORIES.flatMap((c, i) => (c.online ? [i] : []));
/** Online merchants of each online category placed before the mix, so no list is empty. */
export const ONLINE_SEED_MERCHANTS = 4;

/** Smallest merchant count that still gives every city every card-present category. */
export const MIN_MERCHANTS =
  CITIES.length * CP_CATEGORIES.length + ONLINE_CATEGORIES.length * ONLINE_SEED_MERCHANTS;

// ----------------------------------------------------------------------------- people

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
export const CITY_NAMES = CITIES.map((c) => {
  const pool = NAMES[COUNTRIES[c.country]!.names];
  const key = (x: string) => x.toLowerCase().replace(/[^a-z0-9]/g, "");
  return { first: pool.first, last: pool.last, firstKey: pool.first.map(key), lastKey: pool.last.map(key) };
});
export const CITY_ISP = CITIES.map((c) => COUNTRIES[c.country]!.isp ?? "");

// ----------------------------------------------------------------------------- mail and cards

export const MAIL_DOMAINS = [
  "gmail.com",
  "outlook.com",
  "yahoo.com",
  "icloud.com",
  "proton.me",
  "hotmail.com",
];
export const MAIL_WEIGHTS = [0.45, 0.18, 0.12, 0.14, 0.04, 0.07];

/** Card brands by share of cards issued; BIN prefixes follow the networks' published ranges. */
export const BRAND_WEIGHTS = [0.55, 0.35, 0.1]; // Visa, Mastercard, American Express
export const BRAND_BIN_COUNT = [30, 20, 4];
